//! SASL authentication on `SASL_PLAINTEXT` and `SASL_SSL` listeners, as Kafka does it
//! (KIP-43, KIP-152, KIP-368): a connection first sends SaslHandshake naming a mechanism, then
//! the mechanism's tokens in SaslAuthenticate requests; until it has authenticated, only
//! ApiVersions and those two are taken, anything else closes the connection. Mechanisms:
//! `PLAIN` (users and passwords from the listener's JAAS config, as Kafka's
//! `PlainLoginModule` takes them) and `SCRAM-SHA-256` / `SCRAM-SHA-512` (credentials in the
//! metadata log, managed with AlterUserScramCredentials). With `connections.max.reauth.ms` a
//! session ends after that long: the client re-authenticates on the same connection (KIP-368),
//! and a request after the end closes the connection. A failed authentication is answered
//! after `connection.failed.authentication.delay.ms` and closes the connection. No secret is
//! ever logged.

pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use strata_controller::{MetadataImage, ScramCredential};
use subtle::ConstantTimeEq;

use crate::codes::str_bytes;
use crate::config::ConfigError;
use crate::tls::Secret;

pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// The largest request taken before a connection authenticated (Kafka's
/// `sasl.server.max.receive.size` default).
pub const MAX_UNAUTHENTICATED_FRAME: usize = 524_288;

/// The principal of a connection that did not authenticate (PLAINTEXT and SSL listeners).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL mechanism this broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The SCRAM mechanism of AlterUserScramCredentials / DescribeUserScramCredentials
    /// (`ScramMechanism` type: 1 = SHA-256, 2 = SHA-512).
    pub fn from_scram_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub fn scram_type(self) -> i8 {
        match self {
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
            Mechanism::Plain => 0,
        }
    }
}

/// The SASL settings of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    pub listener: String,
    /// `sasl.enabled.mechanisms` (per listener as `listener.name.<l>.sasl.enabled.mechanisms`).
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users (`user_<name>="<password>"` of the listener's PLAIN JAAS config).
    pub plain_users: BTreeMap<String, Secret>,
    /// `connections.max.reauth.ms`; 0 keeps a session for the connection's life.
    pub reauth_ms: u64,
    /// `connection.failed.authentication.delay.ms` (Kafka's default 100).
    pub failed_delay_ms: u64,
}

const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

