//! PEM key and trust stores as Kafka's `ssl.*` properties give them, read the same way by the
//! client (its own certificate for mutual TLS) and by the broker's listeners: certificates,
//! a private key (encrypted PKCS#8 with a password, or an unencrypted PKCS#8, PKCS#1 or SEC1
//! key), and inline values written on one line.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM text given inline as Kafka takes it: a property value is one line, so the line breaks of
/// its blocks may be spaces. Rebuilds each block as header, base64 lines and footer; text that
/// has line breaks already is kept as it is.
pub fn pem_lines(value: &str) -> String {
    if value.contains('\n') {
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value.trim();
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body = &after[label_end + "-----".len()..];
        let footer = format!("-----END {label}-----");
        let Some(end) = body.find(&footer) else {
            break;
        };
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for chunk in body[..end].split_whitespace() {
            out.push_str(chunk);
            out.push('\n');
        }
        out.push_str(&footer);
        out.push('\n');
        rest = &body[end + footer.len()..];
    }
    if out.is_empty() {
        value.to_string()
    } else {
        out
    }
}

/// The CERTIFICATE blocks of `bytes`, at least one.
pub fn certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key of a key store: the encrypted PKCS#8 block decrypted with `password`
/// (`ssl.key.password`), else the unencrypted key.
pub fn private_key(bytes: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(bytes);
    let encrypted = text.find(ENCRYPTED_BEGIN).and_then(|begin| {
        let end = begin + text[begin..].find(ENCRYPTED_END)? + ENCRYPTED_END.len();
        Some(&text[begin..end])
    });
    match (encrypted, password) {
        (Some(block), Some(password)) => {
            let (_, document) = pkcs8::der::Document::from_pem(block)
                .map_err(|e| format!("the encrypted private key is not PEM: {e}"))?;
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
                .map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
            let plain = info.decrypt(password).map_err(|_| {
                "the private key does not decrypt with ssl.key.password (a wrong password, or a \
                 cipher other than PBES2 with AES)"
                    .to_string()
            })?;
            Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
        }
        (Some(_), None) => {
            Err("the private key is encrypted and ssl.key.password is not given".into())
        }
        (None, _) => PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|_| "no private key block (PKCS#8, PKCS#1 or SEC1)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_pem_gets_its_line_breaks_back() {
        let given = "-----BEGIN CERTIFICATE----- QUJD REVG -----END CERTIFICATE----- \
                     -----BEGIN PRIVATE KEY----- R0hJ -----END PRIVATE KEY-----";
        assert_eq!(
            pem_lines(given),
            "-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nR0hJ\n-----END PRIVATE KEY-----\n"
        );
        let kept = "-----BEGIN X-----\nQUJD\n-----END X-----\n";
        assert_eq!(pem_lines(kept), kept);
    }

    #[test]
    fn missing_blocks_are_named() {
        assert_eq!(
            certificates(b"nothing").unwrap_err(),
            "no CERTIFICATE block"
        );
        assert!(private_key(b"nothing", None)
            .unwrap_err()
            .contains("no private key"));
        let encrypted = format!("{ENCRYPTED_BEGIN}\nQUJD\n{ENCRYPTED_END}\n");
        assert!(private_key(encrypted.as_bytes(), None)
            .unwrap_err()
            .contains("ssl.key.password"));
    }
}
