//! Cluster metadata image: the cluster id, topics (id, partition count, replication factor,
//! config overrides) and the producer-id block. It is the only place topics are created,
//! changed or deleted. A single-node broker persists the image atomically as JSON in its log
//! directory (write to a temporary file, fsync, rename); the controller quorum will feed the same
//! image from its replicated metadata log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One topic as the cluster knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic config overrides (Kafka names); everything else comes from the broker defaults.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct Image {
    cluster_id: String,
    #[serde(default)]
    topics: BTreeMap<String, TopicMeta>,
    /// Producer ids below this value may have been handed out already.
    #[serde(default)]
    producer_id_block_end: i64,
}

/// Producer ids are reserved in blocks so the file is written once per block, not per id.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata file {path} is not valid: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

struct State {
    image: Image,
    next_producer_id: i64,
}

/// The metadata image plus its persistence.
pub struct MetadataStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl MetadataStore {
    /// Opens (or creates) the metadata of the broker whose log directory is `dir`.
    pub fn open(dir: &Path, cluster_id: Option<&str>) -> Result<MetadataStore, MetadataError> {
        let path = dir.join("strata-metadata.json");
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let image = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Image>(&bytes).map_err(|source| {
                MetadataError::Corrupt {
                    path: path.clone(),
                    source,
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Image {
                cluster_id: cluster_id
                    .map(str::to_string)
                    .unwrap_or_else(new_cluster_id),
                ..Image::default()
            },
            Err(e) => return Err(io(e)),
        };
        let store = MetadataStore {
            path,
            state: Mutex::new(State {
                next_producer_id: image.producer_id_block_end,
                image,
            }),
        };
        store.persist(&store.state.lock().image)?;
        Ok(store)
    }

    fn persist(&self, image: &Image) -> Result<(), MetadataError> {
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| io(std::io::Error::other(e)))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }

    pub fn cluster_id(&self) -> String {
        self.state.lock().image.cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.state.lock().image.topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.state
            .lock()
            .image
            .topics
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.state.lock().image.topics.values().cloned().collect()
    }

    /// Adds a topic; returns false (and changes nothing) when the name is taken.
    pub fn create_topic(&self, topic: TopicMeta) -> Result<bool, MetadataError> {
        self.update(|image| {
            if image.topics.contains_key(&topic.name) {
                return false;
            }
            image.topics.insert(topic.name.clone(), topic);
            true
        })
    }

    /// Removes a topic; returns it when it existed.
    pub fn delete_topic(&self, name: &str) -> Result<Option<TopicMeta>, MetadataError> {
        let mut removed = None;
        self.update(|image| {
            removed = image.topics.remove(name);
            removed.is_some()
        })?;
        Ok(removed)
    }

    /// Sets a topic's partition count (callers only ever increase it).
    pub fn set_partitions(&self, name: &str, partitions: i32) -> Result<bool, MetadataError> {
        self.update(|image| match image.topics.get_mut(name) {
            Some(t) => {
                t.partitions = partitions;
                true
            }
            None => false,
        })
    }

    /// Replaces a topic's config overrides.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<bool, MetadataError> {
        self.update(|image| match image.topics.get_mut(name) {
            Some(t) => {
                t.configs = configs;
                true
            }
            None => false,
        })
    }

    /// Hands out a producer id never handed out before, also across restarts.
    pub fn next_producer_id(&self) -> Result<i64, MetadataError> {
        let mut state = self.state.lock();
        if state.next_producer_id >= state.image.producer_id_block_end {
            let mut image = state.image.clone();
            image.producer_id_block_end = state.next_producer_id + PRODUCER_ID_BLOCK;
            self.persist(&image)?;
            state.image = image;
        }
        let id = state.next_producer_id;
        state.next_producer_id += 1;
        Ok(id)
    }

    /// Applies `change` to a copy of the image and persists it when `change` returns true;
    /// the in-memory image changes only once the file is written.
    fn update(&self, change: impl FnOnce(&mut Image) -> bool) -> Result<bool, MetadataError> {
        let mut state = self.state.lock();
        let mut image = state.image.clone();
        if !change(&mut image) {
            return Ok(false);
        }
        self.persist(&image)?;
        state.image = image;
        Ok(true)
    }
}

/// A cluster id in Kafka's shape: 16 random bytes, URL-safe base64 without padding (22 chars).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path(), None).unwrap();
        let cluster = store.cluster_id();
        assert_eq!(cluster.len(), 22);
        assert!(store.create_topic(topic("a")).unwrap());
        assert!(!store.create_topic(topic("a")).unwrap());
        store.set_partitions("a", 5).unwrap();
        let pid = store.next_producer_id().unwrap();
        drop(store);
        let store = MetadataStore::open(dir.path(), None).unwrap();
        assert_eq!(store.cluster_id(), cluster);
        assert_eq!(store.topic("a").unwrap().partitions, 5);
        assert!(store.next_producer_id().unwrap() > pid);
        assert!(store.delete_topic("a").unwrap().is_some());
        assert!(store.topic("a").is_none());
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("strata-metadata.json"), b"{not json").unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path(), None),
            Err(MetadataError::Corrupt { .. })
        ));
    }
}
