//! The principal of a client certificate on an SSL listener, as Kafka's default principal
//! builder makes it: the certificate's subject as an RFC 2253 distinguished name (Java's
//! `X500Principal.getName()`: the last RDN first, `CN`, `C`, `L`, `ST`, `O`, `OU`, `STREET`, `DC`
//! and `UID` by name, other attributes as `<oid>=#<hex of their DER>`), mapped by
//! `ssl.principal.mapping.rules`, then `User:<name>`.
//!
//! The rules are Kafka's: a comma-separated list of `RULE:<regex>/<replacement>/[L|U]` (the
//! regex must match the whole name; `$1`... name its groups; `L`/`U` change the case) and
//! `DEFAULT` (the name as it is); the first rule that applies wins, and a name no rule applies to
//! is refused (the connection is closed, as Kafka fails its authentication).

use der::asn1::Any;
use der::{Decode, Encode, Tag, Tagged};
use regex::Regex;
use x509_cert::Certificate;

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalRules {
    rules: Vec<Rule>,
    text: String,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Pattern {
        regex: Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl PartialEq for PrincipalRules {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PrincipalRules {}

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules {
            rules: vec![Rule::Default],
            text: "DEFAULT".into(),
        }
    }
}

/// Reads up to an unescaped `/`; returns (the text with `\/` unescaped, the rest after `/`).
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// Java's `$1` group references as the `regex` crate's `${1}` (so a letter after the digits
/// does not become part of a group name); `\$` is a literal dollar.
fn replacement_of(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl PrincipalRules {
    /// Parses the property's value (Kafka's syntax); the message names the rule it refuses.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let invalid = || format!("Invalid rule: {rest}");
                let (pattern, after) = until_slash(after).ok_or_else(invalid)?;
                let (replacement, after) = until_slash(after).ok_or_else(invalid)?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let regex = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("Invalid rule: {rest}: {e}"))?;
                rules.push(Rule::Pattern {
                    regex,
                    replacement: replacement_of(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("Invalid rule: {rest}"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("Invalid rule: {rest}")),
            }
        }
        if rules.is_empty() {
            return Ok(PrincipalRules::default());
        }
        Ok(PrincipalRules {
            rules,
            text: text.trim().to_string(),
        })
    }

    /// The short name of `dn` under the first rule that applies; `None` when none does.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Pattern {
                regex,
                replacement,
                case,
            } => {
                let captures = regex.captures(dn)?;
                let mut name = String::new();
                captures.expand(replacement, &mut name);
                Some(match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                })
            }
        })
    }
}

impl std::fmt::Display for PrincipalRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The RFC 2253 name of an attribute type Java's `X500Principal` prints by keyword.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The text of a directory string, when it is one.
fn string_value(value: &Any) -> Option<String> {
    let bytes = value.value();
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::VisibleString => {
            String::from_utf8(bytes.to_vec()).ok()
        }
        // T.61 as Latin-1, as Java reads it.
        Tag::TeletexString => Some(bytes.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// RFC 2253 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject of a DER certificate as Java's `X500Principal.getName()` writes it.
pub fn subject_dn(certificate: &[u8]) -> Result<String, String> {
    let cert = Certificate::from_der(certificate).map_err(|e| format!("certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.tbs_certificate.subject.0.iter().rev() {
        let mut parts = Vec::new();
        for atv in rdn.0.iter() {
            let oid = atv.oid.to_string();
            let text = match (keyword(&oid), string_value(&atv.value)) {
                (Some(k), Some(s)) => format!("{k}={}", escape(&s)),
                _ => {
                    let der = atv.value.to_der().map_err(|e| format!("subject: {e}"))?;
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{oid}=#{hex}")
                }
            };
            parts.push(text);
        }
        rdns.push(parts.join("+"));
    }
    Ok(rdns.join(","))
}

/// The principal of a TLS connection: `User:<mapped subject>` of its client certificate, or
/// `None` without one. An error when the certificate cannot be read or no rule applies.
pub fn principal_of(
    certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    rules: &PrincipalRules,
) -> Result<Option<String>, String> {
    let Some(first) = certificates.and_then(|c| c.first()) else {
        return Ok(None);
    };
    let dn = subject_dn(first)?;
    match rules.apply(&dn) {
        Some(name) => Ok(Some(format!("User:{name}"))),
        None => Err(format!("No rules apply to {dn}, rules {rules}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_kafkas_syntax_and_order() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,\n DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.apply("CN=kafka1,OU=ServiceUsers,O=Org").as_deref(),
            Some("kafka1")
        );
        assert_eq!(
            rules.apply("CN=Duke,OU=SME,O=Org,C=US").as_deref(),
            Some("duke@sme")
        );
        assert_eq!(
            rules.apply("OU=ops,CN=svc").as_deref(),
            Some("OU=ops,CN=svc")
        );
        let only = PrincipalRules::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(only.apply("CN=alice,O=x").as_deref(), Some("ALICE"));
        assert_eq!(only.apply("O=x"), None, "no rule applies");
        // An escaped slash, and a group followed by a letter.
        let slash = PrincipalRules::parse(r"RULE:^CN=(.*)$/svc\/$1x/").unwrap();
        assert_eq!(slash.apply("CN=a").as_deref(), Some("svc/ax"));
        assert_eq!(
            PrincipalRules::parse("").unwrap().apply("CN=a").as_deref(),
            Some("CN=a")
        );
    }

    #[test]
    fn malformed_rules_are_refused() {
        for bad in [
            "RULE:^CN=(.*)$",
            "RULE:^CN=(.*)$/$1",
            "NOPE",
            "DEFAULT RULE",
            "RULE:(/x/",
        ] {
            let err = PrincipalRules::parse(bad).unwrap_err();
            assert!(err.starts_with("Invalid rule"), "{bad}: {err}");
        }
    }

    #[test]
    fn values_are_escaped_as_rfc_2253_says() {
        assert_eq!(escape("a,b"), r"a\,b");
        assert_eq!(escape(" x "), r"\ x\ ");
        assert_eq!(escape("#1"), r"\#1");
        assert_eq!(escape("a+b;c"), r"a\+b\;c");
    }

    #[test]
    fn subjects_read_as_java_writes_them() {
        // openssl req -subj "/C=US/O=Org, Inc./OU=SME/CN=Duke/emailAddress=duke@example.com"
        let der = include_bytes!("../tests/fixtures/duke-client-cert.der");
        assert_eq!(
            subject_dn(der).unwrap(),
            "1.2.840.113549.1.9.1=#161064756b65406578616d706c652e636f6d,CN=Duke,OU=SME,O=Org\\, Inc.,C=US"
        );
        let rules = PrincipalRules::parse("RULE:^.*CN=([^,]*),.*$/$1/L").unwrap();
        let cert = rustls::pki_types::CertificateDer::from(der.to_vec());
        assert_eq!(
            principal_of(Some(&[cert]), &rules).unwrap().as_deref(),
            Some("User:duke")
        );
        assert_eq!(principal_of(None, &rules).unwrap(), None);
    }

    #[test]
    fn malformed_certificates_are_an_error() {
        assert!(subject_dn(b"not a certificate").is_err());
        assert!(subject_dn(&[]).is_err());
    }
}
