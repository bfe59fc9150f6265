//! The hot cache: the images IIPImage is reading right now, on local disk, within a budget.
//!
//! [`HotCache::ensure`] returns a [`Lease`] on a local copy of an origin object, copying it first
//! if needed. The rules (see DESIGN.md, "Hot cache rules"):
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
//! - **Bounded work.** At most `max_concurrent_copies` copies run at once; large objects are
//!   copied as parallel ranged GETs.

mod copy;
mod naming;
pub mod policy;
mod recovery;

use policy::Policy;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tessera_origin::{Origin, OriginError};
use tokio::sync::{watch, Semaphore};

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
    /// Copies running at once; more wait their turn.
    pub max_concurrent_copies: usize,
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
            parallel_threshold: 64 << 20,
            part_size: 16 << 20,
            parallel_parts: 4,
            not_found_ttl: Duration::from_secs(5),
            reuse_gap: Duration::from_secs(60),
            protected_share: 0.8,
        }
    }

    fn high(&self) -> u64 {
        (self.capacity as f64 * self.high_watermark) as u64
    }

    fn low(&self) -> u64 {
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

struct NoObserver;
impl Observer for NoObserver {}

type Outcome = Result<Lease, CopyError>;

struct State {
    policy: Policy,
    /// Copies in flight, by file name: each waiter watches for the outcome.
    inflight: HashMap<String, watch::Receiver<Option<Outcome>>>,
    /// Bytes promised to copies in flight.
    reserved: u64,
    not_found: HashMap<String, Instant>,
}

struct Inner {
    settings: Settings,
    objects: PathBuf,
    tmp: PathBuf,
    state: Mutex<State>,
    copy_slots: Semaphore,
    observer: Arc<dyn Observer>,
    started: Instant,
}

/// The hot cache. Cheap to clone.
#[derive(Clone)]
pub struct HotCache {
    inner: Arc<Inner>,
}

/// A local file that will not be evicted while this (or a clone) is alive.
#[derive(Clone)]
pub struct Lease {
    pin: Arc<Pin>,
}

struct Pin {
    cache: Arc<Inner>,
    name: String,
    path: PathBuf,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lease").field(&self.pin.path).finish()
    }
}

impl Lease {
    /// The file's absolute path.
    pub fn path(&self) -> &Path {
        &self.pin.path
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut st = self.cache.lock();
        st.policy.unpin(&self.name);
        let victims = self.cache.evict_if_over(&mut st);
        drop(st);
        self.cache.remove_files(victims);
        self.cache.report();
    }
}

