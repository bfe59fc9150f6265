//! The cache's public face: [`HotCache::open`] and [`HotCache::ensure`], over the shared
//! state in [`crate::inner`].
//!
//! One mutex guards the index (the eviction [`Policy`]), the copies in flight and the bytes
//! reserved for them. Holding all three under one lock is what makes single flight exact: a
//! request either finds the file, joins the copy in flight, or starts it — there is no moment
//! where a finished copy is in neither table. Nothing slow happens under the lock: evicted files
//! are only *renamed* into `tmp/` there (so a new copy of the same name can never be deleted by a
//! late eviction), and deleted after it is released.

use crate::flight;
use crate::inner::{Inner, Lease, State};
use crate::policy::Policy;
use crate::recovery::{self, Recovered};
use crate::{CopyError, NoObserver, Observer, OpenError, Settings};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tessera_origin::Origin;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

/// The hot cache. Cheap to clone.
#[derive(Clone)]
pub struct HotCache {
    inner: Arc<Inner>,
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

    /// Whether the local copy of `key` is here or being copied, without using it (no lease, no
    /// change to its place in the eviction order, no hit counted).
    pub fn contains(&self, origin: &Arc<dyn Origin>, key: &str, suffix: &str) -> bool {
        let name = crate::file_name(&origin.describe(), key, suffix);
        let st = self.inner.lock();
        st.policy.contains(&name) || st.inflight.contains_key(&name)
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
                // In the span of the request that started it (its trace shows the copy's reads).
                tokio::spawn(async move { guard.run(origin, key).await }.in_current_span());
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
