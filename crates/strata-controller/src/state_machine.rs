//! The Raft state machine: applies committed entries to the [`ReplicatedState`] (the
//! [`MetadataImage`] and its counters), publishes every new image on a watch channel, and keeps
//! snapshots as `snapshot.json` in the metadata-log directory (written atomically). The applied
//! state itself is in memory: after a restart Raft re-applies the log after the snapshot.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::log_store::write_atomically;
use crate::records::{CommandOutcome, ReplicatedState, TypeConfig};

const SNAPSHOT_FILE: &str = "snapshot.json";

/// Everything a snapshot restores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    state: ReplicatedState,
}

/// The snapshot file: its metadata and the applied state as JSON bytes (what is sent to others).
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

struct Inner {
    path: PathBuf,
    cluster_id: String,
    applied: Mutex<Applied>,
    current: Mutex<Option<SnapshotFile>>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    snapshots_built: Mutex<u64>,
}

/// The state machine (clones share it; a clone is also the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            openraft::AnyError::error(e.to_string()),
        ),
    }
}

impl StateMachine {
    /// Opens the state machine of the metadata log in `dir`, restoring `snapshot.json` if any.
    /// An unreadable snapshot is an error naming the file.
    pub fn open(dir: &Path, cluster_id: &str) -> Result<StateMachine, String> {
        let path = dir.join(SNAPSHOT_FILE);
        let (applied, current) = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SnapshotFile = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: unreadable snapshot: {e}", path.display()))?;
                let applied: Applied = serde_json::from_slice(&file.data)
                    .map_err(|e| format!("{}: unreadable snapshot: {e}", path.display()))?;
                (applied, Some(file))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Applied::default(), None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut image = applied.state.image.clone();
        image.cluster_id = cluster_id.to_string();
        let (image_tx, _) = watch::channel(Arc::new(image));
        Ok(StateMachine {
            inner: Arc::new(Inner {
                path,
                cluster_id: cluster_id.to_string(),
                applied: Mutex::new(applied),
                current: Mutex::new(current),
                image_tx,
                snapshots_built: Mutex::new(0),
            }),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.image_tx.subscribe()
    }

    /// Unclean leader elections applied so far.
    pub fn unclean_elections(&self) -> u64 {
        self.inner.applied.lock().state.unclean_elections
    }

    fn publish(&self, applied: &Applied) {
        let mut image = applied.state.image.clone();
        image.cluster_id = self.inner.cluster_id.clone();
        image.offset = applied.last_applied.map_or(0, |l| l.index);
        self.inner.image_tx.send_replace(Arc::new(image));
    }

    fn store_snapshot(&self, file: SnapshotFile) -> Result<(), StorageError<u64>> {
        let bytes = serde_json::to_vec(&file).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        write_atomically(&self.inner.path, &bytes).map_err(|e| StorageError::IO {
            source: StorageIOError::write_snapshot(
                Some(file.meta.signature()),
                openraft::AnyError::error(format!("{}: {e}", self.inner.path.display())),
            ),
        })?;
        *self.inner.current.lock() = Some(file);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, last_applied, membership) = {
            let applied = self.inner.applied.lock();
            let data = serde_json::to_vec(&*applied).map_err(|e| sm_err(ErrorVerb::Read, e))?;
            (data, applied.last_applied, applied.membership.clone())
        };
        let n = {
            let mut built = self.inner.snapshots_built.lock();
            *built += 1;
            *built
        };
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.store_snapshot(SnapshotFile {
            meta: meta.clone(),
            data: data.clone(),
        })?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.inner.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut applied = self.inner.applied.lock();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let outcome = match &entry.payload {
                EntryPayload::Blank => CommandOutcome {
                    index: entry.log_id.index,
                    producer_id_start: None,
                },
                EntryPayload::Normal(command) => applied.state.apply(entry.log_id.index, command),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    CommandOutcome {
                        index: entry.log_id.index,
                        producer_id_start: None,
                    }
                }
            };
            outcomes.push(outcome);
        }
        self.publish(&applied);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let mut restored: Applied =
            serde_json::from_slice(&data).map_err(|e| StorageError::IO {
                source: StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    openraft::AnyError::error(e),
                ),
            })?;
        restored.last_applied = meta.last_log_id;
        restored.membership = meta.last_membership.clone();
        self.store_snapshot(SnapshotFile {
            meta: meta.clone(),
            data,
        })?;
        let mut applied = self.inner.applied.lock();
        *applied = restored;
        self.publish(&applied);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.inner.current.lock().as_ref().map(|f| Snapshot {
            meta: f.meta.clone(),
            snapshot: Box::new(Cursor::new(f.data.clone())),
        }))
    }
}
