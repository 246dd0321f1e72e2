//! How a connection reaches a secured listener, with Kafka's client properties:
//! `security.protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the trust store of SSL
//! (`ssl.truststore.type=PEM` with `ssl.truststore.location` or `ssl.truststore.certificates`,
//! `ssl.endpoint.identification.algorithm`), the client's own certificate for mutual TLS
//! (`ssl.keystore.type=PEM` with `ssl.keystore.location` or `ssl.keystore.key` and
//! `ssl.keystore.certificate.chain`, `ssl.key.password`) and SASL (`sasl.mechanism` PLAIN, SCRAM-SHA-256 or
//! SCRAM-SHA-512 with the user and password of `sasl.jaas.config`). TLS is rustls; the SCRAM
//! steps are `strata_kafka::scram`. A SASL session the broker ends
//! (`connections.max.reauth.ms`) is not re-authenticated: the connection reports itself closed
//! shortly before the end and the pool opens a new one.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::Rng;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use strata_kafka::scram::{encode_saslname, xor, ScramHash};

use crate::pem::{certificates, pem_lines, private_key};

/// `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Result<SecurityProtocol, String> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            other => Err(format!(
                "security.protocol {other:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Result<SaslMechanism, String> {
        match name.trim() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            other => Err(format!(
                "sasl.mechanism {other:?}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }

    fn hash(self) -> Option<ScramHash> {
        match self {
            SaslMechanism::Plain => None,
            SaslMechanism::ScramSha256 => Some(ScramHash::Sha256),
            SaslMechanism::ScramSha512 => Some(ScramHash::Sha512),
        }
    }
}

/// A SASL user; the password never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"(hidden)")
            .finish()
    }
}

/// How connections are secured; the default is plaintext.
#[derive(Clone, Default)]
pub struct Security {
    pub protocol: SecurityProtocol,
    /// The TLS client configuration (SSL and SASL_SSL).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The user (SASL_PLAINTEXT and SASL_SSL).
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl Security {
    /// From Kafka client properties (`security.protocol`, `ssl.*`, `sasl.*`); what cannot work
    /// is refused with the property's name.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Security, String> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = get("security.protocol")
            .map(SecurityProtocol::parse)
            .transpose()?
            .unwrap_or_default();
        let tls = if protocol.tls() {
            if let Some(kind) =
                get("ssl.truststore.type").filter(|t| !t.eq_ignore_ascii_case("PEM"))
            {
                return Err(format!(
                    "ssl.truststore.type {kind}: only PEM trust stores are read"
                ));
            }
            let pem = match (
                get("ssl.truststore.certificates"),
                get("ssl.truststore.location"),
            ) {
                (Some(inline), _) => pem_lines(&inline.replace("\\n", "\n")).into_bytes(),
                (None, Some(path)) => std::fs::read(path)
                    .map_err(|e| format!("ssl.truststore.location {path}: {e}"))?,
                (None, None) => {
                    return Err(format!(
                        "security.protocol {} needs the brokers' CA: set \
                         ssl.truststore.type=PEM and ssl.truststore.location",
                        protocol.name()
                    ))
                }
            };
            // Kafka's default (`https`) checks the host name; an empty value turns it off.
            let verify_hostname = props
                .get("ssl.endpoint.identification.algorithm")
                .is_none_or(|a| a.trim().eq_ignore_ascii_case("https"));
            Some(tls_config(&pem, verify_hostname, key_store(&get)?)?)
        } else {
            None
        };
        let sasl = if protocol.sasl() {
            let mechanism = SaslMechanism::parse(get("sasl.mechanism").unwrap_or("GSSAPI"))?;
            let jaas = get("sasl.jaas.config").ok_or(
                "sasl.jaas.config is needed for SASL: ...LoginModule required username=\"...\" \
                 password=\"...\";",
            )?;
            let entry = strata_kafka::jaas::parse(jaas)
                .map_err(|e| format!("sasl.jaas.config is not a JAAS entry: {e}"))?;
            let (Some(username), Some(password)) =
                (entry.options.get("username"), entry.options.get("password"))
            else {
                return Err("sasl.jaas.config needs username=\"...\" and password=\"...\"".into());
            };
            Some(SaslCredentials {
                mechanism,
                username: username.clone(),
                password: password.clone(),
            })
        } else {
            None
        };
        Ok(Security {
            protocol,
            tls,
            sasl,
        })
    }
}