impl HotCache {
    /// Open the cache: make its directories, sweep temporaries, rebuild the index from the
    /// files on disk and evict down to the budget if it is over.
    pub fn open(
        settings: Settings,
        observer: Option<Arc<dyn Observer>>,
    ) -> std::io::Result<(Self, Recovered)> {
        let objects = settings.dir.join("objects");
        let tmp = settings.dir.join("tmp");
        let mut policy = Policy::new(
            settings.protected_share,
            settings.reuse_gap.as_millis() as u64,
        );
        let recovered = recovery::recover(&objects, &tmp, &mut policy)?;
        let inner = Arc::new(Inner {
            copy_slots: Semaphore::new(settings.max_concurrent_copies.max(1)),
            settings,
            objects,
            tmp,
            state: Mutex::new(State {
                policy,
                inflight: HashMap::new(),
                reserved: 0,
                not_found: HashMap::new(),
            }),
            observer: observer.unwrap_or_else(|| Arc::new(NoObserver)),
            started: Instant::now(),
        });
        let mut st = inner.lock();
        let victims = inner.evict_if_over(&mut st);
        drop(st);
        inner.remove_files(victims);
        inner.report();
        Ok((Self { inner }, recovered))
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// (bytes, files, pinned files) in the index now.
    pub fn usage(&self) -> (u64, u64, u64) {
        let st = self.inner.lock();
        (
            st.policy.used(),
            st.policy.files(),
            st.policy.pinned_files(),
        )
    }

    /// A lease on the local copy of `key` from `origin` (named `origin_name`), stored as
    /// [`file_name`]`(origin_name, key, suffix)`. Copies it first unless it is already here or
    /// on its way.
    pub async fn ensure(
        &self,
        origin: &Arc<dyn Origin>,
        origin_name: &str,
        key: &str,
        suffix: &str,
    ) -> Result<Lease, CopyError> {
        let name = file_name(origin_name, key, suffix);
        let mut rx = {
            let mut st = self.inner.lock();
            if st.policy.contains(&name) {
                let now = self.inner.now_ms();
                st.policy.touch(&name, now);
                let lease = self.inner.pin(&mut st, &name);
                drop(st);
                self.inner.observer.hit();
                return Ok(lease);
            }
            if let Some(rx) = st.inflight.get(&name) {
                let rx = rx.clone();
                drop(st);
                self.inner.observer.joined();
                rx
            } else {
                let ttl = self.inner.settings.not_found_ttl;
                if let Some(at) = st.not_found.get(&name) {
                    if at.elapsed() < ttl {
                        return Err(CopyError::NotFound);
                    }
                    st.not_found.remove(&name);
                }
                let (tx, rx) = watch::channel(None);
                st.inflight.insert(name.clone(), rx.clone());
                drop(st);
                self.inner.observer.miss();
                let inner = self.inner.clone();
                let origin = origin.clone();
                let key = key.to_string();
                tokio::spawn(async move { inner.run_copy(origin, key, name, tx).await });
                rx
            }
        };
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(CopyError::Aborted)),
            Err(_) => Err(CopyError::Aborted),
        };
        outcome
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still consistent enough to
        // go on serving; refusing every request after it would be worse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn pin(self: &Arc<Self>, st: &mut State, name: &str) -> Lease {
        st.policy.pin(name);
        Lease {
            pin: Arc::new(Pin {
                cache: self.clone(),
                name: name.to_string(),
                path: self.objects.join(name),
            }),
        }
    }

    /// If use (with reservations) is over the high watermark, pick victims down to the low one.
    fn evict_if_over(&self, st: &mut State) -> Vec<(String, u64)> {
        let s = &self.settings;
        if st.policy.used() + st.reserved <= s.high() {
            return Vec::new();
        }
        let target = s.low().saturating_sub(st.reserved);
        st.policy.evict_to(target, s.capacity)
    }

    fn remove_files(&self, victims: Vec<(String, u64)>) {
        for (name, size) in victims {
            match std::fs::remove_file(self.objects.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %name, "hot cache: cannot remove evicted file: {e}")
                }
            }
            tracing::debug!(file = %name, bytes = size, "hot cache: evicted");
            self.observer.evicted(size);
        }
    }

    fn report(&self) {
        let (used, files, pinned) = {
            let st = self.lock();
            (
                st.policy.used(),
                st.policy.files(),
                st.policy.pinned_files(),
            )
        };
        self.observer.usage(used, files, pinned);
    }

    /// The copy task: runs to the end whether or not anyone is still waiting.
    async fn run_copy(
        self: Arc<Self>,
        origin: Arc<dyn Origin>,
        key: String,
        name: String,
        tx: watch::Sender<Option<Outcome>>,
    ) {
        let started = Instant::now();
        let mut reserved = 0u64;
        let result = match self.copy_slots.acquire().await {
            Ok(_permit) => self.copy(&*origin, &key, &name, &mut reserved).await,
            Err(_) => Err(CopyError::Aborted),
        };
        let mut st = self.lock();
        st.inflight.remove(&name);
        st.reserved -= reserved;
        let outcome = match result {
            Ok(size) => {
                let now = self.now_ms();
                st.policy.insert(&name, size, now);
                Ok(self.pin(&mut st, &name))
            }
            Err(e) => {
                if e == CopyError::NotFound && !self.settings.not_found_ttl.is_zero() {
                    st.not_found
                        .retain(|_, at| at.elapsed() < self.settings.not_found_ttl);
                    st.not_found.insert(name.clone(), Instant::now());
                }
                Err(e)
            }
        };
        drop(st);
        match &outcome {
            Ok(_) => {
                tracing::info!(origin = %origin.describe(), key = %key, file = %name, elapsed_ms = started.elapsed().as_millis() as u64, "hot cache: copied");
            }
            Err(CopyError::NotFound) => self.observer.failed("not_found"),
            Err(e) => {
                tracing::error!(origin = %origin.describe(), key = %key, error = %e, kind = e.kind(), "hot cache: copy failed");
                self.observer.failed(e.kind());
            }
        }
        self.report();
        let _ = tx.send(Some(outcome));
    }

    /// HEAD, make room, copy to a temporary file, rename into place. Returns the size.
    async fn copy(
        &self,
        origin: &dyn Origin,
        key: &str,
        name: &str,
        reserved: &mut u64,
    ) -> Result<u64, CopyError> {
        let meta = origin.head(key).await.map_err(|e| match e {
            OriginError::NotFound => CopyError::NotFound,
            e => CopyError::Origin(e),
        })?;
        let limit = self.settings.high();
        if meta.size > limit {
            return Err(CopyError::TooLarge {
                size: meta.size,
                limit,
            });
        }
        let victims = {
            let mut st = self.lock();
            st.reserved += meta.size;
            *reserved = meta.size;
            self.evict_if_over(&mut st)
        };
        self.remove_files(victims);

        let started = Instant::now();
        let tmp = copy::temp_path(&self.tmp, name);
        let result = copy::copy_object(origin, key, meta.size, &tmp, &self.settings).await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        if let Err(e) = tokio::fs::rename(&tmp, self.objects.join(name)).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(copy::local_error(&e));
        }
        self.observer.copied(meta.size, started.elapsed());
        Ok(meta.size)
    }
}

#[cfg(test)]
mod tests;
