//! `meta.properties` at the root of the log directory, in Kafka's format (`version=1`,
//! `cluster.id`, `node.id`, `directory.id`): written on the first start (that is the formatting
//! step), checked against the configuration on every later start.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use uuid::Uuid;

use crate::log_store::write_atomically;

pub const META_PROPERTIES: &str = "meta.properties";

/// The identity a log directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    pub directory_id: String,
}

/// A new id in Kafka's style: a random uuid as 22 characters of unpadded base64url.
pub fn random_kafka_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes())
}

/// Reads `meta.properties` from `log_dir`; `Ok(None)` when the directory was never formatted.
pub fn read(log_dir: &Path) -> Result<Option<MetaProperties>, String> {
    let path = log_dir.join(META_PROPERTIES);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let props: BTreeMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let get = |key: &str| {
        props
            .get(key)
            .map(|v| v.to_string())
            .ok_or_else(|| format!("{}: no {key}", path.display()))
    };
    let node_id = get("node.id")?
        .parse()
        .map_err(|e| format!("{}: bad node.id: {e}", path.display()))?;
    Ok(Some(MetaProperties {
        cluster_id: get("cluster.id")?,
        node_id,
        directory_id: get("directory.id").unwrap_or_default(),
    }))
}

/// Writes `meta.properties` (atomically).
pub fn write(log_dir: &Path, meta: &MetaProperties) -> Result<(), String> {
    let path = log_dir.join(META_PROPERTIES);
    let text = format!(
        "#\n#Written by strata\nversion=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
        meta.cluster_id, meta.node_id, meta.directory_id
    );
    write_atomically(&path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Checks an existing directory against the configuration; returns the cluster id to use.
pub fn check(
    found: &MetaProperties,
    node_id: i32,
    cluster_id: Option<&str>,
    log_dir: &Path,
) -> Result<String, String> {
    if found.node_id != node_id {
        return Err(format!(
            "{} belongs to node.id {}, but this node is configured as node.id {node_id}; refusing to start",
            log_dir.join(META_PROPERTIES).display(),
            found.node_id
        ));
    }
    if let Some(configured) = cluster_id {
        if configured != found.cluster_id {
            return Err(format!(
                "{} belongs to cluster.id {}, but the configured cluster.id is {configured}; refusing to start",
                log_dir.join(META_PROPERTIES).display(),
                found.cluster_id
            ));
        }
    }
    Ok(found.cluster_id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let meta = MetaProperties {
            cluster_id: random_kafka_id(),
            node_id: 3,
            directory_id: random_kafka_id(),
        };
        assert_eq!(meta.cluster_id.len(), 22);
        write(dir.path(), &meta).unwrap();
        let found = read(dir.path()).unwrap().unwrap();
        assert_eq!(found, meta);
        assert!(check(&found, 3, None, dir.path()).is_ok());
        assert!(check(&found, 4, None, dir.path())
            .unwrap_err()
            .contains("node.id"));
        assert!(check(&found, 3, Some("other"), dir.path())
            .unwrap_err()
            .contains("cluster.id"));
    }
}
