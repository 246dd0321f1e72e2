//! On-disk segment storage. Owns the partition directory and Kafka's layout in it:
//! `<base offset, 20 digits>.log` / `.index` / `.timeindex` per segment plus small text metadata
//! files. Reads are positional (`read_at`), so readers never share a file cursor with writers.

use crate::error::LogError;
use crate::storage::{LoadedSegment, SegmentData, SegmentStore};
use bytes::Bytes;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const LOG_SUFFIX: &str = ".log";
const OFFSET_INDEX_SUFFIX: &str = ".index";
const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix of a compacted segment written but not yet swapped in.
const CLEANED_SUFFIX: &str = ".cleaned";
const TMP_SUFFIX: &str = ".tmp";

fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// One segment's files.
#[derive(Debug)]
pub struct FileSegment {
    log_path: PathBuf,
    log: File,
    offset_index: File,
    time_index: File,
    len: u64,
}

impl FileSegment {
    fn open(dir: &Path, base_offset: i64) -> io::Result<FileSegment> {
        let log_path = segment_path(dir, base_offset, LOG_SUFFIX);
        let log = open_append(&log_path)?;
        let len = log.metadata()?.len();
        Ok(FileSegment {
            log_path,
            log,
            offset_index: open_append(&segment_path(dir, base_offset, OFFSET_INDEX_SUFFIX))?,
            time_index: open_append(&segment_path(dir, base_offset, TIME_INDEX_SUFFIX))?,
            len,
        })
    }

    fn read_all(file: &File) -> io::Result<Vec<u8>> {
        let len = file.metadata()?.len() as usize;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

impl SegmentData for FileSegment {
    fn len(&self) -> u64 {
        self.len
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let result = (&self.log).write_all(bytes);
        if result.is_err() {
            // Keep the file at a batch boundary after a partial write.
            self.log.set_len(self.len)?;
            return result;
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0u8; len];
        self.log.read_exact_at(&mut buf, position)?;
        Ok(Bytes::from(buf))
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.log.set_len(len)?;
        self.len = len;
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.offset_index.sync_data()?;
        self.time_index.sync_data()
    }
    fn append_index_entries(
        &mut self,
        offset_entries: &[u8],
        time_entries: &[u8],
    ) -> io::Result<()> {
        if !offset_entries.is_empty() {
            (&self.offset_index).write_all(offset_entries)?;
        }
        if !time_entries.is_empty() {
            (&self.time_index).write_all(time_entries)?;
        }
        Ok(())
    }
    fn write_indexes(&mut self, offset_index: &[u8], time_index: &[u8]) -> io::Result<()> {
        self.offset_index.set_len(0)?;
        (&self.offset_index).write_all(offset_index)?;
        self.time_index.set_len(0)?;
        (&self.time_index).write_all(time_index)
    }
    fn replace_contents(&mut self, contents: &[u8]) -> io::Result<()> {
        let mut cleaned_path = self.log_path.clone().into_os_string();
        cleaned_path.push(CLEANED_SUFFIX);
        let cleaned_path = PathBuf::from(cleaned_path);
        {
            let mut f = File::create(&cleaned_path)?;
            f.write_all(contents)?;
            f.sync_all()?;
        }
        // The rename is the commit point: a crash before it leaves the old data intact and the
        // `.cleaned` file is deleted on open.
        fs::rename(&cleaned_path, &self.log_path)?;
        if let Some(dir) = self.log_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.log = open_append(&self.log_path)?;
        self.len = self.log.metadata()?.len();
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
            let offset_index = FileSegment::read_all(&data.offset_index)?;
            let time_index = FileSegment::read_all(&data.time_index)?;
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