impl SaslSettings {
    /// The settings of SASL listener `listener` from the broker's properties, checked.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
        listener: &str,
    ) -> Result<SaslSettings, ConfigError> {
        let lower = listener.to_lowercase();
        let prefixed = |key: &str| format!("listener.name.{lower}.{key}");
        let get = |key: &str| crate::config::listener_value(props, listener, key);
        let invalid = |key: String, value: &str, reason: String| ConfigError::Invalid {
            key,
            value: value.to_string(),
            reason,
        };
        let (key, value) = get("sasl.enabled.mechanisms").unwrap_or_else(|| {
            // Kafka's default.
            ("sasl.enabled.mechanisms".into(), "GSSAPI".into())
        });
        let mut mechanisms = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match Mechanism::from_name(&name.to_ascii_uppercase()) {
                Some(m) if !mechanisms.contains(&m) => mechanisms.push(m),
                Some(_) => {}
                None => {
                    return Err(invalid(
                        key,
                        &value,
                        format!(
                            "listener {listener} is SASL: mechanism {name} is not supported \
                             (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are; Kafka's default is \
                             GSSAPI, so name them in sasl.enabled.mechanisms)"
                        ),
                    ))
                }
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid(
                key,
                &value,
                format!("listener {listener} is SASL but enables no mechanism"),
            ));
        }
        let mut plain_users = BTreeMap::new();
        for m in &mechanisms {
            let jaas_key = prefixed(&format!("{}.sasl.jaas.config", m.name().to_lowercase()));
            let hidden = "(hidden)";
            let entry = match props.get(&jaas_key) {
                Some(text) => Some(strata_kafka::jaas::parse(text).map_err(|e| {
                    invalid(jaas_key.clone(), hidden, format!("not a JAAS entry: {e}"))
                })?),
                None => None,
            };
            match m {
                Mechanism::Plain => {
                    let Some(entry) = entry else {
                        return Err(invalid(
                            jaas_key,
                            "",
                            format!(
                                "listener {listener} enables PLAIN: give its users as \
                                 {PLAIN_LOGIN_MODULE} required user_<name>=\"<password>\" ...;"
                            ),
                        ));
                    };
                    if entry.class != PLAIN_LOGIN_MODULE {
                        return Err(invalid(
                            jaas_key,
                            hidden,
                            format!("PLAIN takes {PLAIN_LOGIN_MODULE}, not {}", entry.class),
                        ));
                    }
                    for (k, v) in entry.options {
                        if let Some(user) = k.strip_prefix("user_") {
                            plain_users.insert(user.to_string(), Secret(v));
                        }
                    }
                    if plain_users.is_empty() {
                        return Err(invalid(
                            jaas_key,
                            hidden,
                            "the PLAIN JAAS config names no user_<name>=\"<password>\"".into(),
                        ));
                    }
                }
                _ => {
                    if let Some(entry) = entry.filter(|e| e.class != SCRAM_LOGIN_MODULE) {
                        return Err(invalid(
                            jaas_key,
                            hidden,
                            format!("SCRAM takes {SCRAM_LOGIN_MODULE}, not {}", entry.class),
                        ));
                    }
                }
            }
        }
        let number = |key: &str, default: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some((k, v)) => v.parse::<u64>().map_err(|_| {
                    invalid(
                        k,
                        &v,
                        "expected a non-negative number of milliseconds".into(),
                    )
                }),
            }
        };
        Ok(SaslSettings {
            listener: listener.to_string(),
            mechanisms,
            plain_users,
            reauth_ms: number("connections.max.reauth.ms", 0)?,
            failed_delay_ms: number("connection.failed.authentication.delay.ms", 100)?,
        })
    }
}

/// What the connection does after a SASL request was answered.
#[derive(Debug)]
pub enum Next {
    /// Send the response, go on reading.
    Continue,
    /// Send the response after `delay`, then close the connection (a failed authentication).
    Close { delay: Duration, reason: String },
}

enum State {
    /// Before SaslHandshake (or, when re-authenticating, after a session).
    Handshake,
    /// After SaslHandshake: the mechanism's first token.
    First(Mechanism),
    /// SCRAM: after the server-first message.
    ScramFinal(Box<scram::ScramExchange>),
    Authenticated,
}

/// The SASL state of one connection on a SASL listener.
pub struct Authenticator {
    settings: Arc<SaslSettings>,
    state: State,
    /// `User:<name>` once authenticated.
    principal: Option<Arc<str>>,
    /// When the session ends (`connections.max.reauth.ms`).
    expires: Option<Instant>,
}

