//! A global allocator wrapper that counts the live bytes of the calling thread and their peak,
//! so a driver can measure what decoding one frame allocated at most, whatever other threads
//! (other tests of the same binary) allocate meanwhile. Binaries that want the figures install
//! it with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialised and without destructors, so the allocator may touch them at any time.
    // Signed: a thread may free what another allocated.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Counts bytes handed out by the system allocator.
pub struct CountingAlloc;

// SAFETY: every call is forwarded to `System` unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                shrink(layout.size() - new_size);
            }
        }
        p
    }
}

fn grow(by: usize) {
    // `try_with`: the thread's slots are gone while it is being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(by as isize);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(by as isize)));
}

/// Bytes this thread allocated and not yet freed (net of what it freed for others).
pub fn live() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Starts a measurement on this thread: the peak is reset to what is live now; returns that
/// baseline.
pub fn reset_peak() -> isize {
    let live = live();
    let _ = PEAK.try_with(|peak| peak.set(live));
    live
}

/// The highest live byte count of this thread since its last [`reset_peak`].
pub fn peak() -> isize {
    PEAK.try_with(Cell::get).unwrap_or(0)
}

/// Resident memory of a process (`/proc/<pid>/status`): (current, peak) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
