//! The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka runs it
//! (KIP-84): a client-first message naming the user, the server-first message with the
//! credential's salt and iterations, a client-final message with the proof, and the server's
//! signature. The primitives (HMAC, SHA-2) are the RustCrypto crates; this module only reads
//! and writes the messages. No channel binding, no extensions (Kafka's `tokenauth` belongs to
//! delegation tokens, which are not served).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use strata_controller::ScramCredential;
use strata_kafka::scram::{decode_saslname, xor, ScramHash};
use subtle::ConstantTimeEq;

use super::Mechanism;

/// Kafka's bounds on a credential's iterations (`ScramMechanism.minIterations/maxIterations`).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// A failed exchange. The message goes to the broker's log; the client is told only that
/// authentication failed (as Kafka does, so a client cannot tell an unknown user from a wrong
/// password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScramError(pub String);

fn fail<T>(reason: impl Into<String>) -> Result<T, ScramError> {
    Err(ScramError(reason.into()))
}

fn hash_of(mechanism: Mechanism) -> ScramHash {
    match mechanism {
        Mechanism::ScramSha512 => ScramHash::Sha512,
        _ => ScramHash::Sha256,
    }
}

/// The stored credential of a salted password (`Hi(password, salt, iterations)`, which Kafka's
/// admin client computes and sends in AlterUserScramCredentials): `StoredKey = H(ClientKey)`,
/// `ServerKey`, with `ClientKey = HMAC(SaltedPassword, "Client Key")`.
pub fn credential(
    mechanism: Mechanism,
    salted_password: &[u8],
    salt: &[u8],
    iterations: i32,
) -> ScramCredential {
    let h = hash_of(mechanism);
    ScramCredential {
        salt: salt.to_vec(),
        stored_key: h.stored_key(&h.client_key(salted_password)),
        server_key: h.server_key(salted_password),
        iterations,
    }
}

/// An exchange after the client-first message, waiting for the client-final one.
pub struct ScramExchange {
    mechanism: Mechanism,
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credential: ScramCredential,
}

