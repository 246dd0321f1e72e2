//! On-disk segment storage. Owns the partition directory and Kafka's layout in it:
//! `<base offset, 20 digits>.log` / `.index` / `.timeindex` per segment plus small text metadata
//! files. Reads are positional (`read_at`), so readers never share a file cursor with writers.
//!
//! A segment's `.log` file is opened through the process-wide budget of [`crate::open_files`]
//! (open while used, closed when the least recently used beyond the budget). The index files
//! are opened only while they are written: the entries an append adds are kept in memory (at
//! most [`PENDING_INDEX_LIMIT`] bytes) and written out when that fills, when the log is flushed,
//! when the segment is sealed and when it is rewritten.
//! Nothing reads them back but tools and the next start, which rebuilds every segment's index
//! from its batches and rewrites the files that differ, so entries lost in a crash cost nothing.

use crate::error::LogError;
use crate::open_files::{open_append, SegmentFile};
use crate::storage::{LoadedSegment, SegmentData, SegmentStore};
use bytes::Bytes;
use parking_lot::Mutex;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const LOG_SUFFIX: &str = ".log";
const OFFSET_INDEX_SUFFIX: &str = ".index";
const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix of a compacted segment written but not yet swapped in.
const CLEANED_SUFFIX: &str = ".cleaned";
const TMP_SUFFIX: &str = ".tmp";
/// Index bytes a segment holds back at most (about a thousand entries, written with one open
/// per 4 MiB of records at the default `index.interval.bytes`).
const PENDING_INDEX_LIMIT: usize = 8 * 1024;

fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Contents of a file, empty when it does not exist.
fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

/// Index entries appended since the index files were last written.
#[derive(Debug, Default)]
struct PendingIndex {
    offsets: Vec<u8>,
    times: Vec<u8>,
    /// Index bytes written without an fsync since the last sync.
    unsynced: bool,
}

/// One segment's files.
#[derive(Debug)]
pub struct FileSegment {
    log: Arc<SegmentFile>,
    offset_index_path: PathBuf,
    time_index_path: PathBuf,
    pending: Mutex<PendingIndex>,
    len: u64,
}

impl FileSegment {
    /// Opens (creating if missing) the segment at `base_offset`; its index files are created
    /// empty when missing, so the directory always has Kafka's three files per segment.
    fn open(dir: &Path, base_offset: i64) -> io::Result<FileSegment> {
        let log = SegmentFile::open(&segment_path(dir, base_offset, LOG_SUFFIX))?;
        let len = log.get()?.metadata()?.len();
        let offset_index_path = segment_path(dir, base_offset, OFFSET_INDEX_SUFFIX);
        let time_index_path = segment_path(dir, base_offset, TIME_INDEX_SUFFIX);
        for path in [&offset_index_path, &time_index_path] {
            if !path.exists() {
                open_append(path)?;
            }
        }
        Ok(FileSegment {
            log,
            offset_index_path,
            time_index_path,
            pending: Mutex::new(PendingIndex::default()),
            len,
        })
    }

    /// Writes the pending index entries to the index files (each opened for that write only)
    /// and, with `sync`, makes the index files durable.
    fn write_pending(&self, sync: bool) -> io::Result<()> {
        let mut pending = self.pending.lock();
        let PendingIndex {
            offsets,
            times,
            unsynced,
        } = &mut *pending;
        for (path, bytes) in [
            (&self.offset_index_path, offsets),
            (&self.time_index_path, times),
        ] {
            if bytes.is_empty() && !(sync && *unsynced) {
                continue;
            }
            let mut file = open_append(path)?;
            file.write_all(bytes)?;
            if sync {
                file.sync_data()?;
            } else if !bytes.is_empty() {
                *unsynced = true;
            }
            bytes.clear();
        }
        if sync {
            *unsynced = false;
        }
        Ok(())
    }

    fn replace_index(path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut file = File::create(path)?;
        file.write_all(contents)
    }
}

