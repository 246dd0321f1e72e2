//! The credentials of a flow's secured sides, read from their Secrets: the Kafka client
//! properties of the operator's own calls to each side (probes and the failover engine's
//! steps, with the PEM material inline), and a digest of what the mirror pods mount, which
//! goes into their template so that new credentials restart them (`strata-mirror` reads its
//! Secrets at start). A `KafkaCluster` side is reached with the operator's certificate of that
//! cluster (`<cluster>-operator-client`) and mirrored with `<cluster>-mirror-client`; an
//! external side with the user's Secrets for both.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::cluster::certs;
use crate::context::Context;
use crate::flow::plan::{reason, FlowPlan, InvalidFlow, SecretUse, SidePlan, SideSecurity};
use crate::kafka::KafkaTarget;

/// Why a flow's credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Kubernetes API call failed while {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A Secret or key is missing, or what it holds cannot make a connection: a condition
    /// the user can act on.
    #[error(transparent)]
    Invalid(#[from] InvalidFlow),
}

/// What [`read`] found for both sides.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The operator's client properties toward the source and the target (empty: plaintext).
    pub source: BTreeMap<String, String>,
    pub target: BTreeMap<String, String>,
    /// Digest of the Secret data the mirror pods read; `None` when they mount no Secret.
    pub mirror_digest: Option<String>,
}

impl Credentials {
    /// The operator's client properties toward `side`.
    pub fn of(&self, side: &SidePlan) -> &BTreeMap<String, String> {
        match side.side {
            strata_api::ActiveSide::Source => &self.source,
            strata_api::ActiveSide::Target => &self.target,
        }
    }
}

/// The text of every `keys` of Secret `name`, or the condition that says what is missing.
async fn secret_text(
    api: &Api<Secret>,
    name: &str,
    keys: &[String],
    what: &str,
) -> Result<BTreeMap<String, String>, CredentialsError> {
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| CredentialsError::Kube {
            action: format!("reading Secret {name}"),
            source,
        })?
        .ok_or_else(|| {
            InvalidFlow::new(
                reason::SECRET_NOT_FOUND,
                format!("Secret {name} ({what}) does not exist in this namespace"),
            )
        })?;
    let data = secret.data.unwrap_or_default();
    let mut out = BTreeMap::new();
    for key in keys {
        let value = data.get(key).ok_or_else(|| {
            InvalidFlow::new(
                reason::SECRET_NOT_FOUND,
                format!("Secret {name} ({what}) has no key {key}"),
            )
        })?;
        out.insert(key.clone(), String::from_utf8_lossy(&value.0).into_owned());
    }
    Ok(out)
}

/// The Secret the operator's own connections to `side` read for `used_as`.
fn operator_secret(side: &SidePlan, used_as: SecretUse) -> Option<String> {
    match (&side.security, used_as) {
        (SideSecurity::ClusterTls { cluster }, SecretUse::Tls) => {
            Some(format!("{cluster}-operator-client"))
        }
        _ => side
            .secret_mounts()
            .into_iter()
            .find(|m| m.used_as == used_as)
            .map(|m| m.secret),
    }
}

fn describe(side: &SidePlan, used_as: SecretUse) -> String {
    let kind = match used_as {
        SecretUse::Tls => "TLS",
        SecretUse::Sasl => "SASL",
    };
    match &side.security {
        SideSecurity::ClusterTls { cluster } => format!(
            "the {kind} credentials of {}; the KafkaCluster {cluster}'s reconciliation issues it",
            side.describe()
        ),
        _ => format!("the {kind} credentials of {}", side.describe()),
    }
}

/// Reads every Secret of both sides of `plan`.
pub async fn read(ctx: &Context, plan: &FlowPlan) -> Result<Credentials, CredentialsError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), plan.namespace());
    let mut credentials = Credentials::default();
    let mut mirror_parts: Vec<String> = Vec::new();
    for side in [plan.source(), plan.target()] {
        let mut operator_values: BTreeMap<(bool, String), String> = BTreeMap::new();
        for used_as in [SecretUse::Tls, SecretUse::Sasl] {
            let keys = side.secret_keys(used_as);
            if keys.is_empty() {
                continue;
            }
            let what = describe(side, used_as);
            let operator = operator_secret(side, used_as);
            let mut operator_read = BTreeMap::new();
            if let Some(name) = &operator {
                operator_read = secret_text(&api, name, &keys, &what).await?;
                for (k, v) in &operator_read {
                    operator_values.insert((used_as == SecretUse::Tls, k.clone()), v.clone());
                }
            }
            for mount in side.secret_mounts().iter().filter(|m| m.used_as == used_as) {
                // An external side's Secret serves the operator and the pods: read once.
                let values = if operator.as_ref() == Some(&mount.secret) {
                    operator_read.clone()
                } else {
                    secret_text(&api, &mount.secret, &keys, &what).await?
                };
                mirror_parts.push(mount.volume.clone());
                mirror_parts.extend(values.into_iter().flat_map(|(k, v)| [k, v]));
            }
        }
        let props = side.client_properties(|used_as, key| {
            operator_values
                .get(&(used_as == SecretUse::Tls, key.to_owned()))
                .cloned()
                .unwrap_or_default()
        });
        if !props.is_empty() {
            strata_client::Security::from_properties(&props).map_err(|e| {
                InvalidFlow::new(
                    reason::INVALID_SECRET,
                    format!(
                        "the credentials of {} from its Secrets cannot connect: {e}",
                        side.describe()
                    ),
                )
            })?;
        }
        match side.side {
            strata_api::ActiveSide::Source => credentials.source = props,
            strata_api::ActiveSide::Target => credentials.target = props,
        }
    }
    if !mirror_parts.is_empty() {
        let parts: Vec<&str> = mirror_parts.iter().map(String::as_str).collect();
        credentials.mirror_digest = Some(certs::fingerprint(&parts));
    }
    Ok(credentials)
}