impl std::fmt::Debug for ScramExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramExchange")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramExchange {
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Reads the client-first message (`n,,n=user,r=nonce`); `lookup` finds the user's
    /// credential. Returns the exchange and the server-first message.
    pub fn start(
        mechanism: Mechanism,
        message: &[u8],
        server_nonce: &str,
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        let Ok(text) = std::str::from_utf8(message) else {
            return fail("client-first message is not UTF-8");
        };
        let mut parts = text.splitn(3, ',');
        let (Some(binding), Some(authzid_field), Some(bare)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return fail("client-first message without a GS2 header");
        };
        match binding {
            "n" | "y" => {}
            b if b.starts_with("p=") => return fail("channel binding is not supported"),
            _ => return fail(format!("invalid GS2 channel-binding flag {binding:?}")),
        }
        let authzid = match authzid_field {
            "" => None,
            a => match a.strip_prefix("a=") {
                Some(name) => Some(decode_saslname(name).map_err(ScramError)?),
                None => return fail("invalid authorization id"),
            },
        };
        let mut attributes = bare.split(',');
        let user = match attributes.next().and_then(|a| a.strip_prefix("n=")) {
            Some(name) if !name.is_empty() => decode_saslname(name).map_err(ScramError)?,
            _ => return fail("client-first message without a user name"),
        };
        let client_nonce = match attributes.next().and_then(|a| a.strip_prefix("r=")) {
            Some(nonce) if !nonce.is_empty() && nonce.bytes().all(|b| b.is_ascii_graphic()) => {
                nonce
            }
            _ => return fail("client-first message without a nonce"),
        };
        if let Some(extension) = attributes.next() {
            let name = extension.split('=').next().unwrap_or("");
            return fail(format!(
                "SCRAM extension {name:?} is not supported (delegation tokens are not served)"
            ));
        }
        if authzid.as_ref().is_some_and(|a| *a != user) {
            return fail("Authentication failed: Client requested an authorization id that is different from username");
        }
        let Some(credential) = lookup(&user) else {
            return fail(format!(
                "no {} credential for user {user:?}",
                mechanism.name()
            ));
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        Ok((
            ScramExchange {
                mechanism,
                gs2_header: format!("{binding},{authzid_field},"),
                user,
                client_first_bare: bare.to_string(),
                server_first,
                nonce,
                credential,
            },
            reply,
        ))
    }

    /// Reads the client-final message (`c=biws,r=nonce,p=proof`) and checks the proof. Returns
    /// the authenticated user and the server-final message (`v=signature`).
    pub fn finish(self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let Ok(text) = std::str::from_utf8(message) else {
            return fail("client-final message is not UTF-8");
        };
        let Some(at) = text.rfind(",p=") else {
            return fail("client-final message without a proof");
        };
        let (without_proof, proof) = (&text[..at], &text[at + 3..]);
        let mut attributes = without_proof.split(',');
        let binding = attributes.next().and_then(|a| a.strip_prefix("c="));
        let nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
        if attributes.next().is_some() {
            return fail("SCRAM extensions are not supported");
        }
        match binding.map(|b| B64.decode(b)) {
            Some(Ok(b)) if b == self.gs2_header.as_bytes() => {}
            _ => return fail("channel binding does not match the GS2 header"),
        }
        if nonce != Some(self.nonce.as_str()) {
            return fail("nonce does not match the server's");
        }
        let Ok(proof) = B64.decode(proof) else {
            return fail("proof is not base64");
        };
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let h = hash_of(self.mechanism);
        let signature = h.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return fail("proof of the wrong length");
        }
        let client_key = xor(&proof, &signature);
        let matches: bool = h
            .stored_key(&client_key)
            .ct_eq(&self.credential.stored_key)
            .into();
        if !matches {
            return fail(format!("invalid proof for user {:?}", self.user));
        }
        let server_signature = h.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok((
            self.user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hi() as a client computes it.
    fn salted(m: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        hash_of(m).salted_password(password.as_bytes(), salt, iterations)
    }

    fn hmac(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
        hash_of(m).hmac(key, data)
    }

    fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
        hash_of(m).hash(data)
    }

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let m = Mechanism::ScramSha256;
        let cred = credential(m, &salted(m, "pencil", &salt, 4096), &salt, 4096);
        let (exchange, server_first) = ScramExchange::start(
            m,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            |u| (u == "user").then(|| cred.clone()),
        )
        .unwrap();
        assert_eq!(
            server_first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, server_final) = exchange
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    fn start(m: Mechanism, cred: &ScramCredential) -> ScramExchange {
        ScramExchange::start(m, b"n,,n=alice,r=abc", "xyz", |_| Some(cred.clone()))
            .unwrap()
            .0
    }

    #[test]
    fn a_wrong_proof_or_nonce_or_binding_is_refused() {
        let m = Mechanism::ScramSha512;
        let salt = b"salt".to_vec();
        let cred = credential(m, &salted(m, "secret", &salt, 4096), &salt, 4096);
        // A proof made with another password.
        let wrong = salted(m, "other", &salt, 4096);
        let client_key = hmac(m, &wrong, b"Client Key");
        let auth = format!(
            "n=alice,r=abc,r=abcxyz,s={},i=4096,c=biws,r=abcxyz",
            B64.encode(&salt)
        );
        let sig = hmac(m, &hash(m, &client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let msg = format!("c=biws,r=abcxyz,p={}", B64.encode(&proof));
        let err = start(m, &cred).finish(msg.as_bytes()).unwrap_err();
        assert!(err.0.contains("invalid proof"), "{err}");
        // The right password passes the same way.
        let right = salted(m, "secret", &salt, 4096);
        let client_key = hmac(m, &right, b"Client Key");
        let sig = hmac(m, &hash(m, &client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let msg = format!("c=biws,r=abcxyz,p={}", B64.encode(&proof));
        assert_eq!(start(m, &cred).finish(msg.as_bytes()).unwrap().0, "alice");
        let msg = format!("c=biws,r=abcxyZ,p={}", B64.encode(&proof));
        assert!(start(m, &cred).finish(msg.as_bytes()).is_err());
        let msg = format!("c=eSws,r=abcxyz,p={}", B64.encode(&proof));
        assert!(start(m, &cred).finish(msg.as_bytes()).is_err());
        for garbage in [&b""[..], b"p=", b"c=biws,r=abcxyz,p=!!", b"\xff\xfe,p=AA=="] {
            assert!(start(m, &cred).finish(garbage).is_err());
        }
    }

    #[test]
    fn malformed_client_first_messages_are_refused() {
        let cred = credential(Mechanism::ScramSha256, b"k", b"s", 4096);
        let lookup = |_: &str| Some(cred.clone());
        for message in [
            &b""[..],
            b"n,,",
            b"n,,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=alice",
            b"p=tls-unique,,n=alice,r=abc",
            b"x,,n=alice,r=abc",
            b"n,a=bob,n=alice,r=abc",
            b"n,,n=al=ice,r=abc",
            b"n,,n=alice,r=abc,tokenauth=true",
            b"\xff,,n=alice,r=abc",
        ] {
            assert!(
                ScramExchange::start(Mechanism::ScramSha256, message, "s", lookup).is_err(),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        assert!(
            ScramExchange::start(Mechanism::ScramSha256, b"n,,n=alice,r=a", "s", |_| None).is_err()
        );
        // An authzid equal to the user, and escaped names, are fine.
        let (exchange, _) = ScramExchange::start(
            Mechanism::ScramSha256,
            b"n,a=a=2Cb,n=a=2Cb,r=x",
            "s",
            lookup,
        )
        .unwrap();
        assert_eq!(exchange.user, "a,b");
        assert_eq!(exchange.gs2_header, "n,a=a=2Cb,");
    }
}