/// A request refused before or after a session: the connection is closed with this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Authenticator {
    pub fn new(settings: Arc<SaslSettings>) -> Self {
        Authenticator {
            settings,
            state: State::Handshake,
            principal: None,
            expires: None,
        }
    }

    /// Whether the connection holds a session (re-authentication included).
    pub fn authenticated(&self) -> bool {
        self.principal.is_some()
    }

    /// Whether SaslHandshake / SaslAuthenticate of this connection are the authenticator's
    /// (a handshake starts or restarts a session; an authenticate continues one).
    pub fn takes(&self, key: ApiKey) -> bool {
        match key {
            ApiKey::SaslHandshake => matches!(self.state, State::Handshake | State::Authenticated),
            ApiKey::SaslAuthenticate => {
                matches!(self.state, State::First(_) | State::ScramFinal(_))
            }
            _ => false,
        }
    }

    /// The principal a request of `key` runs as, or why the connection closes: before the
    /// session only ApiVersions is taken, and after it expired nothing is.
    pub fn admit(&self, key: ApiKey, now: Instant) -> Result<Arc<str>, Refused> {
        self.admit_frame(Some(key), now)
    }

    /// The principal a Raft frame of another node runs as: only a session takes one.
    pub fn admit_raft(&self, now: Instant) -> Result<Arc<str>, Refused> {
        self.admit_frame(None, now)
    }

    fn admit_frame(&self, key: Option<ApiKey>, now: Instant) -> Result<Arc<str>, Refused> {
        match (&self.state, &self.principal) {
            (State::Authenticated, Some(principal)) => {
                if self.expires.is_some_and(|at| now >= at) {
                    return Err(Refused(format!(
                        "{principal}'s SASL session ended (connections.max.reauth.ms = {}) \
                         without re-authentication; closing the connection",
                        self.settings.reauth_ms
                    )));
                }
                Ok(principal.clone())
            }
            _ if key == Some(ApiKey::ApiVersions) => Ok(Arc::from(ANONYMOUS)),
            _ => Err(Refused(match key {
                Some(key) => {
                    format!("Unexpected Kafka request of type {key:?} during SASL handshake")
                }
                None => "a Raft frame during the SASL handshake".to_string(),
            })),
        }
    }

    /// SaslHandshake: picks the mechanism.
    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> (SaslHandshakeResponse, Next) {
        let enabled = self
            .settings
            .mechanisms
            .iter()
            .map(|m| str_bytes(m.name()))
            .collect();
        let resp = SaslHandshakeResponse::default().with_mechanisms(enabled);
        let asked = req.mechanism.as_str();
        let reauthenticating = matches!(self.state, State::Authenticated);
        match Mechanism::from_name(asked).filter(|m| self.settings.mechanisms.contains(m)) {
            Some(m) => {
                self.state = State::First(m);
                if reauthenticating {
                    tracing::debug!(mechanism = asked, "re-authentication started");
                }
                (resp, Next::Continue)
            }
            None => (
                resp.with_error_code(UNSUPPORTED_SASL_MECHANISM),
                Next::Close {
                    delay: Duration::ZERO,
                    reason: format!(
                        "client asked SASL mechanism {asked:?}, listener {} enables {}",
                        self.settings.listener,
                        self.enabled_names()
                    ),
                },
            ),
        }
    }

    fn enabled_names(&self) -> String {
        let names: Vec<_> = self.settings.mechanisms.iter().map(|m| m.name()).collect();
        names.join(", ")
    }

    /// SaslAuthenticate: one token of the mechanism's exchange. `image` holds the SCRAM
    /// credentials; `server_nonce` is fresh randomness for SCRAM's server-first message.
    pub fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        version: i16,
        image: &MetadataImage,
        server_nonce: &str,
        now: Instant,
    ) -> (SaslAuthenticateResponse, Next) {
        let state = std::mem::replace(&mut self.state, State::Handshake);
        let mechanism = match &state {
            State::First(m) => Some(*m),
            State::ScramFinal(exchange) => Some(exchange.mechanism()),
            State::Handshake | State::Authenticated => None,
        };
        let outcome = match state {
            State::First(Mechanism::Plain) => {
                plain(&self.settings, &req.auth_bytes).map(|user| (Some(user), Vec::new()))
            }
            State::First(m) => {
                let lookup = |user: &str| scram_credential(image, user, m);
                scram::ScramExchange::start(m, &req.auth_bytes, server_nonce, lookup)
                    .map(|(exchange, reply)| {
                        self.state = State::ScramFinal(Box::new(exchange));
                        (None, reply)
                    })
                    .map_err(|e| e.0)
            }
            State::ScramFinal(exchange) => exchange
                .finish(&req.auth_bytes)
                .map(|(user, reply)| (Some(user), reply))
                .map_err(|e| e.0),
            State::Handshake | State::Authenticated => {
                Err("SaslAuthenticate without a SaslHandshake first".into())
            }
        };
        let resp = SaslAuthenticateResponse::default();
        match outcome {
            Ok((None, reply)) => (resp.with_auth_bytes(reply.into()), Next::Continue),
            Ok((Some(user), reply)) => {
                let principal: Arc<str> = Arc::from(format!("User:{user}"));
                if let Some(previous) = self.principal.as_ref().filter(|p| **p != principal) {
                    let reason = format!(
                        "re-authentication as {principal} on a session of {previous}: a \
                         connection cannot change its principal"
                    );
                    return (
                        resp.with_error_code(SASL_AUTHENTICATION_FAILED)
                            .with_error_message(Some(str_bytes(
                                "Cannot change principals during re-authentication",
                            ))),
                        Next::Close {
                            delay: Duration::ZERO,
                            reason,
                        },
                    );
                }
                let lifetime = self.settings.reauth_ms;
                self.expires = (lifetime > 0).then(|| now + Duration::from_millis(lifetime));
                self.principal = Some(principal);
                self.state = State::Authenticated;
                let mut resp = resp.with_auth_bytes(reply.into());
                if version >= 1 {
                    resp = resp.with_session_lifetime_ms(lifetime as i64);
                }
                (resp, Next::Continue)
            }
            Err(reason) => {
                let message = match mechanism {
                    Some(Mechanism::Plain) => {
                        "Authentication failed: Invalid username or password".to_string()
                    }
                    Some(m) => format!(
                        "Authentication failed during authentication due to invalid credentials \
                         with SASL mechanism {}",
                        m.name()
                    ),
                    None => "Authentication failed: SaslAuthenticate without a SaslHandshake"
                        .to_string(),
                };
                self.state = State::Handshake;
                (
                    resp.with_error_code(SASL_AUTHENTICATION_FAILED)
                        .with_error_message(Some(str_bytes(message))),
                    Next::Close {
                        delay: Duration::from_millis(self.settings.failed_delay_ms),
                        reason: format!("failed authentication: {reason}"),
                    },
                )
            }
        }
    }
}