impl SegmentData for FileSegment {
    fn len(&self) -> u64 {
        self.len
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self.log.get()?;
        let result = (&*file).write_all(bytes);
        if result.is_err() {
            // Keep the file at a batch boundary after a partial write.
            file.set_len(self.len)?;
            return result;
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let file = self.log.get()?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, position)?;
        Ok(Bytes::from(buf))
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.log.get()?.set_len(len)?;
        self.len = len;
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        // Any descriptor of the file syncs all of its data, also what a closed one wrote.
        self.log.get()?.sync_data()?;
        self.write_pending(true)
    }
    fn append_index_entries(
        &mut self,
        offset_entries: &[u8],
        time_entries: &[u8],
    ) -> io::Result<()> {
        let pending = self.pending.get_mut();
        pending.offsets.extend_from_slice(offset_entries);
        pending.times.extend_from_slice(time_entries);
        if pending.offsets.len() + pending.times.len() > PENDING_INDEX_LIMIT {
            self.write_pending(false)?;
        }
        Ok(())
    }
    fn seal(&mut self) -> io::Result<()> {
        self.write_pending(false)
    }
    fn write_indexes(&mut self, offset_index: &[u8], time_index: &[u8]) -> io::Result<()> {
        let pending = self.pending.get_mut();
        pending.offsets.clear();
        pending.times.clear();
        pending.unsynced = true;
        Self::replace_index(&self.offset_index_path, offset_index)?;
        Self::replace_index(&self.time_index_path, time_index)
    }
    fn replace_contents(&mut self, contents: &[u8]) -> io::Result<()> {
        let log_path = self.log.path().to_path_buf();
        let mut cleaned_path = log_path.clone().into_os_string();
        cleaned_path.push(CLEANED_SUFFIX);
        let cleaned_path = PathBuf::from(cleaned_path);
        {
            let mut f = File::create(&cleaned_path)?;
            f.write_all(contents)?;
            f.sync_all()?;
        }
        // The rename is the commit point: a crash before it leaves the old data intact and the
        // `.cleaned` file is deleted on open.
        fs::rename(&cleaned_path, &log_path)?;
        if let Some(dir) = log_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        // The open descriptor still points at the replaced file: reopen at the path.
        self.log.close();
        self.len = self.log.get()?.metadata()?.len();
        Ok(())
    }
}

/// Storage rooted at one partition directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating if missing) a partition directory, removes leftovers of interrupted
    /// compactions and metadata writes, and returns the segments sorted by base offset.
    pub(crate) fn open(
        dir: &Path,
    ) -> Result<(FileStore, Vec<LoadedSegment<FileSegment>>), LogError> {
        fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(CLEANED_SUFFIX) || name.ends_with(TMP_SUFFIX) {
                fs::remove_file(entry.path())?;
                continue;
            }
            if let Some(stem) = name.strip_suffix(LOG_SUFFIX) {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len());
        for base_offset in bases {
            let data = FileSegment::open(dir, base_offset)?;
            let offset_index = read_or_empty(&data.offset_index_path)?;
            let time_index = read_or_empty(&data.time_index_path)?;
            segments.push(LoadedSegment {
                base_offset,
                data,
                offset_index,
                time_index,
            });
        }
        Ok((
            FileStore {
                dir: dir.to_path_buf(),
            },
            segments,
        ))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Contents of a metadata file, `None` if it does not exist.
    pub(crate) fn read_metadata(&self, name: &str) -> Result<Option<String>, LogError> {
        match fs::read_to_string(self.dir.join(name)) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl SegmentStore for FileStore {
    type Data = FileSegment;

    fn create_segment(&self, base_offset: i64) -> Result<FileSegment, LogError> {
        let segment = FileSegment::open(&self.dir, base_offset)?;
        Ok(segment)
    }

    fn remove_segment(&self, base_offset: i64, data: FileSegment) -> Result<(), LogError> {
        drop(data);
        for suffix in [LOG_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&segment_path(&self.dir, base_offset, suffix))?;
        }
        Ok(())
    }

    fn write_metadata(&self, name: &str, contents: &str) -> Result<(), LogError> {
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(name))?;
        self.sync_dir()?;
        Ok(())
    }
}
