//! `hot_cache:`: the local working set IIPImage reads, built into a [`HotCacheSlot`].
//!
//! The hot cache owns a directory and an index of it, so there is one per process, and a
//! reload keeps it. The config builds the slot (no I/O); `tessera run` opens it before serving
//! ([`Resource::open`]: sweeping temporaries and rebuilding the index), while `tessera check`
//! never touches the directory.

use super::config::HotCacheConfig;
use super::prefetch::Prefetcher;
use prometheus::{
    register_histogram_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_with_registry, Histogram, IntCounter,
    IntCounterVec, IntGauge,
};
use std::sync::LazyLock;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_hotcache::{CopyError, HotCache, Lease, Observer, OpenError, Recovered, Settings};
use tessera_origin::Origin;
use tessera_proxy::metrics::registry;
use tessera_proxy::plugin::{BuildError, BuildErrors, Resource, ResourceContext};
use tessera_proxy::traces::PHASE;
use tracing::Instrument;

/// Smaller parts would mean very many requests for one object.
const MIN_PART_SIZE: u64 = 1 << 20;

/// The `hot_cache:` section: the process's hot cache, if one is configured.
#[derive(Default)]
pub struct HotCacheSection {
    slot: Option<Arc<HotCacheSlot>>,
    /// The section as this config writes it.
    written: Option<HotCacheConfig>,
    /// This config changes the section of the running one, which keeps its cache.
    changed: bool,
}

impl Resource for HotCacheSection {
    fn open(&self) -> Result<(), String> {
        if self.changed {
            // Here rather than in `build`: only a reload that goes ahead says so.
            tracing::warn!(
                "hot_cache settings changed; the running hot cache is kept until a restart"
            );
        }
        match &self.slot {
            Some(slot) => slot
                .open()
                .map_err(|e| format!("hot cache {}: {e}", slot.config.dir)),
            None => Ok(()),
        }
    }
}

impl HotCacheSection {
    pub fn build(
        config: Option<HotCacheConfig>,
        ctx: &ResourceContext<'_, HotCacheSection>,
    ) -> Result<Self, BuildErrors> {
        let written = config.map(|mut c| {
            c.dir = ctx.resolve_path(&c.dir);
            c
        });
        if let Some(running) = ctx.previous() {
            if let Some(slot) = running.slot.clone() {
                // The cache owns its directory for the life of the process: a reload keeps it.
                return Ok(Self {
                    slot: Some(slot),
                    changed: written != running.written,
                    written,
                });
            }
        }
        let Some(config) = written else {
            return Ok(Self::default());
        };
        if ctx.is_reload() {
            return Err(BuildError::new(
                "a hot cache cannot be added by a reload (it must be opened before serving); restart Tessera",
            )
            .into());
        }
        let slot = HotCacheSlot::new(&config).map_err(BuildError::new)?;
        Ok(Self {
            slot: Some(Arc::new(slot)),
            written: Some(config),
            changed: false,
        })
    }

    /// The hot cache, for a handler that needs one.
    pub fn slot(&self) -> Result<Arc<HotCacheSlot>, BuildError> {
        self.slot
            .clone()
            .ok_or_else(|| BuildError::new("this handler needs a top-level `hot_cache:` section"))
    }
}

/// Why no local copy could be leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("the hot cache is not open")]
    NotOpen,
    #[error(transparent)]
    Copy(#[from] CopyError),
}

/// The hot cache's settings from its config.
fn hot_cache_settings(c: &HotCacheConfig) -> Result<Settings, String> {
    if c.low_watermark.0 > c.high_watermark.0 {
        return Err("low_watermark must not be above high_watermark".into());
    }
    if c.capacity.0 == 0 {
        return Err("capacity must be more than 0".into());
    }
    if c.parallel_copy.part_size.0 < MIN_PART_SIZE {
        return Err("parallel_copy.part_size must be at least 1MiB".into());
    }
    if !is_plain_path(&c.dir) {
        return Err(format!(
            "dir {:?} must be a path of letters, digits and / . _ -",
            c.dir
        ));
    }
    Ok(Settings {
        dir: c.dir.clone().into(),
        capacity: c.capacity.0,
        high_watermark: c.high_watermark.0,
        low_watermark: c.low_watermark.0,
        max_concurrent_copies: c.max_concurrent_copies.max(1),
        max_copy_wait: c.max_copy_wait.0,
        parallel_threshold: c.parallel_copy.threshold.0,
        part_size: c.parallel_copy.part_size.0,
        parallel_parts: c.parallel_copy.parts.max(1),
        not_found_ttl: c.not_found_ttl.0,
        reuse_gap: c.reuse_gap.0,
        protected_share: c.protected_share.0,
    })
}

