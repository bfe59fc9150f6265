//! The process's store of kept answers (moka, bounded by bytes, each entry dropped when its
//! stale window ends) and the lock that makes concurrent misses for one answer wait for a
//! single fetch (pingora-cache's `CacheLock`).

use super::entry::Entry;
use crate::config::ResponseCacheConfig;
use moka::sync::Cache;
use moka::Expiry;
use pingora::cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked, WritePermit};
use pingora::cache::CacheKey;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where an answer is kept: the route (with a digest of its config, so a changed route does
/// not serve what its old config made), the request's [`crate::plugin::CacheVariant`] (an
/// authorised request's answers apart from the others), and the name its handler gave it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub route: Arc<str>,
    pub variant: Option<String>,
    pub name: String,
}

impl EntryKey {
    fn lock_key(&self) -> CacheKey {
        CacheKey::new(
            format!(
                "{}\0{}\0{}",
                self.route,
                self.variant.as_deref().unwrap_or(""),
                self.name
            ),
            "",
        )
    }
}

struct KeepUntil;

impl Expiry<EntryKey, Arc<Entry>> for KeepUntil {
    fn expire_after_create(
        &self,
        _key: &EntryKey,
        entry: &Arc<Entry>,
        now: Instant,
    ) -> Option<Duration> {
        Some(entry.keep_until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        key: &EntryKey,
        entry: &Arc<Entry>,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, entry, now)
    }
}

pub struct ResponseCache {
    entries: Cache<EntryKey, Arc<Entry>>,
    lock: CacheLock,
    config: ResponseCacheConfig,
    /// Bumped by every purge.
    purges: AtomicU64,
}

/// Either the right to fetch an answer, or a wait for the request that has it.
pub enum Turn {
    Fetch(WritePermit),
    Wait(pingora::cache::lock::ReadLock),
}

impl ResponseCache {
    pub fn new(config: ResponseCacheConfig) -> Self {
        let entries = Cache::builder()
            .max_capacity(config.memory.0)
            .weigher(|k: &EntryKey, e: &Arc<Entry>| e.weight(k.name.len() + k.route.len()))
            .expire_after(KeepUntil)
            .build();
        Self {
            entries,
            lock: CacheLock::new(config.lock_timeout.0),
            config,
            purges: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &ResponseCacheConfig {
        &self.config
    }

    pub fn get(&self, key: &EntryKey) -> Option<Arc<Entry>> {
        self.entries.get(key)
    }

    /// How many purges have run: a fetch notes it when it begins.
    pub fn purges(&self) -> u64 {
        self.purges.load(Ordering::SeqCst)
    }

    /// Keep `entry`, unless a purge ran since the fetch that made it began (`purges_then`).
    pub fn insert_unless_purged(&self, key: EntryKey, entry: Entry, purges_then: u64) -> bool {
        if self.purges() != purges_then {
            return false;
        }
        self.entries.insert(key.clone(), Arc::new(entry));
        // A purge that began between the check and the insert may have missed the entry:
        // purges count first, then remove, so checking again after the insert catches it.
        if self.purges() != purges_then {
            self.entries.remove(&key);
            return false;
        }
        true
    }

    /// Fetch, or wait for the request already fetching `key`. `stale`: the fetch replaces a
    /// stale answer.
    pub fn turn(&self, key: &EntryKey, stale: bool) -> Turn {
        match self.lock.lock(&key.lock_key(), stale) {
            Locked::Write(permit) => Turn::Fetch(permit),
            Locked::Read(read) => Turn::Wait(read),
        }
    }

    /// Let the requests waiting on `key` go: `Done` when an answer was kept.
    pub fn release(&self, key: &EntryKey, permit: WritePermit, status: LockStatus) {
        self.lock.release(&key.lock_key(), permit, status);
    }

    /// Drop the answers named `name` on `route` (of every variant). Returns how many.
    pub fn purge_name(&self, route: &Arc<str>, name: &str) -> usize {
        self.purge_where(|k, _| k.route == *route && k.name == name)
    }

    /// Drop every answer about `about` ([`crate::plugin::CacheName::about`]), on every route
    /// and host.
    pub fn purge_about(&self, about: &str) -> usize {
        self.purge_where(|_, e| e.about.as_deref() == Some(about))
    }

    fn purge_where(&self, doomed: impl Fn(&EntryKey, &Entry) -> bool) -> usize {
        // Count first, then remove: a fetch that began before this purge does not keep its
        // answer (see `insert_unless_purged`).
        self.purges.fetch_add(1, Ordering::SeqCst);
        let keys: Vec<Arc<EntryKey>> = self
            .entries
            .iter()
            .filter(|(k, e)| doomed(k, e))
            .map(|(k, _)| k)
            .collect();
        keys.iter()
            .filter(|k| self.entries.remove(k.as_ref()).is_some())
            .count()
    }

    /// Entries and the bytes they weigh, after pending evictions are done.
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response_cache::freshness::Lifetime;
    use bytes::Bytes;
    use http::HeaderMap;
    use pingora::http::ResponseHeader;

    fn entry(image: &str) -> Entry {
        let resp = ResponseHeader::build(200, None).unwrap();
        let life = Lifetime {
            fresh: Duration::from_secs(60),
            stale_if_error: Duration::ZERO,
        };
        Entry::new(
            &resp,
            Bytes::from_static(b"x"),
            life,
            &HeaderMap::new(),
            Some(image.into()),
        )
    }

    fn key(route: &Arc<str>, authorised: bool, name: &str) -> EntryKey {
        EntryKey {
            route: route.clone(),
            variant: authorised.then(|| "authorised".to_string()),
            name: name.into(),
        }
    }

    #[test]
    fn purges_drop_by_name_and_by_image_and_win_over_fetches_in_flight() {
        let cache = ResponseCache::new(ResponseCacheConfig::default());
        let route: Arc<str> = "r#1".into();
        let then = cache.purges();
        assert!(cache.insert_unless_purged(key(&route, false, "a"), entry("/img"), then));
        assert!(cache.insert_unless_purged(key(&route, true, "a"), entry("/img"), then));
        assert!(cache.insert_unless_purged(key(&route, false, "b"), entry("/img"), then));
        assert!(cache.insert_unless_purged(key(&route, false, "c"), entry("/other"), then));

        // A fetch that began before this purge does not keep its answer.
        let before_purge = cache.purges();
        assert_eq!(
            cache.purge_name(&route, "a"),
            2,
            "both authorisation variants"
        );
        assert!(!cache.insert_unless_purged(key(&route, false, "a"), entry("/img"), before_purge));
        assert!(cache.get(&key(&route, false, "a")).is_none());

        assert_eq!(cache.purge_about("/img"), 1);
        assert!(cache.get(&key(&route, false, "b")).is_none());
        assert!(cache.get(&key(&route, false, "c")).is_some());
        assert_eq!(cache.usage().0, 1);
    }
}
