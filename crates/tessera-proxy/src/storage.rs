//! Origins and the hot cache, built from `origins:` and `hot_cache:`.
//!
//! Origins are rebuilt on reload when their config changes. The hot cache is different: it owns
//! a directory and an index of it, so there is one per process. The config builds a
//! [`HotCacheSlot`] (no I/O); `tessera run` opens it before serving (sweeping temporaries and
//! rebuilding the index), while `tessera check` never touches the directory.

use crate::config::{HotCacheConfig, OriginConfig};
use crate::metrics::HOT_CACHE;
use crate::plugin::HttpError;
use http::StatusCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_hotcache::{CopyError, HotCache, Lease, Observer, OpenError, Recovered, Settings};

/// Smaller parts would mean very many requests for one object.
const MIN_PART_SIZE: u64 = 1 << 20;
use tessera_origin::{DirOrigin, Origin, OriginError, S3Origin, S3Settings};

/// Build one origin. Errors are messages for the config report.
pub(crate) fn build_origin(config: &OriginConfig) -> Result<Arc<dyn Origin>, String> {
    match (&config.s3, &config.dir) {
        (Some(s3), None) => {
            let settings = S3Settings {
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                endpoint: s3.endpoint.clone(),
                path_style: s3.path_style,
                connect_timeout: s3.timeouts.connect.0,
                read_timeout: s3.timeouts.read.0,
                operation_timeout: s3.timeouts.operation.map(|d| d.0),
                max_attempts: s3.max_attempts,
            };
            if settings.bucket.is_empty() {
                return Err("s3.bucket is empty".into());
            }
            Ok(Arc::new(
                S3Origin::new(&settings).map_err(|e| e.to_string())?,
            ))
        }
        (None, Some(dir)) => match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(Arc::new(DirOrigin::new(dir))),
            Ok(_) => Err(format!("dir {dir:?} is not a directory")),
            Err(e) => Err(format!("cannot read dir {dir:?}: {e}")),
        },
        _ => Err("an origin needs exactly one of `s3` or `dir`".into()),
    }
}

/// The hot cache's settings from its config.
pub(crate) fn hot_cache_settings(c: &HotCacheConfig) -> Result<Settings, String> {
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
    pub(crate) config: HotCacheConfig,
    settings: Settings,
    cache: OnceLock<HotCache>,
}

impl HotCacheSlot {
    pub(crate) fn new(config: &HotCacheConfig) -> Result<Self, String> {
        Ok(Self {
            settings: hot_cache_settings(config)?,
            config: config.clone(),
            cache: OnceLock::new(),
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
        let _ = self.cache.set(cache);
        Ok(())
    }

    /// The open cache; `None` before [`HotCacheSlot::open`] (as under `tessera check`).
    pub fn get(&self) -> Option<&HotCache> {
        self.cache.get()
    }

    /// A lease on the local copy of `key`, or the answer to give when there is none.
    pub async fn lease(
        &self,
        origin: &Arc<dyn Origin>,
        key: &str,
        suffix: &str,
    ) -> Result<Lease, HttpError> {
        let Some(cache) = self.get() else {
            return Err(HttpError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hot cache is not open",
            ));
        };
        cache
            .ensure(origin, key, suffix)
            .await
            .map_err(|e| copy_error(&e))
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

/// How a failed copy is answered. The copy task has already logged it, naming origin and key.
fn copy_error(e: &CopyError) -> HttpError {
    let (status, message) = match e {
        CopyError::NotFound => (StatusCode::NOT_FOUND, "no such image"),
        CopyError::Origin(OriginError::Timeout(_)) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the image store did not answer in time",
        ),
        CopyError::Origin(_) | CopyError::Truncated { .. } => {
            (StatusCode::BAD_GATEWAY, "the image store failed")
        }
        CopyError::DiskFull | CopyError::TooLarge { .. } | CopyError::Io(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the image cannot be cached locally right now",
        ),
        CopyError::Aborted => (StatusCode::BAD_GATEWAY, "the copy of the image failed"),
    };
    HttpError::new(status, message)
}
