//! Giving freed heap back to the system after a burst.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena and returns
//! pages to the kernel only from the top of a heap, so after a burst (800 slow
//! uploads, each with its buffers) the process stays resident at several times
//! its idle size although the program holds a few MiB (docs/decisions.md 41).
//! `malloc_trim(0)` walks every arena and releases the free pages in the middle
//! too. The keeper below calls it only when it pays: when the allocator holds
//! a lot of free memory and the process grew since the last trim.
//!
//! The only `unsafe` of the workspace lives here: three calls into glibc that
//! take no pointers from us.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// Trim only when the allocator holds at least this much free memory...
const MIN_FREE: u64 = 8 * 1024 * 1024;
/// ...and the process's resident memory grew by at least this much since the
/// previous trim (otherwise there is nothing new to release).
const MIN_GROWTH: u64 = 8 * 1024 * 1024;

/// What the allocator holds, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live allocations (including the allocator's own large mappings).
    pub in_use: u64,
    /// Bytes freed by the program and kept by the allocator.
    pub free: u64,
}

/// The allocator's counters, where the platform has them (glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's mallinfo2 through FFI")]
pub fn heap_stats() -> Option<HeapStats> {
    // SAFETY: mallinfo2 takes no arguments and returns a struct by value; glibc
    // serializes it with every other allocator call.
    let info = unsafe { libc::mallinfo2() };
    Some(HeapStats {
        in_use: (info.uordblks + info.hblkhd) as u64,
        free: info.fordblks as u64,
    })
}

/// The allocator's counters, where the platform has them (not here).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_stats() -> Option<HeapStats> {
    None
}

/// Allocations from this size up get their own mapping, returned to the
/// system when freed.
pub const MMAP_THRESHOLD: usize = 4 << 20;

/// Makes every allocation of [`MMAP_THRESHOLD`] or more a mapping of its own.
/// glibc's default threshold rises to 32 MiB after the first large free, so
/// multi-megabyte buffers (decoded images, source files) then land in
/// per-thread arenas, are freed from other threads, and pile up: 20 queued
/// transforms of a 24 MP JPEG to WebP (one at a time) peaked at 400–550 MiB
/// resident, 245 MiB with the threshold fixed (docs/performance.md). Buffers
/// the hot paths use (1 MiB upload chunks, JSON) stay under it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's mallopt through FFI")]
pub fn map_large_allocations() -> bool {
    // `STOWAGE_MMAP_THRESHOLD_MIB` overrides the threshold (0: glibc's own).
    let mib = std::env::var("STOWAGE_MMAP_THRESHOLD_MIB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let bytes = match mib {
        Some(0) => return false,
        Some(m) => m.min(1024) << 20,
        None => MMAP_THRESHOLD,
    };
    let threshold = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers, no pointers; called at start-up.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) == 1 }
}

/// Makes large allocations mappings of their own (a no-op elsewhere than glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn map_large_allocations() -> bool {
    false
}

/// Asks the allocator to return its free pages to the system; true when it
/// released some.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "glibc's malloc_trim through FFI")]
pub fn release_free_heap() -> bool {
    // SAFETY: malloc_trim takes a size, no pointers; glibc locks each arena
    // while it walks it.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Asks the allocator to return its free pages to the system (a no-op where
/// the allocator returns memory by itself).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() -> bool {
    false
}

/// The process's resident memory in bytes (Linux), from `/proc/self/status`.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The rule of the keeper: trim when the allocator holds at least
/// [`MIN_FREE`] free bytes and at least half as much free as live, and the
/// process grew by [`MIN_GROWTH`] since the resident size measured after the
/// previous trim (`None`: never trimmed).
pub fn should_trim(stats: HeapStats, resident: u64, after_last_trim: Option<u64>) -> bool {
    let lots_free = stats.free >= MIN_FREE && stats.free * 2 >= stats.in_use;
    let grew = after_last_trim.is_none_or(|last| resident >= last.saturating_add(MIN_GROWTH));
    lots_free && grew
}

/// Every `interval`, gives the allocator's free memory back when
/// [`should_trim`] says so, counting the trims in `metrics`. Runs for the
/// life of the server.
pub async fn keeper(interval: Duration, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after_last_trim = None;
    loop {
        tick.tick().await;
        let (Some(stats), Some(resident)) = (heap_stats(), resident_bytes()) else {
            return; // nothing to keep on this platform
        };
        if should_trim(stats, resident, after_last_trim) {
            let released = release_free_heap();
            Metrics::add(&metrics.allocator_trims, 1);
            after_last_trim = resident_bytes();
            tracing::debug!(
                free = stats.free,
                in_use = stats.in_use,
                before = resident,
                after = after_last_trim,
                released,
                "allocator trimmed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn stats(in_use: u64, free: u64) -> HeapStats {
        HeapStats {
            in_use: in_use * MIB,
            free: free * MIB,
        }
    }

    #[test]
    fn trims_after_a_burst_only() {
        // Idle: little free memory.
        assert!(!should_trim(stats(4, 2), 14 * MIB, None));
        // After a burst: lots free, never trimmed.
        assert!(should_trim(stats(4, 56), 70 * MIB, None));
        // Free memory below the floor, however large relative to live.
        assert!(!should_trim(stats(1, 7), 20 * MIB, None));
        assert!(should_trim(stats(2, 10), 23 * MIB, None));
        // A busy heap: free is small next to live memory.
        assert!(!should_trim(stats(200, 40), 250 * MIB, None));
        assert!(should_trim(stats(80, 40), 130 * MIB, None));
    }

    #[test]
    fn does_not_trim_again_until_the_process_grew() {
        // Trimmed down to 20 MiB; the free chunks stay counted as free.
        assert!(!should_trim(stats(4, 56), 20 * MIB, Some(20 * MIB)));
        assert!(!should_trim(stats(4, 56), 27 * MIB, Some(20 * MIB)));
        assert!(should_trim(stats(4, 56), 28 * MIB, Some(20 * MIB)));
    }

    #[test]
    fn reads_this_process() {
        assert!(resident_bytes().is_some_and(|r| r > 0));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // Other tests allocate and free concurrently in this process, so
            // only what this test holds live can be asserted.
            let v = std::hint::black_box(vec![1u8; 4 * MIB as usize]);
            let during = heap_stats().expect("glibc has mallinfo2");
            assert!(during.in_use >= 4 * MIB, "{during:?}");
            drop(v);
            release_free_heap();
        }
    }
}
