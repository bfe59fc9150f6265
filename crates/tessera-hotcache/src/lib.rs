#![forbid(unsafe_code)]
//! The hot cache: the images IIPImage is reading right now, on local disk, within a budget.
//!
//! [`HotCache::ensure`] returns a [`Lease`] on a local copy of an origin object, copying it first
//! if needed. The rules (docs/architecture.md, "The hot cache", says why):
//!
//! - **Single flight.** One copy per file at a time, however many requests wait for it. The copy
//!   runs on a task of its own, so a client that goes away does not cancel it for the others.
//! - **Failures are shared, not remembered.** Every waiter gets the copy's error; nothing is left
//!   behind and the next request tries again. Only "not found" is remembered, briefly.
//! - **No partial files.** Bytes go to a temporary file in the cache's own `tmp/` directory and
//!   are renamed into `objects/`; temporaries left by a crash are swept at start.
//! - **Leases pin.** A leased file is never evicted.
//! - **A budget.** When a copy would take the disk use over the high watermark, files are evicted
//!   (see [`policy`]) until it is under the low one. The index is rebuilt from disk at start.
//! - **Bounded work.** At most `max_concurrent_copies` copies run at once, and a copy waits at
//!   most `max_copy_wait` for its turn; large objects are copied as parallel ranged GETs.

mod cache;
mod copy;
mod flight;
mod inner;
mod naming;
pub mod policy;
mod recovery;

use std::path::PathBuf;
use std::time::Duration;
use tessera_origin::OriginError;

pub use cache::HotCache;
pub use inner::Lease;
pub use naming::file_name;
pub use recovery::Recovered;

/// How the hot cache is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The cache's directory; `objects/` and `tmp/` are made inside it.
    pub dir: PathBuf,
    /// The disk budget in bytes.
    pub capacity: u64,
    /// Eviction starts when a copy would take use over this share of the capacity…
    pub high_watermark: f64,
    /// …and stops when use is at or under this share.
    pub low_watermark: f64,
    /// Copies running at once; more wait their turn…
    pub max_concurrent_copies: usize,
    /// …for at most this long, then fail with [`CopyError::Busy`].
    pub max_copy_wait: Duration,
    /// Objects at least this large are copied as parallel ranged GETs.
    pub parallel_threshold: u64,
    /// The size of each ranged GET of a parallel copy.
    pub part_size: u64,
    /// Ranged GETs in flight for one parallel copy.
    pub parallel_parts: usize,
    /// How long "not found" is remembered for a key (0: not at all).
    pub not_found_ttl: Duration,
    /// Uses of one file closer together than this count as one (one viewer session).
    pub reuse_gap: Duration,
    /// Largest share of the capacity that files used more than once may hold.
    pub protected_share: f64,
}

impl Settings {
    /// Sensible defaults for a cache of `capacity` bytes in `dir`.
    pub fn new(dir: impl Into<PathBuf>, capacity: u64) -> Self {
        Self {
            dir: dir.into(),
            capacity,
            high_watermark: 0.9,
            low_watermark: 0.8,
            max_concurrent_copies: 16,
            max_copy_wait: Duration::from_secs(30),
            parallel_threshold: 64 << 20,
            part_size: 16 << 20,
            parallel_parts: 4,
            not_found_ttl: Duration::from_secs(5),
            reuse_gap: Duration::from_secs(60),
            protected_share: 0.8,
        }
    }

    pub(crate) fn high(&self) -> u64 {
        (self.capacity as f64 * self.high_watermark) as u64
    }

    pub(crate) fn low(&self) -> u64 {
        (self.capacity as f64 * self.low_watermark) as u64
    }
}

/// Why a file could not be made available.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CopyError {
    #[error("the object does not exist at the origin")]
    NotFound,
    #[error("origin: {0}")]
    Origin(OriginError),
    #[error("the disk is full")]
    DiskFull,
    #[error("the object ({size} bytes) is larger than the hot cache allows ({limit} bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("the origin sent {got} bytes of a {expected}-byte object")]
    Truncated { expected: u64, got: u64 },
    #[error("local I/O: {0}")]
    Io(String),
    #[error("the copy task ended without an answer")]
    Aborted,
    #[error("no copy slot came free within {0:?} (max_concurrent_copies copies are running)")]
    Busy(Duration),
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("another process is using this hot cache directory")]
    Locked,
}

impl CopyError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CopyError::NotFound => "not_found",
            CopyError::Origin(e) => e.kind(),
            CopyError::DiskFull => "disk_full",
            CopyError::TooLarge { .. } => "too_large",
            CopyError::Truncated { .. } => "truncated",
            CopyError::Io(_) => "io",
            CopyError::Aborted => "aborted",
            CopyError::Busy(_) => "busy",
        }
    }
}

/// Told about everything the cache does, for metrics. Every method defaults to nothing.
pub trait Observer: Send + Sync + 'static {
    /// A request found its file on disk.
    fn hit(&self) {}
    /// A request started a copy.
    fn miss(&self) {}
    /// A request joined a copy already in flight.
    fn joined(&self) {}
    fn copied(&self, _bytes: u64, _duration: Duration) {}
    fn failed(&self, _kind: &'static str) {}
    fn evicted(&self, _bytes: u64) {}
    /// Disk use after a change.
    fn usage(&self, _bytes: u64, _files: u64, _pinned: u64) {}
}

pub(crate) struct NoObserver;
impl Observer for NoObserver {}

#[cfg(test)]
mod tests;
