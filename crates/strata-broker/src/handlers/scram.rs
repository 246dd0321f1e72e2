//! SCRAM credentials (KIP-554): AlterUserScramCredentials and DescribeUserScramCredentials,
//! what `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[...]'` sends.
//! A change is checked here (Kafka's rules: known mechanism, iterations within 4096..=16384,
//! a salt and a salted password, each user once per request); the active
//! controller stores what verifies the password (salt, StoredKey, ServerKey, iterations) in the
//! metadata log, so every broker of the cluster authenticates the user and a restart keeps it.
//! Also the answers to SaslHandshake / SaslAuthenticate that reach the handlers: on a listener
//! without SASL, or after a connection authenticated, they are ILLEGAL_SASL_STATE, as in Kafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;
use strata_controller::ScramChange;

use crate::authz::Op;
use crate::broker::Broker;
use crate::handlers::api_versions::ListenerKind;
use crate::handlers::controller::{error_code, error_message};
use crate::handlers::{code, str_bytes, RequestContext};
use crate::sasl::scram::{self, MAX_ITERATIONS, MIN_ITERATIONS};
use crate::sasl::{Mechanism, ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM};

const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

/// A new credential as the client sent it.
#[derive(Clone)]
pub struct Upsert {
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// One checked change of AlterUserScramCredentials.
#[derive(Clone)]
pub struct ScramRequestChange {
    pub user: String,
    pub mechanism: Mechanism,
    /// `None`: delete the credential.
    pub upsert: Option<Upsert>,
}

impl ScramRequestChange {
    /// The change as the metadata log keeps it (no salted password).
    pub fn derive(&self) -> ScramChange {
        ScramChange {
            user: self.user.clone(),
            mechanism: self.mechanism.name().to_string(),
            credential: self.upsert.as_ref().map(|u| {
                scram::credential(self.mechanism, &u.salted_password, &u.salt, u.iterations)
            }),
        }
    }
}

/// Checks one change: the refusal Kafka answers for it, if any.
fn check(user: &str, mechanism: i8, upsert: Option<&Upsert>) -> Result<Mechanism, (i16, String)> {
    if user.is_empty() {
        return Err((UNACCEPTABLE_CREDENTIAL, "Username must not be empty".into()));
    }
    let Some(m) = Mechanism::from_scram_type(mechanism) else {
        return Err((UNSUPPORTED_SASL_MECHANISM, "Unknown SCRAM mechanism".into()));
    };
    if let Some(u) = upsert {
        if u.iterations < MIN_ITERATIONS {
            return Err((UNACCEPTABLE_CREDENTIAL, "Too few iterations".into()));
        }
        if u.iterations > MAX_ITERATIONS {
            return Err((UNACCEPTABLE_CREDENTIAL, "Too many iterations".into()));
        }
        if u.salt.is_empty() {
            return Err((UNACCEPTABLE_CREDENTIAL, "Salt must not be empty".into()));
        }
        if u.salted_password.is_empty() {
            return Err((
                UNACCEPTABLE_CREDENTIAL,
                "Salted password must not be empty".into(),
            ));
        }
    }
    Ok(m)
}

pub async fn alter_user_scram_credentials(
    broker: &Broker,
    req: AlterUserScramCredentialsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> AlterUserScramCredentialsResponse {
    if !broker.may_cluster(ctx, Op::Alter) {
        let users: std::collections::BTreeSet<String> = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(
            users
                .into_iter()
                .map(|u| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(u))
                        .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
                })
                .collect(),
        );
    }
    // Users in the order they first appear; each gets one result.
    let mut users: Vec<String> = Vec::new();
    let mut refused: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut changes: Vec<ScramRequestChange> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let entries = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism, None))
        .chain(req.upsertions.iter().map(|u| {
            let upsert = Upsert {
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            };
            (u.name.to_string(), u.mechanism, Some(upsert))
        }));
    for (user, mechanism, upsert) in entries {
        if !users.contains(&user) {
            users.push(user.clone());
        }
        // Kafka counts changes per user, not per mechanism: one user twice in a request
        // (even for two mechanisms) is refused.
        if !seen.insert(user.clone()) {
            refused.entry(user.clone()).or_insert((
                DUPLICATE_RESOURCE,
                "A user credential cannot be altered twice in the same request".into(),
            ));
            continue;
        }
        match check(&user, mechanism, upsert.as_ref()) {
            Err(e) => {
                refused.entry(user.clone()).or_insert(e);
            }
            Ok(m) => changes.push(ScramRequestChange {
                user,
                mechanism: m,
                upsert,
            }),
        }
    }
    // A user with any refused change keeps all its credentials as they were.
    changes.retain(|c| !refused.contains_key(&c.user));
    if ctx.listener == ListenerKind::Controller && !broker.quorum.is_active() {
        for c in &changes {
            refused
                .entry(c.user.clone())
                .or_insert((code::NOT_CONTROLLER, String::new()));
        }
    } else if !changes.is_empty() {
        match broker
            .link
            .alter_scram_credentials(&changes, broker.admin_timeout())
            .await
        {
            Ok(by_user) => refused.extend(by_user),
            Err(e) => {
                for c in &changes {
                    refused
                        .entry(c.user.clone())
                        .or_insert((error_code(&e), error_message(&e)));
                }
            }
        }
    }
    let results = users
        .into_iter()
        .map(|user| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&*user));
            match refused.remove(&user) {
                None => result.with_error_code(code::NONE),
                Some((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

pub async fn describe_user_scram_credentials(
    broker: &Broker,
    req: DescribeUserScramCredentialsRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DescribeUserScramCredentialsResponse {
    if !broker.may_cluster(ctx, Op::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    let image = broker.image();
    let infos = |user: &str| -> Option<Vec<CredentialInfo>> {
        let by_mechanism = image.scram_credentials.get(user)?;
        Some(
            by_mechanism
                .iter()
                .filter_map(|(name, c)| {
                    let m = Mechanism::from_name(name)?;
                    Some(
                        CredentialInfo::default()
                            .with_mechanism(m.scram_type())
                            .with_iterations(c.iterations),
                    )
                })
                .collect(),
        )
    };
    let named: Vec<String> = req
        .users
        .unwrap_or_default()
        .iter()
        .map(|u| u.name.to_string())
        .collect();
    let results = if named.is_empty() {
        image
            .scram_credentials
            .keys()
            .map(|user| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(str_bytes(user.as_str()))
                    .with_credential_infos(infos(user).unwrap_or_default())
            })
            .collect()
    } else {
        let mut seen = std::collections::BTreeSet::new();
        let duplicated: std::collections::BTreeSet<&String> =
            named.iter().filter(|u| !seen.insert(*u)).collect();
        let mut answered = std::collections::BTreeSet::new();
        named
            .iter()
            .filter(|u| answered.insert(*u))
            .map(|user| {
                let result =
                    DescribeUserScramCredentialsResult::default().with_user(str_bytes(user.as_str()));
                if duplicated.contains(user) {
                    return result.with_error_code(DUPLICATE_RESOURCE).with_error_message(Some(
                        str_bytes(format!(
                            "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                        )),
                    ));
                }
                match infos(user) {
                    Some(infos) => result.with_credential_infos(infos),
                    None => result.with_error_code(RESOURCE_NOT_FOUND).with_error_message(Some(
                        str_bytes(format!(
                            "Attempt to describe a user credential that does not exist: {user}"
                        )),
                    )),
                }
            })
            .collect()
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// DescribeClientQuotas: this broker enforces no client quotas (AlterClientQuotas is not
/// served), so every filter matches nothing; `kafka-configs --describe --entity-type users`
/// asks for users' quotas beside their SCRAM credentials. Entity types other than Kafka's
/// (`user`, `client-id`, `ip`) and malformed components are refused as Kafka refuses them.
pub async fn describe_client_quotas(
    broker: &Broker,
    req: DescribeClientQuotasRequest,
    _version: i16,
    ctx: &RequestContext,
) -> DescribeClientQuotasResponse {
    if !broker.may_cluster(ctx, Op::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(crate::handlers::acls::CLUSTER_DENIED)));
    }
    const INVALID_REQUEST: i16 = 42;
    let refusal = req.components.iter().find_map(|c| {
        let kind = c.entity_type.as_str();
        if !["user", "client-id", "ip"].contains(&kind) {
            return Some(format!("Custom entity type '{kind}' not supported"));
        }
        match (c.match_type, &c._match) {
            (0, None) => Some(format!(
                "Request specified exact match for {kind} but no name"
            )),
            (0..=2, _) => None,
            (other, _) => Some(format!("Unexpected match type {other}")),
        }
    });
    let resp = DescribeClientQuotasResponse::default();
    match refusal {
        Some(message) => resp
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(str_bytes(message))),
        None => resp.with_entries(Some(Vec::new())),
    }
}

/// SaslHandshake where no SASL exchange is expected (a listener without SASL, or an
/// authenticator that does not take it): ILLEGAL_SASL_STATE, as Kafka answers it.
pub async fn sasl_handshake(
    _broker: &Broker,
    req: SaslHandshakeRequest,
    _version: i16,
    ctx: &RequestContext,
) -> SaslHandshakeResponse {
    tracing::debug!(
        listener = %ctx.listener_name,
        mechanism = %req.mechanism.as_str(),
        "SaslHandshake on a listener without SASL"
    );
    SaslHandshakeResponse::default().with_error_code(ILLEGAL_SASL_STATE)
}

/// SaslAuthenticate outside an exchange: ILLEGAL_SASL_STATE.
pub async fn sasl_authenticate(
    _broker: &Broker,
    _req: SaslAuthenticateRequest,
    _version: i16,
    _ctx: &RequestContext,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ILLEGAL_SASL_STATE)
        .with_error_message(Some(str_bytes(
            "SaslAuthenticate request received outside a SASL exchange",
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(iterations: i32) -> Upsert {
        Upsert {
            iterations,
            salt: vec![1],
            salted_password: vec![2],
        }
    }

    #[test]
    fn changes_are_checked_as_kafka_does() {
        assert_eq!(
            check("alice", 2, Some(&upsert(8192))).unwrap(),
            Mechanism::ScramSha512
        );
        assert_eq!(check("alice", 1, None).unwrap(), Mechanism::ScramSha256);
        assert_eq!(check("", 1, None).unwrap_err().0, UNACCEPTABLE_CREDENTIAL);
        assert_eq!(
            check("a", 0, None).unwrap_err().0,
            UNSUPPORTED_SASL_MECHANISM
        );
        assert_eq!(
            check("a", 3, None).unwrap_err().0,
            UNSUPPORTED_SASL_MECHANISM
        );
        let few = check("a", 1, Some(&upsert(1000))).unwrap_err();
        assert_eq!(few.0, UNACCEPTABLE_CREDENTIAL);
        assert_eq!(few.1, "Too few iterations");
        assert!(check("a", 1, Some(&upsert(16385))).is_err());
        assert!(check("a", 1, Some(&upsert(16384))).is_ok());
        let mut no_salt = upsert(4096);
        no_salt.salt.clear();
        assert!(check("a", 1, Some(&no_salt)).is_err());
    }
}
