//! How many threads one decode may take: the machine's cores shared among the requests that
//! want a decode at that moment.
//!
//! OpenJPEG can share out the code-blocks of a tile among threads. That makes a decode shorter,
//! not cheaper: it is worth it only when cores would otherwise sit idle. So a decode wanted
//! alone — a small view from byte ranges, the one uncached tile of a quiet server — takes every
//! core and answers sooner, while the decodes of a viewer's burst, which keep the cores busy
//! between them, get one thread each, as they would without this.
//!
//! What is counted is the requests holding or waiting for a decode slot ([`Wanted`], taken by
//! `pipeline::Decodes::slot`), process-wide since all routes share the cores; not the decodes
//! running: in a burst, one decode ends and the next has not begun for a moment, and a count of
//! running decodes would then hand the next one every core while the other cores are still busy
//! (measured: 2–3 % more CPU per tile under load). A band of a large area or a kept level counts
//! as one request even though it uses more cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

static WANTED: AtomicUsize = AtomicUsize::new(0);

/// A request that holds or waits for a decode slot, counted until it is dropped.
#[derive(Debug)]
pub struct Wanted(());

impl Wanted {
    pub fn new() -> Wanted {
        WANTED.fetch_add(1, Ordering::Relaxed);
        Wanted(())
    }
}

impl Default for Wanted {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        WANTED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The threads a decode starting now may give OpenJPEG (1: decode on the calling thread).
pub fn threads() -> u32 {
    threads_for(cores(), WANTED.load(Ordering::Relaxed))
}

/// The machine's cores, as the standard library sees them (cgroup limits included), asked once:
/// on Linux the answer reads the cgroup's files, too much to do for every decode.
pub(crate) fn cores() -> u32 {
    static CORES: LazyLock<u32> = LazyLock::new(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .try_into()
            .unwrap_or(1)
    });
    *CORES
}

/// `cores` shared by `wanted` requests (the one asking included), at least one thread each.
fn threads_for(cores: u32, wanted: usize) -> u32 {
    let wanted = u32::try_from(wanted.max(1)).unwrap_or(u32::MAX);
    (cores / wanted).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_alone_takes_every_core_and_busy_ones_one_each() {
        assert_eq!(threads_for(8, 1), 8);
        assert_eq!(threads_for(8, 2), 4);
        assert_eq!(threads_for(8, 3), 2);
        assert_eq!(threads_for(2, 1), 2);
        assert_eq!(threads_for(2, 2), 1);
        assert_eq!(threads_for(2, 50), 1);
        assert_eq!(threads_for(1, 1), 1);
        assert_eq!(threads_for(0, 0), 1);
    }

    #[test]
    fn a_request_is_counted_until_dropped() {
        // Other tests may decode at the same time, so only what this one holds is certain.
        let first = Wanted::new();
        let second = Wanted::new();
        assert!(WANTED.load(Ordering::Relaxed) >= 2);
        assert!(threads() >= 1);
        drop((first, second));
    }
}