/// The SCRAM credential of `user` for `mechanism`, if any.
fn scram_credential(image: &MetadataImage, user: &str, m: Mechanism) -> Option<ScramCredential> {
    image.scram_credentials.get(user)?.get(m.name()).cloned()
}

/// PLAIN (RFC 4616): `[authzid] NUL user NUL password`, checked against the JAAS users.
fn plain(settings: &SaslSettings, token: &[u8]) -> Result<String, String> {
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    let [authzid, user, password] = parts[..] else {
        return Err(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        ));
    };
    let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user)) else {
        return Err("PLAIN user name is not UTF-8".into());
    };
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err("Authentication failed: Client requested an authorization id that is different from username".into());
    }
    let known = settings
        .plain_users
        .get(user)
        .is_some_and(|expected| bool::from(expected.0.as_bytes().ct_eq(password)));
    if !known {
        return Err(format!("Invalid username or password (user {user:?})"));
    }
    Ok(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    const JAAS: &str = "listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" user_alice=\"al\\\"ice\";";

    #[test]
    fn settings_from_kafka_properties() {
        let s = SaslSettings::from_properties(
            &props(&format!(
                "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512\n{JAAS}\nconnections.max.reauth.ms=3000\n"
            )),
            "SASL",
        )
        .unwrap();
        assert_eq!(s.mechanisms, vec![Mechanism::Plain, Mechanism::ScramSha512]);
        assert_eq!(s.plain_users["alice"].0, "al\"ice");
        assert_eq!(s.plain_users.len(), 2);
        assert_eq!((s.reauth_ms, s.failed_delay_ms), (3000, 100));
        // Passwords never show in Debug output.
        assert!(!format!("{s:?}").contains("admin-secret"));
        let refused = |text: &str| {
            SaslSettings::from_properties(&props(text), "SASL")
                .unwrap_err()
                .to_string()
        };
        assert!(refused("").contains("GSSAPI"));
        assert!(refused("sasl.enabled.mechanisms=OAUTHBEARER\n").contains("OAUTHBEARER"));
        assert!(refused("sasl.enabled.mechanisms=PLAIN\n")
            .contains("listener.name.sasl.plain.sasl.jaas.config"));
        let wrong_module = "sasl.enabled.mechanisms=PLAIN\nlistener.name.sasl.plain.sasl.jaas.config=com.example.Login required user_a=\"b\";\n";
        let message = refused(wrong_module);
        assert!(message.contains("PlainLoginModule") && !message.contains("user_a"));
        assert!(refused("sasl.enabled.mechanisms=PLAIN\nlistener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\"\n").contains("`;`"));
        // Per-listener mechanisms win over the broker-wide list.
        let s = SaslSettings::from_properties(
            &props("sasl.enabled.mechanisms=PLAIN\nlistener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-256\n"),
            "SASL",
        )
        .unwrap();
        assert_eq!(s.mechanisms, vec![Mechanism::ScramSha256]);
    }

    fn settings() -> Arc<SaslSettings> {
        Arc::new(
            SaslSettings::from_properties(
                &props(&format!(
                    "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n{JAAS}\nconnections.max.reauth.ms=1000\n"
                )),
                "SASL",
            )
            .unwrap(),
        )
    }

    fn token(bytes: &[u8]) -> SaslAuthenticateRequest {
        SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::copy_from_slice(bytes))
    }

    fn handshake(mechanism: &str) -> SaslHandshakeRequest {
        SaslHandshakeRequest::default().with_mechanism(str_bytes(mechanism))
    }

    #[test]
    fn plain_session_admits_requests_until_it_ends() {
        let mut auth = Authenticator::new(settings());
        let now = Instant::now();
        let image = MetadataImage::default();
        assert!(auth.admit(ApiKey::Metadata, now).is_err());
        assert_eq!(&*auth.admit(ApiKey::ApiVersions, now).unwrap(), ANONYMOUS);
        assert!(!auth.takes(ApiKey::SaslAuthenticate));
        let (resp, next) = auth.handshake(&handshake("PLAIN"));
        assert_eq!(resp.error_code, 0);
        assert!(matches!(next, Next::Continue));
        let (resp, next) = auth.authenticate(&token(b"\0admin\0admin-secret"), 2, &image, "n", now);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.session_lifetime_ms, 1000);
        assert!(matches!(next, Next::Continue));
        assert_eq!(&*auth.admit(ApiKey::Metadata, now).unwrap(), "User:admin");
        let later = now + Duration::from_millis(1000);
        assert!(auth.admit(ApiKey::Metadata, later).is_err());
        // Re-authentication renews the session; another principal is refused.
        assert!(auth.takes(ApiKey::SaslHandshake));
        auth.handshake(&handshake("PLAIN"));
        auth.authenticate(&token(b"\0admin\0admin-secret"), 2, &image, "n", later);
        assert!(auth.admit(ApiKey::Metadata, later).is_ok());
        auth.handshake(&handshake("PLAIN"));
        let (resp, next) = auth.authenticate(&token(b"\0alice\0al\"ice"), 2, &image, "n", later);
        assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
        assert!(matches!(next, Next::Close { .. }));
    }

    #[test]
    fn failures_close_after_the_delay_without_naming_the_reason() {
        let image = MetadataImage::default();
        let now = Instant::now();
        for bad in [
            &b"\0admin\0wrong"[..],
            b"\0nobody\0x",
            b"admin-secret",
            b"\0\0",
            b"bob\0admin\0admin-secret",
            b"\0admin\0admin-secret\0extra",
        ] {
            let mut auth = Authenticator::new(settings());
            auth.handshake(&handshake("PLAIN"));
            let (resp, next) = auth.authenticate(&token(bad), 1, &image, "n", now);
            assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
            let message = resp.error_message.unwrap().to_string();
            assert!(message.starts_with("Authentication failed"), "{message}");
            assert!(!message.contains("admin-secret"));
            match next {
                Next::Close { delay, reason } => {
                    assert_eq!(delay, Duration::from_millis(100));
                    assert!(!reason.contains("admin-secret"), "{reason}");
                }
                other => panic!("{other:?}"),
            }
            assert!(auth.admit(ApiKey::Metadata, now).is_err());
        }
        // A mechanism the listener does not enable.
        let mut auth = Authenticator::new(settings());
        let (resp, next) = auth.handshake(&handshake("SCRAM-SHA-512"));
        assert_eq!(resp.error_code, UNSUPPORTED_SASL_MECHANISM);
        assert_eq!(resp.mechanisms.len(), 2);
        assert!(matches!(next, Next::Close { .. }));
        // SaslAuthenticate before a handshake is not the authenticator's.
        assert!(!Authenticator::new(settings()).takes(ApiKey::SaslAuthenticate));
    }

    #[test]
    fn scram_exchange_against_the_image() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let m = Mechanism::ScramSha256;
        let salt = b"pepper".to_vec();
        let h = strata_kafka::scram::ScramHash::Sha256;
        let salted = h.salted_password(b"secret", &salt, 4096);
        let mut image = MetadataImage::default();
        image
            .scram_credentials
            .entry("alice".into())
            .or_default()
            .insert(m.name().into(), scram::credential(m, &salted, &salt, 4096));
        let now = Instant::now();
        let mut auth = Authenticator::new(settings());
        auth.handshake(&handshake("SCRAM-SHA-256"));
        let (resp, _) = auth.authenticate(&token(b"n,,n=alice,r=cn"), 2, &image, "sn", now);
        assert_eq!(resp.error_code, 0);
        let server_first = String::from_utf8(resp.auth_bytes.to_vec()).unwrap();
        assert_eq!(
            server_first,
            format!("r=cnsn,s={},i=4096", b64.encode(&salt))
        );
        assert!(auth.takes(ApiKey::SaslAuthenticate));
        // The client's proof.
        let client_key = h.client_key(&salted);
        let auth_message = format!("n=alice,r=cn,{server_first},c=biws,r=cnsn");
        let sig = h.hmac(&h.stored_key(&client_key), auth_message.as_bytes());
        let proof = strata_kafka::scram::xor(&client_key, &sig);
        let last = format!("c=biws,r=cnsn,p={}", b64.encode(proof));
        let (resp, next) = auth.authenticate(&token(last.as_bytes()), 2, &image, "sn", now);
        assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        assert!(matches!(next, Next::Continue));
        assert!(resp.auth_bytes.starts_with(b"v="));
        assert_eq!(&*auth.admit(ApiKey::Produce, now).unwrap(), "User:alice");
        // An unknown user fails at the first message, as a wrong password does at the last.
        let mut auth = Authenticator::new(settings());
        auth.handshake(&handshake("SCRAM-SHA-256"));
        let (resp, next) = auth.authenticate(&token(b"n,,n=bob,r=cn"), 2, &image, "sn", now);
        assert_eq!(resp.error_code, SASL_AUTHENTICATION_FAILED);
        assert!(matches!(next, Next::Close { .. }));
    }

    proptest::proptest! {
        /// Hostile tokens in any order (a fuzz of the exchange): nothing panics, nothing
        /// authenticates, every failure closes the connection.
        #[test]
        fn arbitrary_tokens_never_authenticate(
            mechanism in 0usize..3,
            tokens in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160), 1..4),
            prefix in proptest::prop_oneof![proptest::strategy::Just(&b""[..]), proptest::strategy::Just(&b"n,,n=alice,r="[..]), proptest::strategy::Just(&b"c=biws,r="[..])],
        ) {
            let mut image = MetadataImage::default();
            image.scram_credentials.entry("alice".into()).or_default().insert(
                "SCRAM-SHA-256".into(),
                scram::credential(Mechanism::ScramSha256, &[9; 32], b"salt", 4096),
            );
            let now = Instant::now();
            let mut auth = Authenticator::new(settings());
            auth.handshake(&handshake(Mechanism::ALL[mechanism].name()));
            for t in tokens {
                if !auth.takes(ApiKey::SaslAuthenticate) {
                    break;
                }
                let bytes: Vec<u8> = prefix.iter().copied().chain(t).collect();
                let (resp, next) = auth.authenticate(&token(&bytes), 2, &image, "sn", now);
                let closes = matches!(next, Next::Close { .. });
                if resp.error_code != 0 {
                    proptest::prop_assert!(closes);
                }
            }
            proptest::prop_assert!(auth.admit(ApiKey::Metadata, now).is_err());
        }
    }
}