/// Gives the admin the operator's credentials of `target` (the side `side` of a flow), as the
/// cluster reconciler does for its own calls, and marks the target secured. A `KafkaCluster`
/// side keeps the digest the cluster reconciler gives (certificate and CA), so both share one
/// cached client.
pub fn load(ctx: &Context, target: &mut KafkaTarget, props: &BTreeMap<String, String>) {
    if props.is_empty() {
        return;
    }
    let Ok(security) = strata_client::Security::from_properties(props) else {
        return; // checked by `read`
    };
    let digest = match (
        props.get("ssl.keystore.certificate.chain"),
        props.get("ssl.truststore.certificates"),
        props.get("sasl.jaas.config"),
    ) {
        (Some(cert), Some(ca), None) => certs::fingerprint(&[cert, ca]),
        _ => {
            let parts: Vec<&str> = props.iter().flat_map(|(k, v)| [k.as_str(), v]).collect();
            certs::fingerprint(&parts)
        }
    };
    ctx.admin
        .set_credentials(&target.cluster, &digest, security);
    target.secured = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::plan::{ClusterSide, Endpoint, ExternalAddress, ExternalSide};
    use strata_api::{ActiveSide, SaslMechanism, SaslSecretRef, TlsSecretRef};

    fn external(security: SideSecurity) -> SidePlan {
        SidePlan {
            side: ActiveSide::Target,
            alias: "dr".into(),
            endpoint: Endpoint::External(ExternalSide {
                bootstrap: "k.example.com:9093".into(),
                address: ExternalAddress::Name {
                    host: "k.example.com".into(),
                    port: 9093,
                },
            }),
            security,
        }
    }

    #[test]
    fn the_operator_connects_to_a_cluster_side_with_its_own_certificate() {
        let side = SidePlan {
            side: ActiveSide::Source,
            alias: "east".into(),
            endpoint: Endpoint::Cluster(ClusterSide {
                name: "east".into(),
                bootstrap: "east-bootstrap.ns.svc.cluster.local:9091".into(),
                broker_selector: BTreeMap::new(),
                client_port: 9092,
                zones: vec![],
                topology_key: String::new(),
            }),
            security: SideSecurity::ClusterTls {
                cluster: "east".into(),
            },
        };
        assert_eq!(
            operator_secret(&side, SecretUse::Tls).as_deref(),
            Some("east-operator-client")
        );
        let mounts = side.secret_mounts();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].secret, "east-mirror-client");
        assert_eq!(operator_secret(&side, SecretUse::Sasl), None);
    }

    #[test]
    fn an_external_side_reads_the_users_secrets_for_both() {
        let side = external(SideSecurity::External {
            tls: Some(TlsSecretRef {
                secret_name: "dr-ca".into(),
                ca_key: "ca.crt".into(),
                cert_key: None,
                key_key: None,
            }),
            sasl: Some(SaslSecretRef {
                mechanism: SaslMechanism::ScramSha512,
                secret_name: "dr-user".into(),
                username_key: "username".into(),
                password_key: "password".into(),
            }),
        });
        assert_eq!(
            operator_secret(&side, SecretUse::Tls).as_deref(),
            Some("dr-ca")
        );
        assert_eq!(
            operator_secret(&side, SecretUse::Sasl).as_deref(),
            Some("dr-user")
        );
        // A password with a quote and a backslash stays one JAAS value.
        let props = side.client_properties(|used_as, key| match (used_as, key) {
            (SecretUse::Sasl, "username") => "mirror".into(),
            (SecretUse::Sasl, "password") => r#"p"w\d"#.into(),
            _ => "PEM".into(),
        });
        assert_eq!(props["security.protocol"], "SASL_SSL");
        let entry = strata_kafka::jaas::parse(&props["sasl.jaas.config"]).unwrap();
        assert_eq!(entry.options["username"], "mirror");
        assert_eq!(entry.options["password"], r#"p"w\d"#);
    }
}
