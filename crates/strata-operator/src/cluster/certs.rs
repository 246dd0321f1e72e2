//! The certificates of a secured KafkaCluster: a cluster CA the operator creates once and
//! keeps in a Secret, and the leaf certificates it signs (the brokers' certificate of the
//! internal replication listener, one per TLS listener without a certificate of its own, and
//! the client certificates of the operator and of the cluster's administrators). Each leaf is
//! kept in a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, `ca.crt`), annotated with when it
//! ends and with a digest of what it names, so it is issued again when it nears its end or
//! its names change; the brokers read the mounted files again when the kubelet updates them,
//! so a new certificate needs no restart. Pure: keys and certificates in, PEM out (rcgen).

use std::collections::BTreeMap;

use jiff::{Timestamp, ToSpan};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

/// Key of the CA certificate in the CA Secret and in every leaf Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
/// Key of the CA's private key in the CA Secret.
pub const CA_KEY_KEY: &str = "ca.key";
/// Keys of a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";
/// Annotation with the end of a leaf's validity (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "kafka.strata.dev/certificate-not-after";
/// Annotation with the digest of a leaf's subject and names.
pub const NAMES_ANNOTATION: &str = "kafka.strata.dev/certificate-names";
/// Annotation marking a Secret the operator issued (a TLS Secret without it is the user's).
pub const ISSUED_BY_ANNOTATION: &str = "kafka.strata.dev/issued-by";
pub const ISSUER: &str = "strata-operator";

/// How long the CA and the leaves are valid, and how early a leaf is issued again.
const CA_DAYS: i64 = 5 * 365;
const LEAF_DAYS: i64 = 365;
const RENEW_BEFORE_DAYS: i64 = 30;

/// Subject common names of the operator-issued identities (principals `User:CN=<name>`).
pub const BROKER_CN: &str = "strata-broker";
pub const OPERATOR_CN: &str = "strata-operator";
pub const ADMIN_CN: &str = "strata-admin";
/// The mirror pods of MirrorFlows with this cluster as a side.
pub const MIRROR_CN: &str = "strata-mirror";

/// A certificate and its private key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert.len())
            .field("key", &"(hidden)")
            .finish()
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    pub common_name: String,
    /// DNS names (wildcards allowed); empty for a client certificate.
    pub dns_names: Vec<String>,
    pub server: bool,
    pub client: bool,
}

impl LeafSpec {
    /// A digest of everything the certificate names: a change means a new certificate.
    pub fn digest(&self) -> String {
        let usage = format!("{}{}", u8::from(self.server), u8::from(self.client));
        let mut parts = vec![self.common_name.as_str(), usage.as_str()];
        parts.extend(self.dns_names.iter().map(String::as_str));
        fingerprint(&parts)
    }
}

/// A short hex digest of `parts` (each ended by a zero byte).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the cluster CA in Secret {secret} cannot be used: {reason}")]
    BadCa { secret: String, reason: String },
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

/// Sets the validity of `params` from `now` (a day earlier, against clock skew) for `days`.
fn validity(params: &mut CertificateParams, now: Timestamp, days: i64) -> Timestamp {
    let day = |t: Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    let not_after = now + (days * 24).hours();
    params.not_before = day(now - 24.hours());
    params.not_after = day(not_after);
    not_after
}

/// The CA's subject: the same for one cluster every time, so a stored CA signs as itself.
fn ca_params(cluster: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Strata");
    dn.push(DnType::CommonName, format!("strata cluster CA {cluster}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// A new CA for `cluster` (`namespace/name`), valid five years.
pub fn new_ca(cluster: &str, now: Timestamp) -> Result<Pem, CertError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(cluster);
    validity(&mut params, now, CA_DAYS);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A leaf for `spec` signed by the CA of `cluster`, valid a year; returns it with its end.
pub fn issue(
    cluster: &str,
    ca: &Pem,
    ca_secret: &str,
    spec: &LeafSpec,
    now: Timestamp,
) -> Result<(Pem, Timestamp), CertError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| CertError::BadCa {
        secret: ca_secret.to_owned(),
        reason: format!("{CA_KEY_KEY}: {e}"),
    })?;
    let issuer = Issuer::new(ca_params(cluster), ca_key);
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(spec.dns_names.clone())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, spec.common_name.clone());
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    if spec.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let not_after = validity(&mut params, now, LEAF_DAYS);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
        not_after,
    ))
}

/// Kafka client properties for mutual TLS with `leaf`, trusting `ca_cert`.
pub fn client_properties(ca_cert: &str, leaf: &Pem) -> BTreeMap<String, String> {
    [
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", ca_cert),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.key", &leaf.key),
        ("ssl.keystore.certificate.chain", &leaf.cert),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Whether a leaf Secret with `annotations` must be issued again for `spec` at `now`: it was
/// issued for other names, or its end is unknown or within 30 days.
pub fn needs_issue(
    annotations: Option<&BTreeMap<String, String>>,
    spec: &LeafSpec,
    now: Timestamp,
) -> bool {
    let Some(a) = annotations else {
        return true;
    };
    if a.get(NAMES_ANNOTATION) != Some(&spec.digest()) {
        return true;
    }
    match a
        .get(NOT_AFTER_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok())
    {
        Some(end) => end <= now + (RENEW_BEFORE_DAYS * 24).hours(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_client::Security;

    fn spec() -> LeafSpec {
        LeafSpec {
            common_name: BROKER_CN.into(),
            dns_names: vec![
                "*.c-brokers.ns.svc.cluster.local".into(),
                "c-bootstrap.ns.svc".into(),
            ],
            server: true,
            client: true,
        }
    }

    #[test]
    fn leaves_chain_to_the_stored_ca_and_name_their_holder() {
        let now = Timestamp::now();
        let ca = new_ca("ns/c", now).unwrap();
        let (leaf, end) = issue("ns/c", &ca, "c-ca", &spec(), now).unwrap();
        assert!(end > now + (360 * 24).hours());
        // A client that trusts the CA accepts the leaf (rustls/webpki through strata-client's
        // own properties), and presents a client leaf for mutual TLS.
        let (client, _) = issue(
            "ns/c",
            &ca,
            "c-ca",
            &LeafSpec {
                common_name: OPERATOR_CN.into(),
                dns_names: vec![],
                server: false,
                client: true,
            },
            now,
        )
        .unwrap();
        let props = client_properties(&ca.cert, &client);
        Security::from_properties(&props).expect("usable client material");
        assert!(leaf.cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!format!("{leaf:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_leaf_is_issued_again_for_new_names_or_near_its_end() {
        let now = Timestamp::now();
        let fresh = BTreeMap::from([
            (NAMES_ANNOTATION.to_string(), spec().digest()),
            (
                NOT_AFTER_ANNOTATION.to_string(),
                (now + (300 * 24).hours()).to_string(),
            ),
        ]);
        assert!(!needs_issue(Some(&fresh), &spec(), now));
        assert!(needs_issue(None, &spec(), now));
        let mut renamed = spec();
        renamed.dns_names.push("extra.example".into());
        assert!(needs_issue(Some(&fresh), &renamed, now));
        let mut ending = fresh.clone();
        ending.insert(
            NOT_AFTER_ANNOTATION.into(),
            (now + (10 * 24).hours()).to_string(),
        );
        assert!(needs_issue(Some(&ending), &spec(), now));
    }
}
