//! TLS on SSL listeners, with rustls (no OpenSSL). The settings are Kafka's `ssl.*` properties,
//! each also given for one listener as `listener.name.<listener>.ssl.*` (which wins, as in
//! Kafka), with PEM key and trust stores:
//!
//! - `ssl.keystore.location`: one PEM file with the private key and the certificate chain; or the
//!   two inline properties `ssl.keystore.key` and `ssl.keystore.certificate.chain` (PEM on one
//!   line, its line breaks written as spaces, as in Kafka). The key is an encrypted PKCS#8 key
//!   (PBES2 with AES) with its password in `ssl.key.password`, or an unencrypted PKCS#8, PKCS#1
//!   or SEC1 key (what a Kubernetes TLS Secret holds);
//! - `ssl.truststore.location` (or inline `ssl.truststore.certificates`): the CA certificates
//!   that client certificates are checked against;
//! - `ssl.client.auth`: `none` (default), `requested` or `required` (mutual TLS);
//! - `ssl.enabled.protocols` (`TLSv1.2,TLSv1.3`) and `ssl.cipher.suites` (IANA names).
//!
//! The files are read at start and checked again every `strata.ssl.reload.interval.ms`
//! (default 10 s): a changed key, certificate or trust store (Kubernetes updates mounted Secrets
//! in place) applies from the next handshake on; files that do not make a valid configuration
//! are refused with a log line and the configuration in use stays.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::RwLock;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use strata_client::pem::pem_lines;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::ConfigError;
use crate::ssl_principal::{principal_of, PrincipalRules};

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// PEM text: a file or the property's own value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

