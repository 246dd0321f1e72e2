//! The Raft log on `strata-log`: `<log_dir>/__cluster_metadata-0` holds one magic-2 record batch
//! per Raft entry (base offset = Raft index, the entry as JSON in the record value), so the
//! metadata log has Kafka's on-disk layout and strata-log's crash recovery (a torn tail is
//! truncated when the log is opened). The vote, the committed log id and the last purged log id
//! live in `quorum-state.json` next to the segments, replaced atomically. Owns that directory.
//! Writes and fsyncs run on the blocking pool, each awaited before its storage call returns
//! (so they stay in Raft's order, and an append is acknowledged only once it is on disk).

use std::fmt::Debug;
use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_kafka::timestamp::now_ms;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strata_log::{FileLog, LogConfig, PartitionLog};

use crate::records::TypeConfig;

/// Directory of the metadata log below the log directory.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";
const STATE_FILE: &str = "quorum-state.json";
/// Reads fetch this much per call.
const READ_CHUNK: usize = 1 << 20;

/// What Raft must find again after a restart besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QuorumStateFile {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
}

struct Inner {
    log: FileLog,
    dir: PathBuf,
    state: Mutex<QuorumStateFile>,
}

/// The Raft log store (and its reader: clones share the same log).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())),
    }
}

