//! A process-wide budget of open segment files. Every segment's `.log` file is reached through a
//! [`SegmentFile`], which opens it on first use and keeps it open while it is used; when more
//! segment files are open than the budget allows, the least recently used are closed, and reopen
//! when they are next read or written. So descriptors stay proportional to the segments in use
//! (the active segments of busy partitions, the segments consumers read), not to every segment
//! on disk, and a broker can hold more segments than its open-files limit.
//!
//! The budget defaults to half the process's soft open-files limit, read when the first segment
//! file opens (the other half stays for connections and everything else); [`set_budget`]
//! changes it.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;

/// The smallest budget: a few partitions must always be able to work.
const MIN_BUDGET: usize = 16;

struct Budget {
    limit: AtomicUsize,
    open: AtomicUsize,
    clock: AtomicU64,
    files: Mutex<Registry>,
}

/// Every segment file that may be open. Entries of dropped segments (deleted by retention, say)
/// are pruned once the list has doubled since the last pruning, so it stays proportional to the
/// segments that exist.
#[derive(Default)]
struct Registry {
    files: Vec<Weak<SegmentFile>>,
    prune_at: usize,
}

impl Registry {
    fn prune(&mut self) {
        self.files.retain(|w| w.strong_count() > 0);
        self.prune_at = (2 * self.files.len()).max(1024);
    }

    fn add(&mut self, file: Weak<SegmentFile>) {
        if self.files.len() >= self.prune_at {
            self.prune();
        }
        self.files.push(file);
    }
}

static BUDGET: LazyLock<Budget> = LazyLock::new(|| Budget {
    limit: AtomicUsize::new(default_budget()),
    open: AtomicUsize::new(0),
    clock: AtomicU64::new(0),
    files: Mutex::new(Registry::default()),
});

fn default_budget() -> usize {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, _)) => usize::try_from(soft / 2)
            .unwrap_or(usize::MAX)
            .max(MIN_BUDGET),
        Err(_) => 512,
    }
}

/// Sets how many segment files the process keeps open at most (at least 16).
pub fn set_budget(files: usize) {
    BUDGET.limit.store(files.max(MIN_BUDGET), Ordering::Relaxed);
    BUDGET.close_least_recently_used(0);
}

/// The current budget and how many segment files are open now.
pub fn usage() -> (usize, usize) {
    (
        BUDGET.limit.load(Ordering::Relaxed),
        BUDGET.open.load(Ordering::Relaxed),
    )
}

impl Budget {
    /// Closes the least recently used open files until at most `limit - spare` stay open,
    /// when more than `limit` are open or `spare` asks for room now.
    fn close_least_recently_used(&self, spare: usize) {
        let limit = self.limit.load(Ordering::Relaxed);
        if spare == 0 && self.open.load(Ordering::Relaxed) <= limit {
            return;
        }
        let mut registry = self.files.lock();
        registry.prune();
        let mut open: Vec<(u64, Arc<SegmentFile>)> = registry
            .files
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|f| f.file.lock().is_some())
            .map(|f| (f.last_used.load(Ordering::Relaxed), f))
            .collect();
        // Down to 90% of the budget, so the next closing round is a while away.
        let keep = (limit - limit / 10).saturating_sub(spare);
        if open.len() <= keep {
            return;
        }
        open.sort_unstable_by_key(|(used, _)| *used);
        let excess = open.len() - keep;
        for (_, f) in open.into_iter().take(excess) {
            f.close();
        }
    }
}

/// One segment's `.log` file, opened for reading and appending when used.
#[derive(Debug)]
pub struct SegmentFile {
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
    last_used: AtomicU64,
}

impl SegmentFile {
    /// The file at `path` (created when missing), open now.
    pub fn open(path: &Path) -> io::Result<Arc<SegmentFile>> {
        let f = Arc::new(SegmentFile {
            path: path.to_path_buf(),
            file: Mutex::new(None),
            last_used: AtomicU64::new(0),
        });
        BUDGET.files.lock().add(Arc::downgrade(&f));
        f.get()?;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, reopened if it was closed. A reader or writer holding it keeps the
    /// descriptor alive even if the budget closes this segment's file meanwhile.
    pub fn get(&self) -> io::Result<Arc<File>> {
        // The clock advances once per file opened, so the hot path only reads it: files used
        // between two opens tie, which is fine for choosing what to close.
        let now = BUDGET.clock.load(Ordering::Relaxed);
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
        let mut slot = self.file.lock();
        if let Some(f) = slot.as_ref() {
            return Ok(f.clone());
        }
        let f = match open_append(&self.path) {
            Err(e) if is_out_of_descriptors(&e) => {
                // Make room at once (the budget may be above what is left), then once more.
                drop(slot);
                BUDGET.close_least_recently_used(BUDGET.limit.load(Ordering::Relaxed) / 10 + 1);
                slot = self.file.lock();
                if let Some(f) = slot.as_ref() {
                    return Ok(f.clone());
                }
                open_append(&self.path)?
            }
            other => other?,
        };
        let f = Arc::new(f);
        *slot = Some(f.clone());
        // Counted before the slot is released, so a concurrent close never counts it out first.
        BUDGET.open.fetch_add(1, Ordering::Relaxed);
        drop(slot);
        self.last_used.store(
            BUDGET.clock.fetch_add(1, Ordering::Relaxed) + 1,
            Ordering::Relaxed,
        );
        BUDGET.close_least_recently_used(0);
        Ok(f)
    }

    /// Closes the file now (it reopens on the next use).
    pub fn close(&self) {
        if self.file.lock().take().is_some() {
            BUDGET.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if self.file.get_mut().take().is_some() {
            BUDGET.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// EMFILE (24, this process) or ENFILE (23, the whole system) on Linux.
pub(crate) fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(24) | Some(23))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_segments_leave_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::default();
        let live: Vec<Arc<SegmentFile>> = (0..10)
            .map(|i| SegmentFile::open(&dir.path().join(format!("{i}.log"))).unwrap())
            .collect();
        for f in &live {
            registry.add(Arc::downgrade(f));
        }
        for i in 0..5000 {
            let gone = SegmentFile::open(&dir.path().join(format!("gone-{i}.log"))).unwrap();
            registry.add(Arc::downgrade(&gone));
        }
        // Pruned whenever the list reached twice what was left (at least 1024).
        assert!(registry.files.len() <= 1024, "{}", registry.files.len());
        registry.prune();
        assert_eq!(registry.files.len(), 10);
    }
}
