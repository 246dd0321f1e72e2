//! JAAS configuration entries as Kafka's `sasl.jaas.config` property holds them
//! (`<LoginModule class> required key="value" ...;`): the broker reads its PLAIN users from them,
//! clients their user name and password. Values never show in error messages.

use std::collections::BTreeMap;

/// One login module entry of a JAAS config: `<class> <flag> key="value" ...;`.
#[derive(Debug, PartialEq, Eq)]
pub struct JaasEntry {
    pub class: String,
    pub options: BTreeMap<String, String>,
}

/// Reads a one-entry JAAS config as Kafka's `sasl.jaas.config` takes it. Values are quoted
/// (`"..."`, with `\"` and `\\` escapes) or bare words.
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let mut chars = text.trim().chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    let skip_ws = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
    };
    let class = word(&mut chars);
    skip_ws(&mut chars);
    let flag = word(&mut chars);
    if class.is_empty() || !["required", "requisite", "sufficient", "optional"].contains(&&*flag) {
        return Err("expected `<LoginModule class> required key=\"value\" ...;`".into());
    }
    let mut options = BTreeMap::new();
    loop {
        skip_ws(&mut chars);
        match chars.peek() {
            Some(';') => {
                chars.next();
                skip_ws(&mut chars);
                if chars.peek().is_some() {
                    return Err("only one login module entry is read".into());
                }
                return Ok(JaasEntry { class, options });
            }
            None => return Err("the entry does not end with `;`".into()),
            _ => {}
        }
        let key = word(&mut chars);
        skip_ws(&mut chars);
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("expected key=\"value\" after {key:?}"));
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => v.push(c),
                        None => return Err(format!("unterminated value of {key}")),
                    },
                    Some(c) => v.push(c),
                    None => return Err(format!("unterminated value of {key}")),
                }
            }
            v
        } else {
            word(&mut chars)
        };
        options.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaas_entries() {
        let e = parse("a.B required x=\"1 2\" y=bare z=\"q\\\\\";").unwrap();
        assert_eq!(e.class, "a.B");
        assert_eq!(e.options["x"], "1 2");
        assert_eq!(e.options["y"], "bare");
        assert_eq!(e.options["z"], "q\\");
        for bad in [
            "",
            "a.B",
            "a.B sometimes;",
            "a.B required x;",
            "a.B required x=\"1;",
            "a.B required; b.C required;",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