/// The private key and certificate chain of a listener.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyStore {
    /// `ssl.keystore.location`: key and chain in one PEM file.
    File(PathBuf),
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`: each the property's own value,
    /// or a file when the value was one `${dir:…}` configuration-provider variable.
    Inline { key: Pem, chain: Pem },
}

impl std::fmt::Debug for KeyStore {
    /// Never shows an inline private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyStore::File(path) => f.debug_tuple("File").field(path).finish(),
            KeyStore::Inline { key, chain } => f
                .debug_struct("Inline")
                .field(
                    "key",
                    match key {
                        Pem::File(path) => path as &dyn std::fmt::Debug,
                        Pem::Inline(_) => &"(hidden)",
                    },
                )
                .field("chain", chain)
                .finish(),
        }
    }
}

/// A password: never printed (`Debug` shows `(hidden)`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// The TLS settings of one SSL listener, checked but not yet read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub listener: String,
    pub keystore: KeyStore,
    /// `ssl.key.password`: the password of an encrypted private key.
    pub key_password: Option<Secret>,
    pub truststore: Option<Pem>,
    pub client_auth: ClientAuth,
    /// `TLSv1.2` and/or `TLSv1.3`.
    pub protocols: Vec<String>,
    /// IANA names; empty = rustls's defaults.
    pub cipher_suites: Vec<String>,
    pub reload_interval: Duration,
    /// `ssl.principal.mapping.rules`: the principal of a client certificate.
    pub principal_rules: PrincipalRules,
}

impl TlsSettings {
    /// Reads the settings of SSL listener `listener` from the broker's properties.
    /// `whole_files` names the properties whose value is one file's content through a
    /// configuration provider: those are read from the file, and again when it changes.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        whole_files: &BTreeMap<String, PathBuf>,
        listener: &str,
    ) -> Result<TlsSettings, ConfigError> {
        let pem = |(key, value): (String, String)| match whole_files.get(&key) {
            Some(file) => Pem::File(file.clone()),
            None => Pem::Inline(pem_lines(&value)),
        };
        let prefixed = |key: &str| format!("listener.name.{}.{key}", listener.to_lowercase());
        // (the name the value was given under, the value)
        let get = |key: &str| crate::config::listener_value(props, listener, key);
        let invalid = |(key, value): (String, String), reason: &str| ConfigError::Invalid {
            key,
            value,
            reason: reason.to_string(),
        };
        let missing = |key: &str, reason: &str| ConfigError::Invalid {
            key: prefixed(key),
            value: String::new(),
            reason: format!("listener {listener} is SSL: {reason}"),
        };
        for store in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(given) = get(store).filter(|(_, v)| !v.eq_ignore_ascii_case("PEM")) {
                return Err(invalid(
                    given,
                    "only PEM stores are read; convert a JKS or PKCS12 store to PEM \
                     (keytool -importkeystore to PKCS12, then openssl pkcs12 -nodes)",
                ));
            }
        }
        let key_password = get("ssl.key.password")
            .map(|(_, v)| Secret(v))
            .filter(|p| !p.0.is_empty());
        if let Some((key, _)) = get("ssl.keystore.password") {
            return Err(invalid(
                (key, "(hidden)".into()),
                "a PEM key store has no store password (Kafka refuses it too); the key's \
                 password goes in ssl.key.password",
            ));
        }
        let keystore = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.key"),
            get("ssl.keystore.certificate.chain"),
        ) {
            (Some((_, path)), None, None) => KeyStore::File(PathBuf::from(path)),
            (None, Some(key), Some(chain)) => KeyStore::Inline {
                key: pem(key),
                chain: pem(chain),
            },
            (Some(_), _, _) => {
                return Err(missing(
                    "ssl.keystore.location",
                    "give either ssl.keystore.location or ssl.keystore.key with \
                     ssl.keystore.certificate.chain, not both",
                ))
            }
            _ => {
                return Err(missing(
                    "ssl.keystore.location",
                    "it needs ssl.keystore.location (a PEM file with the private key and the \
                     certificate chain) or ssl.keystore.key with ssl.keystore.certificate.chain",
                ))
            }
        };
        let truststore = match (
            get("ssl.truststore.location"),
            get("ssl.truststore.certificates"),
        ) {
            (Some(_), Some(_)) => {
                return Err(missing(
                    "ssl.truststore.location",
                    "give either ssl.truststore.location or ssl.truststore.certificates",
                ))
            }
            (Some((_, path)), None) => Some(Pem::File(PathBuf::from(path))),
            (None, Some(certificates)) => Some(pem(certificates)),
            (None, None) => None,
        };
        let client_auth = match get("ssl.client.auth") {
            None => ClientAuth::None,
            Some((_, v)) if v.eq_ignore_ascii_case("none") => ClientAuth::None,
            Some((_, v)) if v.eq_ignore_ascii_case("requested") => ClientAuth::Requested,
            Some((_, v)) if v.eq_ignore_ascii_case("required") => ClientAuth::Required,
            Some(given) => return Err(invalid(given, "expected required, requested or none")),
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(missing(
                "ssl.truststore.location",
                "ssl.client.auth checks client certificates against ssl.truststore.location \
                 or ssl.truststore.certificates, and neither is given",
            ));
        }
        let protocols = match get("ssl.enabled.protocols") {
            None => vec!["TLSv1.2".to_string(), "TLSv1.3".to_string()],
            Some(given) => {
                let list: Vec<String> = split_list(&given.1);
                if list.is_empty() || list.iter().any(|p| p != "TLSv1.2" && p != "TLSv1.3") {
                    return Err(invalid(given, "expected TLSv1.2 and/or TLSv1.3"));
                }
                list
            }
        };
        let cipher_suites = get("ssl.cipher.suites")
            .map(|(_, v)| split_list(&v))
            .unwrap_or_default();
        let known = known_cipher_suites();
        if let Some(unknown) = cipher_suites.iter().find(|s| !known.contains(s)) {
            return Err(invalid(
                get("ssl.cipher.suites").unwrap_or_default(),
                &format!(
                    "{unknown} is not available; the suites are {}",
                    known.join(", ")
                ),
            ));
        }
        let principal_rules = match get("ssl.principal.mapping.rules") {
            None => PrincipalRules::default(),
            Some(given) => PrincipalRules::parse(&given.1).map_err(|e| invalid(given, &e))?,
        };
        let reload_ms = match get("strata.ssl.reload.interval.ms") {
            None => 10_000,
            Some(given) => match given.1.parse::<u64>() {
                Ok(ms) if ms >= 100 => ms,
                _ => return Err(invalid(given, "expected a number of milliseconds >= 100")),
            },
        };
        Ok(TlsSettings {
            listener: listener.to_string(),
            keystore,
            key_password,
            truststore,
            client_auth,
            protocols,
            cipher_suites,
            reload_interval: Duration::from_millis(reload_ms),
            principal_rules,
        })
    }

    /// The files the settings read (checked for changes).
    fn files(&self) -> Vec<&Path> {
        let mut files = Vec::new();
        match &self.keystore {
            KeyStore::File(p) => files.push(p.as_path()),
            KeyStore::Inline { key, chain } => {
                for part in [key, chain] {
                    if let Pem::File(p) = part {
                        files.push(p.as_path());
                    }
                }
            }
        }
        if let Some(Pem::File(p)) = &self.truststore {
            files.push(p.as_path());
        }
        files
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The IANA names of the cipher suites the crypto provider offers.
fn known_cipher_suites() -> Vec<String> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(iana_name)
        .collect()
}

/// A suite's IANA name, as `ssl.cipher.suites` lists it (rustls names TLS 1.3 suites `TLS13_*`).
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Why a key store or trust store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("listener {listener}: {reason}")]
    Config { listener: String, reason: String },
}

fn read(pem: &Pem) -> Result<(String, Vec<u8>), TlsError> {
    match pem {
        Pem::File(path) => std::fs::read(path)
            .map(|bytes| (path.display().to_string(), bytes))
            .map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            }),
        Pem::Inline(text) => Ok(("the inline PEM value".into(), text.as_bytes().to_vec())),
    }
}

fn certificates(what: &str, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    strata_client::pem::certificates(bytes).map_err(|reason| TlsError::Pem {
        what: what.to_string(),
        reason,
    })
}

/// The private key of a key store (`strata_client::pem::private_key`).
fn private_key(
    what: &str,
    bytes: &[u8],
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    strata_client::pem::private_key(bytes, password.map(|p| p.0.as_str())).map_err(|reason| {
        TlsError::Pem {
            what: what.to_string(),
            reason,
        }
    })
}

/// Builds the rustls configuration of `settings` from the files as they are now.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let config_error = |reason: String| TlsError::Config {
        listener: settings.listener.clone(),
        reason,
    };
    let (chain, key) = match &settings.keystore {
        KeyStore::File(path) => {
            let (what, bytes) = read(&Pem::File(path.clone()))?;
            let password = settings.key_password.as_ref();
            (
                certificates(&what, &bytes)?,
                private_key(&what, &bytes, password)?,
            )
        }
        KeyStore::Inline { key, chain } => {
            let named = |pem: &Pem, property: &str| {
                read(pem).map(|(what, bytes)| match pem {
                    Pem::Inline(_) => (property.to_string(), bytes),
                    Pem::File(_) => (what, bytes),
                })
            };
            let (chain_what, chain) = named(chain, "ssl.keystore.certificate.chain")?;
            let (key_what, key) = named(key, "ssl.keystore.key")?;
            (
                certificates(&chain_what, &chain)?,
                private_key(&key_what, &key, settings.key_password.as_ref())?,
            )
        }
    };
    let mut provider = rustls::crypto::ring::default_provider();
    if !settings.cipher_suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| settings.cipher_suites.contains(&iana_name(s)));
    }
    let provider = Arc::new(provider);
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .protocols
        .iter()
        .map(|p| {
            if p == "TLSv1.3" {
                &rustls::version::TLS13
            } else {
                &rustls::version::TLS12
            }
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| config_error(format!("ssl.enabled.protocols / ssl.cipher.suites: {e}")))?;
    let builder = match (&settings.truststore, settings.client_auth) {
        (Some(store), auth) if auth != ClientAuth::None => {
            let (what, bytes) = read(store)?;
            let mut roots = RootCertStore::empty();
            for cert in certificates(&what, &bytes)? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    what: what.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| config_error(format!("trust store: {e}")))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| config_error(format!("key store: {e}")))
}

/// The modification time and length of each file, to notice a change.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[&Path]) -> Stamp {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The TLS side of one SSL listener: the acceptor in use, replaced when its files change.
pub struct TlsListener {
    settings: TlsSettings,
    current: RwLock<(Stamp, TlsAcceptor)>,
}

impl TlsListener {
    /// Reads the key store and trust store; fails with what is wrong with them.
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsListener>, TlsError> {
        let stamp = stamp(&settings.files());
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&settings)?));
        Ok(Arc::new(TlsListener {
            settings,
            current: RwLock::new((stamp, acceptor)),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Runs the handshake of an accepted connection, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let acceptor = self.current.read().1.clone();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake not completed within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// The principal of a connection this listener accepted: from its client certificate
    /// (`User:<mapped subject>`), `None` without one; an error closes the connection.
    pub fn principal(&self, stream: &TlsStream<TcpStream>) -> Result<Option<String>, String> {
        principal_of(
            stream.get_ref().1.peer_certificates(),
            &self.settings.principal_rules,
        )
    }

    /// Builds a new configuration when a file changed since the last load. Ok(true) when it
    /// was replaced; an error leaves the one in use (and is reported again only after the
    /// files change again).
    pub fn reload(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.settings.files());
        if self.current.read().0 == now {
            return Ok(false);
        }
        let built = server_config(&self.settings);
        let mut current = self.current.write();
        current.0 = now;
        current.1 = TlsAcceptor::from(Arc::new(built?));
        Ok(true)
    }

    /// Checks the files every `strata.ssl.reload.interval.ms` until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let listener = self.settings.listener.clone();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.settings.reload_interval) => {}
            }
            match self.reload() {
                Ok(true) => {
                    tracing::info!(%listener, "TLS key store or trust store changed: new handshakes use it")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(%listener, error = %e, "TLS key store or trust store changed but cannot be used; the previous one stays in use")
                }
            }
        }
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

    fn refusal(pairs: &[(&str, &str)]) -> String {
        TlsSettings::from_properties(&props(pairs), &BTreeMap::new(), "SSL")
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn listener_settings_win_over_the_general_ones() {
        let s = TlsSettings::from_properties(
            &props(&[
                ("ssl.keystore.location", "/general.pem"),
                ("listener.name.mtls.ssl.keystore.location", "/own.pem"),
                ("ssl.truststore.location", "/ca.pem"),
                ("listener.name.mtls.ssl.client.auth", "required"),
                ("ssl.enabled.protocols", "TLSv1.3"),
            ]),
            &BTreeMap::new(),
            "MTLS",
        )
        .unwrap();
        assert_eq!(s.keystore, KeyStore::File("/own.pem".into()));
        assert_eq!(s.truststore, Some(Pem::File("/ca.pem".into())));
        assert_eq!(s.client_auth, ClientAuth::Required);
        assert_eq!(s.protocols, vec!["TLSv1.3"]);
        assert_eq!(s.reload_interval, Duration::from_secs(10));
        assert_eq!(s.files(), vec![Path::new("/own.pem"), Path::new("/ca.pem")]);
        // the general settings serve another listener
        let other = TlsSettings::from_properties(
            &props(&[("ssl.keystore.location", "/general.pem")]),
            &BTreeMap::new(),
            "SSL",
        )
        .unwrap();
        assert_eq!(other.keystore, KeyStore::File("/general.pem".into()));
        assert_eq!(other.client_auth, ClientAuth::None);
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_property_named() {
        assert!(refusal(&[]).contains("ssl.keystore.location"));
        assert!(refusal(&[
            ("ssl.keystore.type", "JKS"),
            ("ssl.keystore.location", "/k.jks")
        ])
        .contains("only PEM stores are read"));
        assert!(refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.client.auth", "required")
        ])
        .contains("ssl.truststore.location"));
        assert!(refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.client.auth", "sometimes")
        ])
        .contains("expected required, requested or none"));
        assert!(refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.enabled.protocols", "TLSv1.1")
        ])
        .contains("TLSv1.2"));
        assert!(refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.cipher.suites", "TLS_RSA_WITH_RC4_128_SHA")
        ])
        .contains("TLS_AES_128_GCM_SHA256"));
        assert!(refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.keystore.key", "-----BEGIN PRIVATE KEY-----")
        ])
        .contains("not both"));
        let password = refusal(&[
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.keystore.password", "hunter2"),
        ]);
        assert!(password.contains("ssl.key.password"), "{password}");
        assert!(!password.contains("hunter2"), "{password}");
        let with_key_password = TlsSettings::from_properties(
            &props(&[
                ("ssl.keystore.location", "/k.pem"),
                ("ssl.key.password", "hunter2"),
            ]),
            &BTreeMap::new(),
            "SSL",
        )
        .unwrap();
        assert!(!format!("{with_key_password:?}").contains("hunter2"));
    }

    #[test]
    fn cipher_suites_go_by_their_iana_names() {
        let known = known_cipher_suites();
        for name in [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ] {
            assert!(known.iter().any(|k| k == name), "{name} not in {known:?}");
        }
        let s = TlsSettings::from_properties(
            &props(&[
                ("ssl.keystore.location", "/k.pem"),
                ("ssl.cipher.suites", "TLS_AES_256_GCM_SHA384"),
            ]),
            &BTreeMap::new(),
            "SSL",
        )
        .unwrap();
        assert_eq!(s.cipher_suites, vec!["TLS_AES_256_GCM_SHA384"]);
    }

    #[test]
    fn inline_pem_on_one_line_gets_its_lines_back() {
        let settings = TlsSettings::from_properties(
            &props(&[
                (
                    "ssl.keystore.key",
                    "-----BEGIN PRIVATE KEY----- QUJD -----END PRIVATE KEY-----",
                ),
                (
                    "ssl.keystore.certificate.chain",
                    "-----BEGIN CERTIFICATE----- R0hJ -----END CERTIFICATE-----",
                ),
            ]),
            &BTreeMap::new(),
            "SSL",
        )
        .unwrap();
        assert_eq!(
            settings.keystore,
            KeyStore::Inline {
                key: Pem::Inline(
                    "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n".into()
                ),
                chain: Pem::Inline(
                    "-----BEGIN CERTIFICATE-----\nR0hJ\n-----END CERTIFICATE-----\n".into()
                ),
            }
        );
        assert!(!format!("{settings:?}").contains("QUJD"), "{settings:?}");
    }

    #[test]
    fn bad_pem_is_named() {
        let settings = TlsSettings {
            listener: "SSL".into(),
            key_password: None,
            keystore: KeyStore::Inline {
                key: Pem::Inline(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                        .into(),
                ),
                chain: Pem::Inline("no certificate here".into()),
            },
            truststore: None,
            client_auth: ClientAuth::None,
            protocols: vec!["TLSv1.3".into()],
            cipher_suites: vec![],
            reload_interval: Duration::from_secs(1),
            principal_rules: PrincipalRules::default(),
        };
        let e = server_config(&settings).expect_err("refused").to_string();
        assert!(
            e.contains("ssl.keystore.certificate.chain") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            private_key("k", encrypted, None),
            Err(TlsError::Pem { reason, .. }) if reason.contains("ssl.key.password is not given")
        ));
        assert!(matches!(
            private_key("k", encrypted, Some(&Secret("pw".into()))),
            Err(TlsError::Pem { .. })
        ));
        let missing = TlsSettings {
            keystore: KeyStore::File("/nonexistent/k.pem".into()),
            ..settings
        };
        assert!(server_config(&missing)
            .expect_err("refused")
            .to_string()
            .contains("/nonexistent/k.pem"));
    }
}
