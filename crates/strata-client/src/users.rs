//! SCRAM users through the admin API (KIP-554), as Kafka's admin client manages them: the
//! salted password is computed here from a fresh random salt, so the password itself never
//! leaves the process.

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rand::Rng;
use strata_kafka::scram::ScramHash;

use crate::client::Target;
use crate::security::SaslMechanism;
use crate::{Admin, Error};

fn scram_type(mechanism: SaslMechanism) -> Result<(i8, ScramHash), Error> {
    match mechanism {
        SaslMechanism::ScramSha256 => Ok((1, ScramHash::Sha256)),
        SaslMechanism::ScramSha512 => Ok((2, ScramHash::Sha512)),
        SaslMechanism::Plain => Err(Error::Unsupported {
            api: "AlterUserScramCredentials",
            reason: "PLAIN users live in the brokers' JAAS configuration, not in the cluster"
                .into(),
        }),
    }
}

impl Admin {
    /// Sets `user`'s credential for a SCRAM `mechanism` (replacing any it had).
    pub async fn upsert_scram_credential(
        &self,
        user: &str,
        mechanism: SaslMechanism,
        password: &str,
        iterations: i32,
    ) -> Result<(), Error> {
        let (kind, hash) = scram_type(mechanism)?;
        let salt: [u8; 24] = rand::rng().random();
        let salted = hash.salted_password(password.as_bytes(), &salt, iterations.max(1) as u32);
        let upsertion = ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(kind)
            .with_iterations(iterations)
            .with_salt(salt.to_vec().into())
            .with_salted_password(salted.into());
        self.alter_scram(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]),
        )
        .await
    }

    /// Deletes `user`'s credential for `mechanism`.
    pub async fn delete_scram_credential(
        &self,
        user: &str,
        mechanism: SaslMechanism,
    ) -> Result<(), Error> {
        let (kind, _) = scram_type(mechanism)?;
        let deletion = ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(user.to_string()))
            .with_mechanism(kind);
        self.alter_scram(AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]))
            .await
    }

    async fn alter_scram(&self, req: AlterUserScramCredentialsRequest) -> Result<(), Error> {
        let c = &self.client;
        let req = &req;
        c.retry("AlterUserScramCredentials", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let (_, resp) = conn.request(|_| req.clone(), c.timeout()).await?;
            for r in resp.results {
                Error::check(
                    "AlterUserScramCredentials",
                    r.error_code,
                    r.error_message.as_deref(),
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The SCRAM mechanisms and iterations of every user (or of `users`): `(user, mechanism,
    /// iterations)`, sorted.
    pub async fn describe_scram_credentials(
        &self,
        users: &[&str],
    ) -> Result<Vec<(String, SaslMechanism, i32)>, Error> {
        let c = &self.client;
        c.retry("DescribeUserScramCredentials", || async move {
            let conn = c.connection_for(&Target::Any).await?;
            let named = (!users.is_empty()).then(|| {
                users
                    .iter()
                    .map(|u| UserName::default().with_name(StrBytes::from_string(u.to_string())))
                    .collect()
            });
            let (_, resp) = conn
                .request(
                    |_| DescribeUserScramCredentialsRequest::default().with_users(named.clone()),
                    c.timeout(),
                )
                .await?;
            Error::check(
                "DescribeUserScramCredentials",
                resp.error_code,
                resp.error_message.as_deref(),
            )?;
            let mut out = Vec::new();
            for r in resp.results {
                Error::check(
                    "DescribeUserScramCredentials",
                    r.error_code,
                    r.error_message.as_deref(),
                )?;
                for info in r.credential_infos {
                    let mechanism = match info.mechanism {
                        1 => SaslMechanism::ScramSha256,
                        2 => SaslMechanism::ScramSha512,
                        _ => continue,
                    };
                    out.push((r.user.to_string(), mechanism, info.iterations));
                }
            }
            out.sort_by(|a, b| (&a.0, a.1.name()).cmp(&(&b.0, b.1.name())));
            Ok(out)
        })
        .await
    }
}