/// The client's own certificate chain and private key, for mutual TLS.
pub type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The key store of `ssl.keystore.*` (PEM, as Kafka's clients take it: `ssl.keystore.location`
/// with the key and the chain in one file, or inline `ssl.keystore.key` and
/// `ssl.keystore.certificate.chain`; an encrypted key's password in `ssl.key.password`), or
/// none when no key store is given.
fn key_store<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Option<ClientIdentity>, String> {
    if let Some(kind) = get("ssl.keystore.type").filter(|t| !t.eq_ignore_ascii_case("PEM")) {
        return Err(format!(
            "ssl.keystore.type {kind}: only PEM key stores are read"
        ));
    }
    if get("ssl.keystore.password").is_some() {
        return Err(
            "ssl.keystore.password: a PEM key store has no store password; the key's \
                    password goes in ssl.key.password"
                .into(),
        );
    }
    let password = get("ssl.key.password");
    let (what, chain, key) = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.key"),
        get("ssl.keystore.certificate.chain"),
    ) {
        (None, None, None) => return Ok(None),
        (Some(path), None, None) => {
            let bytes =
                std::fs::read(path).map_err(|e| format!("ssl.keystore.location {path}: {e}"))?;
            (
                format!("ssl.keystore.location {path}"),
                bytes.clone(),
                bytes,
            )
        }
        (None, Some(key), Some(chain)) => (
            "ssl.keystore.key / ssl.keystore.certificate.chain".to_string(),
            pem_lines(chain).into_bytes(),
            pem_lines(key).into_bytes(),
        ),
        _ => {
            return Err(
                "the key store is ssl.keystore.location, or ssl.keystore.key together \
                        with ssl.keystore.certificate.chain"
                    .into(),
            )
        }
    };
    let chain = certificates(&chain).map_err(|e| format!("{what}: {e}"))?;
    let key = private_key(&key, password).map_err(|e| format!("{what}: {e}"))?;
    Ok(Some((chain, key)))
}

