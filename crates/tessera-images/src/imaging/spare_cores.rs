//! How many threads one decode may take: the machine's cores shared among the decodes running
//! at that moment.
//!
//! OpenJPEG can share out the code-blocks of a tile among threads. That makes a decode shorter,
//! not cheaper: it is worth it only when cores would otherwise sit idle. So a decode that runs
//! alone — a small view from byte ranges, the one uncached tile of a quiet server — takes every
//! core and answers sooner, while the decodes of a viewer's burst, which keep the cores busy
//! between them, get one thread each, as they would without this.
//!
//! The count is of decodes taken through [`Share::take`], process-wide (all routes share the
//! cores); a band of a large area or a kept level counts as one decode even though it may use
//! more. Two decodes that start together may both see the cores free and take more threads than
//! there are cores for a moment: OpenJPEG's threads then share the cores, bounded by the
//! routes' decode slots.

use std::sync::atomic::{AtomicUsize, Ordering};

static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// One running decode's share of the cores, counted until it is dropped.
#[derive(Debug)]
pub struct Share {
    threads: u32,
}

impl Share {
    /// Count a decode that starts now and give it its share.
    pub fn take() -> Share {
        let running = RUNNING.fetch_add(1, Ordering::Relaxed) + 1;
        Share {
            threads: threads_for(super::bands::cores(), running),
        }
    }

    /// The threads this decode may give OpenJPEG (1: decode on the calling thread).
    pub fn threads(&self) -> u32 {
        self.threads
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `cores` shared by `running` decodes (this one included), at least one thread each.
fn threads_for(cores: u32, running: usize) -> u32 {
    let running = u32::try_from(running.max(1)).unwrap_or(u32::MAX);
    (cores / running).max(1)
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
    fn a_share_is_counted_until_dropped() {
        // Other tests may decode at the same time, so only what this one holds is certain.
        let first = Share::take();
        let second = Share::take();
        assert!(first.threads() >= 1 && second.threads() >= 1);
        assert!(RUNNING.load(Ordering::Relaxed) >= 2);
        drop((first, second));
    }
}
