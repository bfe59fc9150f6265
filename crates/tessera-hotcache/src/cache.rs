//! The cache's state and its public face: [`HotCache::ensure`] and [`Lease`].
//!
//! One mutex guards the index (the eviction [`Policy`]), the copies in flight and the bytes
//! reserved for them. Holding all three under one lock is what makes single flight exact: a
//! request either finds the file, joins the copy in flight, or starts it — there is no moment
//! where a finished copy is in neither table. Nothing slow happens under the lock: evicted files
//! are only *renamed* into `tmp/` there (so a new copy of the same name can never be deleted by a
//! late eviction), and deleted after it is released.

use crate::flight::{self, Outcome};
use crate::policy::Policy;
use crate::recovery::{self, Recovered};
use crate::{CopyError, NoObserver, Observer, OpenError, Settings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tessera_origin::Origin;
use tokio::sync::{watch, Semaphore};

/// "Not found" entries kept before old ones are pruned.
const NOT_FOUND_PRUNE_AT: usize = 4096;

pub(crate) struct State {
    pub(crate) policy: Policy,
    /// Copies in flight, by file name: each waiter watches for the outcome.
    pub(crate) inflight: HashMap<String, watch::Receiver<Option<Outcome>>>,
    /// Bytes promised to copies in flight.
    pub(crate) reserved: u64,
    pub(crate) not_found: HashMap<String, Instant>,
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) objects: PathBuf,
    pub(crate) tmp: PathBuf,
    state: Mutex<State>,
    pub(crate) copy_slots: Semaphore,
    pub(crate) observer: Arc<dyn Observer>,
    started: Instant,
    /// Held for the life of the cache: one process per directory.
    _lock: std::fs::File,
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
        let evicted = self.cache.evict_if_over(&mut st);
        self.cache.report(&st);
        drop(st);
        self.cache.discard(evicted);
    }
}

impl HotCache {
    /// Open the cache: lock its directory, sweep temporaries, rebuild the index from the files
    /// on disk and evict down to the budget if it is over.
    pub fn open(
        settings: Settings,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<(Self, Recovered), OpenError> {
        std::fs::create_dir_all(&settings.dir)?;
        let lock = std::fs::File::create(settings.dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked);
        }
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
            _lock: lock,
        });
        let mut st = inner.lock();
        let evicted = inner.evict_if_over(&mut st);
        inner.report(&st);
        drop(st);
        inner.discard(evicted);
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

    /// A lease on the local copy of `key` from `origin`, stored as
    /// [`crate::file_name`]`(origin.describe(), key, suffix)`. Copies it first unless it is
    /// already here or on its way.
    pub async fn ensure(
        &self,
        origin: &Arc<dyn Origin>,
        key: &str,
        suffix: &str,
    ) -> Result<Lease, CopyError> {
        let name = crate::file_name(&origin.describe(), key, suffix);
        let mut rx = {
            let mut st = self.inner.lock();
            if st.policy.contains(&name) {
                let now = self.inner.now_ms();
                st.policy.touch(&name, now);
                let lease = self.inner.pin(&mut st, &name);
                self.inner.report(&st);
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
                let guard = flight::Flight::new(self.inner.clone(), name, tx);
                let origin = origin.clone();
                let key = key.to_string();
                tokio::spawn(async move { guard.run(origin, key).await });
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters that are still consistent enough to
        // go on serving; refusing every request after it would be worse.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn pin(self: &Arc<Self>, st: &mut State, name: &str) -> Lease {
        st.policy.pin(name);
        Lease {
            pin: Arc::new(Pin {
                cache: self.clone(),
                name: name.to_string(),
                path: self.objects.join(name),
            }),
        }
    }

    /// Remember that `name` does not exist at its origin, for `not_found_ttl`.
    pub(crate) fn remember_not_found(&self, st: &mut State, name: &str) {
        let ttl = self.settings.not_found_ttl;
        if ttl.is_zero() {
            return;
        }
        if st.not_found.len() >= NOT_FOUND_PRUNE_AT {
            st.not_found.retain(|_, at| at.elapsed() < ttl);
        }
        st.not_found.insert(name.to_string(), Instant::now());
    }

    /// If use (with reservations) is over the high watermark, evict down to the low one. The
    /// victims leave the index and are renamed into `tmp/` now, under the lock; the returned
    /// paths are deleted by [`Inner::discard`] after it.
    pub(crate) fn evict_if_over(&self, st: &mut State) -> Vec<PathBuf> {
        let s = &self.settings;
        if st.policy.used() + st.reserved <= s.high() {
            return Vec::new();
        }
        let target = s.low().saturating_sub(st.reserved);
        let mut doomed = Vec::new();
        for (name, size) in st.policy.evict_to(target, s.capacity) {
            static EVICTED: AtomicU64 = AtomicU64::new(0);
            let n = EVICTED.fetch_add(1, Ordering::Relaxed);
            let to = self.tmp.join(format!("{name}.evicted.{n}"));
            match std::fs::rename(self.objects.join(&name), &to) {
                Ok(()) => doomed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %name, "hot cache: cannot remove evicted file: {e}")
                }
            }
            tracing::debug!(file = %name, bytes = size, "hot cache: evicted");
            self.observer.evicted(size);
        }
        doomed
    }

    /// Delete evicted files, off the async runtime when there is one (unlinking a large file
    /// can take a while).
    pub(crate) fn discard(&self, doomed: Vec<PathBuf>) {
        if doomed.is_empty() {
            return;
        }
        let delete = move || {
            for path in doomed {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), "hot cache: cannot delete evicted file: {e}");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(delete)),
            Err(_) => delete(),
        }
    }

    /// Tell the observer the current use; called with the lock held so reports stay in order.
    pub(crate) fn report(&self, st: &State) {
        self.observer.usage(
            st.policy.used(),
            st.policy.files(),
            st.policy.pinned_files(),
        );
    }
}