/// A rustls client configuration trusting the PEM certificates in `ca_pem`, presenting
/// `identity` when the server asks for a client certificate.
pub fn tls_config(
    ca_pem: &[u8],
    verify_hostname: bool,
    identity: Option<ClientIdentity>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| format!("trust store: {e}"))?;
        roots.add(cert).map_err(|e| format!("trust store: {e}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("trust store: no PEM certificate".into());
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if verify_hostname {
        builder.with_root_certificates(roots)
    } else {
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("the key store's key and certificate: {e}"))?,
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified, the host name is
/// not (as Kafka's clients do with it off).
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The client side of one SASL exchange: the tokens to send, one after the other (public for
/// tools that drive an exchange themselves, such as `strata-fuzz auth`).
pub enum Exchange {
    Plain { token: Vec<u8>, sent: bool },
    Scram(Box<ScramClient>),
}

pub struct ScramClient {
    hash: ScramHash,
    password: String,
    nonce: String,
    first_bare: String,
    /// The ServerSignature the server-final message must carry.
    expected: Option<Vec<u8>>,
    step: u8,
}

impl Exchange {
    pub fn new(creds: &SaslCredentials) -> Exchange {
        match creds.mechanism.hash() {
            None => Exchange::Plain {
                token: [
                    b"" as &[u8],
                    creds.username.as_bytes(),
                    creds.password.as_bytes(),
                ]
                .join(&0u8),
                sent: false,
            },
            Some(hash) => {
                let raw: [u8; 24] = rand::rng().random();
                let nonce = B64.encode(raw);
                let first_bare = format!("n={},r={nonce}", encode_saslname(&creds.username));
                Exchange::Scram(Box::new(ScramClient {
                    hash,
                    password: creds.password.clone(),
                    nonce,
                    first_bare,
                    expected: None,
                    step: 0,
                }))
            }
        }
    }

    /// The next token to send given the server's last one (`None` before the first); `Ok(None)`
    /// when the exchange is complete.
    pub fn next(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        match self {
            Exchange::Plain { token, sent } => {
                if *sent {
                    return Ok(None);
                }
                *sent = true;
                Ok(Some(std::mem::take(token)))
            }
            Exchange::Scram(s) => s.next(server),
        }
    }
}

impl ScramClient {
    fn next(&mut self, server: Option<&[u8]>) -> Result<Option<Vec<u8>>, String> {
        self.step += 1;
        match (self.step, server) {
            (1, _) => Ok(Some(format!("n,,{}", self.first_bare).into_bytes())),
            (2, Some(first)) => self.client_final(first).map(Some),
            (3, Some(last)) => {
                let text = std::str::from_utf8(last).map_err(|_| "server-final is not UTF-8")?;
                if let Some(e) = text.strip_prefix("e=") {
                    return Err(format!("the broker refused the SCRAM proof: {e}"));
                }
                let signature = text
                    .strip_prefix("v=")
                    .and_then(|v| B64.decode(v).ok())
                    .ok_or("server-final message without a signature")?;
                if Some(signature) != self.expected {
                    return Err(
                        "the broker's SCRAM signature does not match: it does not hold \
                                this user's credential"
                            .into(),
                    );
                }
                Ok(None)
            }
            _ => Err("SCRAM exchange out of order".into()),
        }
    }

    fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in text.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = B64.decode(v).ok(),
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first message {text:?}"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the broker's nonce does not extend ours".into());
        }
        // Kafka's clients refuse fewer iterations than the mechanisms' minimum.
        if !(4096..=16384).contains(&iterations) {
            return Err(format!(
                "the broker asked for {iterations} iterations (4096-16384)"
            ));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = h.client_key(&salted);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let signature = h.hmac(&h.stored_key(&client_key), auth_message.as_bytes());
        self.expected = Some(h.hmac(&h.server_key(&salted), auth_message.as_bytes()));
        Ok(format!(
            "{without_proof},p={}",
            B64.encode(xor(&client_key, &signature))
        )
        .into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn properties_as_kafka_clients_take_them() {
        let s = Security::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cret\";",
            ),
        ]))
        .unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        let creds = s.sasl.unwrap();
        assert_eq!(creds.username, "alice");
        assert!(!format!("{creds:?}").contains("s3cret"));
        assert!(Security::from_properties(&BTreeMap::new())
            .unwrap()
            .sasl
            .is_none());
        let refused = |p: &[(&str, &str)]| Security::from_properties(&props(p)).unwrap_err();
        assert!(refused(&[("security.protocol", "SASL_SSL")]).contains("truststore"));
        assert!(refused(&[("security.protocol", "SASL_PLAINTEXT")]).contains("GSSAPI"));
        assert!(refused(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN")
        ])
        .contains("sasl.jaas.config"));
        assert!(refused(&[("security.protocol", "TLS")]).contains("security.protocol"));
    }

    #[test]
    fn key_stores_that_cannot_work_are_named() {
        let refused = |extra: &[(&str, &str)]| {
            let mut p = props(&[
                ("security.protocol", "SSL"),
                (
                    "ssl.truststore.certificates",
                    "(not read before the key store)",
                ),
            ]);
            p.extend(props(extra));
            Security::from_properties(&p).unwrap_err()
        };
        assert!(refused(&[("ssl.keystore.type", "JKS")]).contains("only PEM"));
        assert!(refused(&[("ssl.keystore.password", "pw")]).contains("ssl.key.password"));
        assert!(refused(&[("ssl.keystore.location", "/nonexistent/k.pem")])
            .contains("/nonexistent/k.pem"));
        assert!(
            refused(&[("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----")])
                .contains("ssl.keystore.certificate.chain")
        );
        let no_key = refused(&[
            ("ssl.keystore.key", "nothing"),
            (
                "ssl.keystore.certificate.chain",
                "-----BEGIN CERTIFICATE----- QUJD -----END CERTIFICATE-----",
            ),
        ]);
        assert!(no_key.contains("no private key"), "{no_key}");
    }

    #[test]
    fn plain_token() {
        let mut e = Exchange::new(&SaslCredentials {
            mechanism: SaslMechanism::Plain,
            username: "u".into(),
            password: "p".into(),
        });
        assert_eq!(e.next(None).unwrap().unwrap(), b"\0u\0p");
        assert_eq!(e.next(Some(b"")).unwrap(), None);
    }

    #[test]
    fn scram_client_checks_the_server() {
        let creds = SaslCredentials {
            mechanism: SaslMechanism::ScramSha256,
            username: "a,b".into(),
            password: "pw".into(),
        };
        let mut e = Exchange::new(&creds);
        let first = String::from_utf8(e.next(None).unwrap().unwrap()).unwrap();
        assert!(first.starts_with("n,,n=a=2Cb,r="));
        let nonce = first.rsplit("r=").next().unwrap().to_string();
        // A server that does not extend the nonce, or asks too few iterations, is refused.
        let mut bad = Exchange::new(&creds);
        bad.next(None).unwrap();
        assert!(bad.next(Some(b"r=other,s=c2FsdA==,i=4096")).is_err());
        let mut weak = Exchange::new(&creds);
        let weak_first = String::from_utf8(weak.next(None).unwrap().unwrap()).unwrap();
        let weak_nonce = weak_first.rsplit("r=").next().unwrap().to_string();
        assert!(weak
            .next(Some(format!("r={weak_nonce}x,s=c2FsdA==,i=1").as_bytes()))
            .is_err());
        let last = e
            .next(Some(format!("r={nonce}srv,s=c2FsdA==,i=4096").as_bytes()))
            .unwrap()
            .unwrap();
        assert!(String::from_utf8(last)
            .unwrap()
            .starts_with(&format!("c=biws,r={nonce}srv,p=")));
        // A server-final with the wrong signature is refused.
        assert!(e.next(Some(b"v=AAAA")).is_err());
    }
}
