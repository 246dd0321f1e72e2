//! Kafka's configuration providers (KIP-297 and KIP-421): a properties file may take a value
//! from elsewhere with a variable `${<provider>:[<path>:]<key>}`, where the providers are named
//! in `config.providers` and each one's class in `config.providers.<name>.class`:
//!
//! - `org.apache.kafka.common.config.provider.DirectoryConfigProvider`: `${dir:<dir>:<file>}`
//!   is the content of file `<file>` in directory `<dir>` (a mounted Kubernetes Secret);
//! - `org.apache.kafka.common.config.provider.FileConfigProvider`: `${file:<file>:<key>}` is the
//!   value of `<key>` in the properties file `<file>`;
//! - `org.apache.kafka.common.config.provider.EnvVarConfigProvider`: `${env:<NAME>}` is the
//!   environment variable `<NAME>`.
//!
//! `config.providers.<name>.param.allowed.paths` (KIP-993) limits the paths the first two may
//! read. As in Kafka, a variable naming a provider that is not configured stays as written, and
//! the `config.providers*` properties themselves are never transformed. Unlike Kafka, which
//! leaves a variable whose key its provider does not have as written (so the error appears
//! later, as a malformed certificate or password), such a variable is an error here that
//! names the property and the missing key.
//!
//! [`resolve`] also reports which properties are exactly one file's content (`${dir:D:F}`
//! and nothing else), so a reader that watches files (TLS certificates) can follow the file
//! rather than the value read at start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DIRECTORY: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
const FILE: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
const ENV: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

/// Why the variables of a configuration cannot be resolved. Never includes a resolved value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error(
        "config.providers.{name}.class = {class}: not a provider this program has; use \
         {DIRECTORY}, {FILE} or {ENV}"
    )]
    UnknownClass { name: String, class: String },
    #[error("config.providers names {name} but config.providers.{name}.class is not set")]
    MissingClass { name: String },
    #[error("config.providers.{name}.param.{param} is not supported for {class}")]
    UnsupportedParam {
        name: String,
        class: String,
        param: String,
    },
    #[error("{property}: {variable}: {reason}")]
    Unresolved {
        property: String,
        variable: String,
        reason: String,
    },
}

/// The properties with every variable of a configured provider replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    pub props: BTreeMap<String, String>,
    /// Properties whose whole value was one `${dir:D:F}` variable: the file it was read from.
    pub whole_files: BTreeMap<String, PathBuf>,
}

#[derive(Debug)]
enum Kind {
    Directory,
    File,
    Env,
}

#[derive(Debug)]
struct Provider {
    kind: Kind,
    /// `param.allowed.paths`, normalised; empty = any path.
    allowed: Vec<PathBuf>,
}

/// Replaces the variables of the providers `props` configures; without `config.providers`
/// the properties are returned unchanged.
pub fn resolve(props: BTreeMap<String, String>) -> Result<Resolved, ProviderError> {
    resolve_with(props, &|name| std::env::var(name).ok())
}

/// [`resolve`] with the environment given (for tests).
pub fn resolve_with(
    props: BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ProviderError> {
    let providers = providers(&props)?;
    if providers.is_empty() {
        return Ok(Resolved {
            props,
            whole_files: BTreeMap::new(),
        });
    }
    let mut out = Resolved::default();
    // Each file is read once per resolution.
    let mut cache: BTreeMap<PathBuf, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in props {
        if key == "config.providers" || key.starts_with("config.providers.") {
            out.props.insert(key, value);
            continue;
        }
        let mut text = String::with_capacity(value.len());
        let mut rest = value.as_str();
        let mut whole = None;
        // The value is one variable and nothing else.
        let only_variable = value.starts_with("${") && value.find('}') == Some(value.len() - 1);
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let variable = &rest[start..start + len + 1];
            text.push_str(&rest[..start]);
            rest = &rest[start + len + 1..];
            let unresolved = |reason: String| ProviderError::Unresolved {
                property: key.clone(),
                variable: variable.to_string(),
                reason,
            };
            let inner = &variable[2..variable.len() - 1];
            let Some((name, path_key)) = inner.split_once(':') else {
                text.push_str(variable);
                continue;
            };
            let Some(provider) = providers.get(name) else {
                text.push_str(variable);
                continue;
            };
            // As Kafka's ConfigTransformer reads it: the path ends at the next colon, the key
            // is the rest (and may hold colons).
            let (path, item) = match path_key.split_once(':') {
                Some((path, item)) => (Some(path), item),
                None => (None, path_key),
            };
            let resolved = match provider.kind {
                Kind::Env => {
                    if path.is_some_and(|p| !p.is_empty()) {
                        return Err(unresolved(
                            "the environment provider takes no path: write ${env:NAME}".into(),
                        ));
                    }
                    env(item).ok_or_else(|| {
                        unresolved(format!("environment variable {item} is not set"))
                    })?
                }
                Kind::Directory | Kind::File => {
                    let path = path.filter(|p| !p.is_empty()).ok_or_else(|| {
                        unresolved(format!("it needs a path: ${{{name}:<path>:{item}}}"))
                    })?;
                    let path = PathBuf::from(path);
                    if !provider.allowed.is_empty()
                        && !provider
                            .allowed
                            .iter()
                            .any(|a| normalise(&path).starts_with(a))
                    {
                        return Err(unresolved(format!(
                            "{} is outside config.providers.{name}.param.allowed.paths",
                            path.display()
                        )));
                    }
                    let value = match provider.kind {
                        Kind::Directory => read_directory_file(&path, item).map_err(unresolved)?,
                        _ => {
                            if !cache.contains_key(&path) {
                                let data = read_properties(&path).map_err(|e| {
                                    unresolved(format!("cannot read {}: {e}", path.display()))
                                })?;
                                cache.insert(path.clone(), data);
                            }
                            cache[&path].get(item).cloned().ok_or_else(|| {
                                unresolved(format!("{} does not set {item}", path.display()))
                            })?
                        }
                    };
                    if only_variable && matches!(provider.kind, Kind::Directory) {
                        whole = Some(path.join(item));
                    }
                    value
                }
            };
            text.push_str(&resolved);
        }
        text.push_str(rest);
        if let Some(file) = whole {
            out.whole_files.insert(key.clone(), file);
        }
        out.props.insert(key, text);
    }
    Ok(out)
}

