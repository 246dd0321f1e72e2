//! Java `.properties` text as Kafka's tools and MirrorMaker 2 read it, for every Strata
//! reader of such files that is not the broker's own `server.properties` (MirrorMaker 2
//! configurations, client property files, the files of Kafka's `FileConfigProvider`).

use std::collections::BTreeMap;

/// Parses Java `.properties` text: `key=value`, `key: value` or `key value`, `#`/`!` comments,
/// backslash line continuations and the usual escapes. Later keys replace earlier ones.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let mut line = line.trim_start().to_string();
        if logical.is_empty() && (line.starts_with('#') || line.starts_with('!') || line.is_empty())
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        loop {
            let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 1 {
                line.pop();
                logical.push_str(&line);
                match lines.next() {
                    Some(next) => line = next.trim_start().to_string(),
                    None => {
                        line.clear();
                        break;
                    }
                }
            } else {
                logical.push_str(&line);
                break;
            }
        }
        let entry = std::mem::take(&mut logical);
        let (key, value) = split_entry(&entry);
        out.insert(unescape(key), unescape(value.trim_start()));
    }
    out
}

fn split_entry(entry: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in entry.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (entry[..i].trim_end(), &entry[i + 1..]),
            c if c.is_whitespace() => {
                let rest = entry[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (&entry[..i], rest);
            }
            _ => {}
        }
    }
    (entry, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_syntax() {
        let p = parse("a=1\n  b : two words \n! c=3\nd\\=e=4\nf 5\ng=x\\\n  y\n");
        assert_eq!(p.get("a").map(String::as_str), Some("1"));
        assert_eq!(p.get("b").map(String::as_str), Some("two words"));
        assert!(!p.contains_key("c"));
        assert_eq!(p.get("d=e").map(String::as_str), Some("4"));
        assert_eq!(p.get("f").map(String::as_str), Some("5"));
        assert_eq!(p.get("g").map(String::as_str), Some("xy"));
    }
}
