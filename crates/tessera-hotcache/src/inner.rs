//! The cache's shared state: the [`State`] one mutex guards (the eviction policy, the copies in
//! flight, the bytes reserved for them), the [`Inner`] every handle and copy holds, and the
//! [`Lease`] that pins a file. Both the public face ([`crate::cache`]) and the copies
//! ([`crate::flight`]) work on it; it depends on neither.

use crate::policy::Policy;
use crate::{CopyError, Observer, Settings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{watch, Semaphore};

/// What a copy ends with, for every request waiting on it.
pub(crate) type Outcome = Result<Lease, CopyError>;

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
    pub(crate) state: Mutex<State>,
    pub(crate) copy_slots: Semaphore,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) started: Instant,
    /// Held for the life of the cache: one process per directory.
    pub(crate) _lock: std::fs::File,
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