/// The providers `config.providers` names, with their classes checked.
fn providers(
    props: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Provider>, ProviderError> {
    let mut out = BTreeMap::new();
    let Some(names) = props.get("config.providers") else {
        return Ok(out);
    };
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let class = props
            .get(&format!("config.providers.{name}.class"))
            .map(|c| c.trim().to_string())
            .ok_or_else(|| ProviderError::MissingClass { name: name.into() })?;
        let kind = match class.as_str() {
            DIRECTORY => Kind::Directory,
            FILE => Kind::File,
            ENV => Kind::Env,
            _ => {
                return Err(ProviderError::UnknownClass {
                    name: name.into(),
                    class,
                })
            }
        };
        let prefix = format!("config.providers.{name}.param.");
        let mut allowed = Vec::new();
        for (key, value) in props.range(prefix.clone()..) {
            let Some(param) = key.strip_prefix(&prefix) else {
                break;
            };
            match (param, &kind) {
                ("allowed.paths", Kind::Directory | Kind::File) => {
                    allowed = value
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(|p| normalise(Path::new(p)))
                        .collect();
                }
                _ => {
                    return Err(ProviderError::UnsupportedParam {
                        name: name.into(),
                        class: class.clone(),
                        param: param.into(),
                    })
                }
            }
        }
        out.insert(name.to_string(), Provider { kind, allowed });
    }
    Ok(out)
}