/// The cache's path reaches the image server inside a URL (`IIIF={local_path}/...`): it must
/// hold no character a URL would change.
fn is_plain_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/._-".contains(ch))
}

/// The process's hot cache: configured when the config is built, opened once before serving.
pub struct HotCacheSlot {
    pub config: HotCacheConfig,
    settings: Settings,
    cache: OnceLock<HotCache>,
    prefetcher: Arc<Prefetcher>,
}

impl HotCacheSlot {
    fn new(config: &HotCacheConfig) -> Result<Self, String> {
        Ok(Self {
            settings: hot_cache_settings(config)?,
            config: config.clone(),
            cache: OnceLock::new(),
            prefetcher: Arc::default(),
        })
    }

    /// Open the cache directory (once; later calls do nothing).
    pub fn open(&self) -> Result<(), OpenError> {
        if self.cache.get().is_some() {
            return Ok(());
        }
        // The image server resolves the path from its own working directory: make it absolute.
        std::fs::create_dir_all(&self.settings.dir)?;
        let dir = std::fs::canonicalize(&self.settings.dir)?;
        if !is_plain_path(&dir.to_string_lossy()) {
            return Err(OpenError::Io(std::io::Error::other(format!(
                "{} must be a path of letters, digits and / . _ -",
                dir.display()
            ))));
        }
        let settings = Settings {
            dir,
            ..self.settings.clone()
        };
        let (
            cache,
            Recovered {
                files,
                bytes,
                swept,
            },
        ) = HotCache::open(settings.clone(), Some(Arc::new(CacheMetrics)))?;
        tracing::info!(dir = %settings.dir.display(), files, bytes, swept_temporaries = swept, capacity = self.settings.capacity, "hot cache opened");
        HOT_CACHE
            .capacity
            .set(i64::try_from(self.settings.capacity).unwrap_or(i64::MAX));
        let _ = self.cache.set(cache);
        Ok(())
    }

    /// The open cache; `None` before [`HotCacheSlot::open`] (as under `tessera check`).
    pub fn get(&self) -> Option<&HotCache> {
        self.cache.get()
    }

    /// Start copying `key` from `origin` in the background, if it is not here yet (see
    /// [`super::prefetch`]); nothing for an origin whose files are read in place. Needs a Tokio
    /// runtime.
    pub fn prefetch(&self, origin: &Arc<dyn Origin>, key: &str, suffix: &str) {
        if origin.local_root().is_some() {
            return;
        }
        if let Some(cache) = self.get() {
            self.prefetcher.prefetch(cache, origin, key, suffix);
        }
    }

    /// A lease on the local copy of `key`, copying it from `origin` first if needed.
    pub async fn lease(
        &self,
        origin: &Arc<dyn Origin>,
        key: &str,
        suffix: &str,
    ) -> Result<Lease, LeaseError> {
        let cache = self.get().ok_or(LeaseError::NotOpen)?;
        let span = tracing::info_span!(target: PHASE, "copy", key);
        Ok(cache.ensure(origin, key, suffix).instrument(span).await?)
    }
}

/// Hot cache events into Prometheus.
struct CacheMetrics;