fn log_err(verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    io_err(ErrorSubject::Logs, verb, e)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl LogStore {
    /// Opens (creating when missing) the metadata log below `log_dir`.
    pub fn open(log_dir: &Path) -> Result<LogStore, String> {
        let dir = log_dir.join(METADATA_LOG_DIR);
        let config = LogConfig {
            max_message_bytes: 256 << 20,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = FileLog::open(&dir, config).map_err(|e| format!("{}: {e}", dir.display()))?;
        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: unreadable: {e}", state_path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => QuorumStateFile::default(),
            Err(e) => return Err(format!("{}: {e}", state_path.display())),
        };
        Ok(LogStore {
            inner: Arc::new(Inner {
                log,
                dir,
                state: Mutex::new(state),
            }),
        })
    }

    /// True when nothing was ever written: no entry, no vote, nothing purged.
    pub fn is_pristine(&self) -> bool {
        let st = self.inner.state.lock();
        st.vote.is_none()
            && st.last_purged.is_none()
            && self.inner.log.log_end_offset() == self.inner.log.log_start_offset()
    }

    /// Replaces the state file (fsynced) with `update` applied; blocking.
    fn save_state(
        inner: &Inner,
        update: impl FnOnce(&mut QuorumStateFile),
    ) -> Result<(), StorageError<u64>> {
        let mut st = inner.state.lock();
        let mut next = st.clone();
        update(&mut next);
        let bytes = serde_json::to_vec(&next).map_err(|e| log_err(ErrorVerb::Write, e))?;
        write_atomically(&inner.dir.join(STATE_FILE), &bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        *st = next;
        Ok(())
    }

    /// Runs disk work (writes and fsyncs) on the blocking pool, not on an async worker.
    /// Awaited by each storage call before it returns, so writes happen in the order Raft
    /// issues them (openraft awaits one storage call before it makes the next).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, StorageError<u64>> + Send + 'static,
    ) -> Result<T, StorageError<u64>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?
    }

    /// Removes the entries from `log_id` on; blocking.
    fn truncate_at(inner: &Inner, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let log = &inner.log;
        let at = log_id.index as i64;
        if at < log.log_end_offset() {
            if at <= log.log_start_offset() {
                log.truncate_fully_and_start_at(at)
            } else {
                log.truncate_to(at)
            }
            .map_err(|e| log_err(ErrorVerb::Delete, e))?;
        }
        Ok(())
    }

    fn encode(entry: &Entry<TypeConfig>, buf: &mut BytesMut) -> Result<(), StorageError<u64>> {
        let value = serde_json::to_vec(entry).map_err(|e| log_err(ErrorVerb::Write, e))?;
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: i32::try_from(entry.log_id.leader_id.term).unwrap_or(i32::MAX),
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: entry.log_id.index as i64,
            sequence: -1,
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        };
        RecordBatchEncoder::encode(
            buf,
            std::iter::once(&record),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| log_err(ErrorVerb::Write, e))
    }

    /// Entries with index in `[start, end)` that are present.
    fn read_range(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let log = &self.inner.log;
        let mut next = (start as i64).max(log.log_start_offset());
        let end = (end.min(i64::MAX as u64) as i64).min(log.log_end_offset());
        let mut out = Vec::new();
        while next < end {
            let slice = log
                .read(next, READ_CHUNK, end)
                .map_err(|e| log_err(ErrorVerb::Read, e))?;
            if slice.bytes.is_empty() {
                break;
            }
            let mut bytes = slice.bytes;
            let sets = strata_kafka::records::decode_batches(&mut bytes)
                .map_err(|e| log_err(ErrorVerb::Read, e))?;
            let mut advanced = false;
            for record in sets.iter().flat_map(|s| s.records.iter()) {
                if record.offset < next || record.offset >= end {
                    continue;
                }
                let value = record.value.as_ref().ok_or_else(|| {
                    log_err(
                        ErrorVerb::Read,
                        format!("entry {} has no value", record.offset),
                    )
                })?;
                let entry: Entry<TypeConfig> =
                    serde_json::from_slice(value).map_err(|e| log_err(ErrorVerb::Read, e))?;
                next = record.offset + 1;
                advanced = true;
                out.push(entry);
            }
            if !advanced {
                break;
            }
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let log = &self.inner.log;
        let end = log.log_end_offset();
        if end <= log.log_start_offset() {
            return Ok(None);
        }
        Ok(self
            .read_range((end - 1) as u64, end as u64)?
            .last()
            .map(|e| *e.get_log_id()))
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let (start, end) = bounds(&range);
        self.read_range(start, end)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged = self.inner.state.lock().last_purged;
        let last = self.last_entry_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let vote = *vote;
        self.blocking(move |inner| Self::save_state(inner, |s| s.vote = Some(vote)))
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.state.lock().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.blocking(move |inner| Self::save_state(inner, |s| s.committed = committed))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.inner.state.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut buf = BytesMut::new();
        let mut first = None;
        for entry in entries {
            first.get_or_insert(entry.log_id);
            Self::encode(&entry, &mut buf)?;
        }
        // The write and its fsync on the blocking pool; awaited here, so appends stay in order.
        self.blocking(move |inner| {
            // Appending at an index that is present replaces it and everything after it.
            if let Some(first) = first {
                Self::truncate_at(inner, first)?;
            }
            if !buf.is_empty() {
                inner
                    .log
                    .append_with_offsets(&buf)
                    .map_err(|e| log_err(ErrorVerb::Write, e))?;
            }
            // Raft may count these entries as persisted only once they are on disk.
            let flushed = inner
                .log
                .flush()
                .map_err(|e| io::Error::other(e.to_string()));
            callback.log_io_completed(flushed);
            Ok(())
        })
        .await
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.blocking(move |inner| Self::truncate_at(inner, log_id))
            .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.blocking(move |inner| {
            // Record the purge first: after a crash between the two steps the entries are
            // merely still present, never missing while claimed present.
            Self::save_state(inner, |s| {
                if s.last_purged.is_none_or(|p| p.index < log_id.index) {
                    s.last_purged = Some(log_id);
                }
            })?;
            let log = &inner.log;
            let keep_from = log_id.index as i64 + 1;
            if keep_from >= log.log_end_offset() {
                log.truncate_fully_and_start_at(keep_from)
                    .map_err(|e| log_err(ErrorVerb::Delete, e))?;
            } else {
                log.delete_records_before(keep_from)
                    .map_err(|e| log_err(ErrorVerb::Delete, e))?;
            }
            Ok(())
        })
        .await
    }
}