/// `path` without `.` and `..` components (lexically, as Kafka's `allowed.paths` check does).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The content of the regular file `name` in `dir` (a symbolic link followed, as a mounted
/// Secret's are). Only the file asked for is read, as Kafka's provider does: a Secret may hold
/// binary keys (PKCS#12 stores) beside the PEM ones.
fn read_directory_file(dir: &Path, name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("{name:?} is not a file name"));
    }
    let file = dir.join(name);
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display())),
        Ok(_) => Err(format!("{} is not a regular file", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} has no file named {name}", dir.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// The properties of a Java `.properties` file.
fn read_properties(file: &Path) -> std::io::Result<BTreeMap<String, String>> {
    Ok(crate::properties_file::parse(&std::fs::read_to_string(
        file,
    )?))
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

    fn all_three() -> Vec<(&'static str, &'static str)> {
        vec![
            ("config.providers", "dir, file,env"),
            ("config.providers.dir.class", DIRECTORY),
            ("config.providers.file.class", FILE),
            ("config.providers.env.class", ENV),
        ]
    }

    fn env(name: &str) -> Option<String> {
        (name == "BROKER_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn variables_of_each_provider_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tls.crt"),
            "-----BEGIN CERTIFICATE-----\nAA\n",
        )
        .unwrap();
        let file = dir.path().join("users.properties");
        std::fs::write(&file, "# users\nalice.password = wonderland\n").unwrap();
        let d = dir.path().display();
        let f = file.display();
        let mut given = all_three();
        let chain = format!("${{dir:{d}:tls.crt}}");
        let jaas = format!("PlainLoginModule required password=\"${{file:{f}:alice.password}}\";");
        given.extend([
            ("ssl.keystore.certificate.chain", chain.as_str()),
            ("sasl.jaas.config", jaas.as_str()),
            ("ssl.key.password", "${env:BROKER_PASSWORD}"),
            ("log.dirs", "/var/lib/${unknown:x}"),
        ]);
        let out = resolve_with(props(&given), &env).unwrap();
        assert_eq!(
            out.props["ssl.keystore.certificate.chain"],
            "-----BEGIN CERTIFICATE-----\nAA\n"
        );
        assert_eq!(
            out.props["sasl.jaas.config"],
            "PlainLoginModule required password=\"wonderland\";"
        );
        assert_eq!(out.props["ssl.key.password"], "s3cret");
        // Not a configured provider: left as written, as Kafka does.
        assert_eq!(out.props["log.dirs"], "/var/lib/${unknown:x}");
        // The provider settings themselves are untouched.
        assert_eq!(out.props["config.providers.dir.class"], DIRECTORY);
        // Only the whole-value directory variable is a file to follow.
        assert_eq!(
            out.whole_files,
            BTreeMap::from([(
                "ssl.keystore.certificate.chain".to_string(),
                dir.path().join("tls.crt")
            )])
        );
    }

    #[test]
    fn only_the_file_asked_for_is_read_and_keys_may_hold_colons() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.key"), "KEY").unwrap();
        // cert-manager's PKCS#12 stores sit beside the PEM files in its Secrets.
        std::fs::write(dir.path().join("keystore.p12"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
        let file = dir.path().join("db.properties");
        std::fs::write(&file, "db\\:pw = colon\n").unwrap();
        let key = format!("${{dir:{}:tls.key}}", dir.path().display());
        let pw = format!("${{file:{}:db:pw}}", file.display());
        let mut given = all_three();
        given.extend([
            ("ssl.keystore.key", key.as_str()),
            ("password", pw.as_str()),
        ]);
        let out = resolve_with(props(&given), &env).unwrap();
        assert_eq!(out.props["ssl.keystore.key"], "KEY");
        assert_eq!(out.props["password"], "colon");
    }

    #[test]
    fn without_config_providers_nothing_changes() {
        let given = props(&[("ssl.keystore.key", "${dir:/etc/tls:tls.key}")]);
        let out = resolve_with(given.clone(), &env).unwrap();
        assert_eq!(out.props, given);
        assert!(out.whole_files.is_empty());
    }

    #[test]
    fn a_missing_key_file_or_variable_names_the_property() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for (value, reason) in [
            (format!("${{dir:{d}:tls.key}}"), "has no file named tls.key"),
            (
                format!("${{dir:{d}/nope:tls.key}}"),
                "has no file named tls.key",
            ),
            (format!("${{file:{d}:a}}"), "cannot read"),
            ("${env:NOT_SET}".to_string(), "NOT_SET is not set"),
            ("${dir:tls.key}".to_string(), "needs a path"),
        ] {
            let mut given = all_three();
            given.push(("ssl.keystore.key", &value));
            match resolve_with(props(&given), &env) {
                Err(ProviderError::Unresolved {
                    property,
                    variable,
                    reason: why,
                }) => {
                    assert_eq!(property, "ssl.keystore.key");
                    assert_eq!(variable, value);
                    assert!(why.contains(reason), "{why}");
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn classes_and_allowed_paths_are_checked() {
        let unknown = props(&[
            ("config.providers", "vault"),
            ("config.providers.vault.class", "com.example.Vault"),
        ]);
        assert!(matches!(
            resolve_with(unknown, &env),
            Err(ProviderError::UnknownClass { .. })
        ));
        let missing = props(&[("config.providers", "dir")]);
        assert_eq!(
            resolve_with(missing, &env),
            Err(ProviderError::MissingClass { name: "dir".into() })
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k"), "v").unwrap();
        let d = dir.path().display().to_string();
        let inside = format!(
            "${{dir:{d}/../{}:k}}",
            dir.path().file_name().unwrap().to_str().unwrap()
        );
        // A readable directory outside the allowed one: refused for its place alone.
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("k"), "v").unwrap();
        let outside = format!("${{dir:{}:k}}", elsewhere.path().display());
        for (value, ok) in [(inside, true), (outside, false)] {
            let given = props(&[
                ("config.providers", "dir"),
                ("config.providers.dir.class", DIRECTORY),
                ("config.providers.dir.param.allowed.paths", &d),
                ("x", &value),
            ]);
            match resolve_with(given, &env) {
                Ok(out) => assert!(ok, "{value}: {out:?}"),
                Err(ProviderError::Unresolved { reason, .. }) => {
                    assert!(!ok && reason.contains("outside"), "{value}: {reason}")
                }
                Err(e) => panic!("{value}: {e}"),
            }
        }
    }
}