impl Observer for CacheMetrics {
    fn hit(&self) {
        HOT_CACHE.requests.with_label_values(&["hit"]).inc();
    }
    fn miss(&self) {
        HOT_CACHE.requests.with_label_values(&["miss"]).inc();
    }
    fn joined(&self) {
        HOT_CACHE.requests.with_label_values(&["joined"]).inc();
    }
    fn copied(&self, bytes: u64, duration: Duration) {
        HOT_CACHE.copy_bytes.inc_by(bytes);
        HOT_CACHE.copy_duration.observe(duration.as_secs_f64());
    }
    fn failed(&self, kind: &'static str) {
        HOT_CACHE.failures.with_label_values(&[kind]).inc();
    }
    fn evicted(&self, bytes: u64) {
        HOT_CACHE.evictions.inc();
        HOT_CACHE.evicted_bytes.inc_by(bytes);
    }
    fn usage(&self, bytes: u64, files: u64, pinned: u64) {
        HOT_CACHE.bytes.set(bytes as i64);
        HOT_CACHE.files.set(files as i64);
        HOT_CACHE.pinned.set(pinned as i64);
    }
}

/// The hot cache's metrics (see docs/operations.md).
struct HotCacheMetrics {
    pub requests: IntCounterVec,
    pub copy_bytes: IntCounter,
    pub copy_duration: Histogram,
    pub failures: IntCounterVec,
    pub evictions: IntCounter,
    pub evicted_bytes: IntCounter,
    pub bytes: IntGauge,
    pub capacity: IntGauge,
    pub files: IntGauge,
    pub pinned: IntGauge,
}

static HOT_CACHE: LazyLock<HotCacheMetrics> = LazyLock::new(|| {
    let r = registry();
    HotCacheMetrics {
        requests: register_int_counter_vec_with_registry!(
            "tessera_hot_cache_requests_total",
            "Hot cache lookups by outcome: hit (on disk), miss (started a copy), joined (waited for a copy in flight).",
            &["outcome"],
            r
        )
        .expect("metric registers"),
        copy_bytes: register_int_counter_with_registry!(
            "tessera_hot_cache_copy_bytes_total",
            "Bytes copied from origins into the hot cache.",
            r
        )
        .expect("metric registers"),
        copy_duration: register_histogram_with_registry!(
            "tessera_hot_cache_copy_duration_seconds",
            "Time to copy one object into the hot cache (successful copies).",
            vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
            r
        )
        .expect("metric registers"),
        failures: register_int_counter_vec_with_registry!(
            "tessera_hot_cache_copy_failures_total",
            "Failed copies by kind (not_found, timeout, denied, unavailable, changed, truncated, disk_full, too_large, io, aborted, busy).",
            &["kind"],
            r
        )
        .expect("metric registers"),
        evictions: register_int_counter_with_registry!(
            "tessera_hot_cache_evictions_total",
            "Files evicted from the hot cache.",
            r
        )
        .expect("metric registers"),
        evicted_bytes: register_int_counter_with_registry!(
            "tessera_hot_cache_evicted_bytes_total",
            "Bytes evicted from the hot cache.",
            r
        )
        .expect("metric registers"),
        bytes: register_int_gauge_with_registry!(
            "tessera_hot_cache_bytes",
            "Bytes of the files in the hot cache.",
            r
        )
        .expect("metric registers"),
        capacity: register_int_gauge_with_registry!(
            "tessera_hot_cache_capacity_bytes",
            "The hot cache's budget (hot_cache.capacity).",
            r
        )
        .expect("metric registers"),
        files: register_int_gauge_with_registry!(
            "tessera_hot_cache_files",
            "Files in the hot cache.",
            r
        )
        .expect("metric registers"),
        pinned: register_int_gauge_with_registry!(
            "tessera_hot_cache_pinned_files",
            "Hot cache files held by requests in progress (never evicted).",
            r
        )
        .expect("metric registers"),
    }
});

/// Register the hot cache's outcomes and failure kinds so they show up (at 0) before the first
/// request: alert rules on their rates need the series to exist.
pub(crate) fn init_metrics() {
    for outcome in ["hit", "miss", "joined"] {
        HOT_CACHE.requests.with_label_values(&[outcome]);
    }
    for kind in [
        "not_found",
        "timeout",
        "denied",
        "unavailable",
        "changed",
        "truncated",
        "disk_full",
        "too_large",
        "io",
        "aborted",
        "busy",
    ] {
        HOT_CACHE.failures.with_label_values(&[kind]);
    }
}
