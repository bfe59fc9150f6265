//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! One registry per process. Names carry their unit (`_seconds`, `_bytes`, `_total`). Plugins may
//! register their own metrics on [`registry()`]; docs/operations.md lists the built-in ones.

use prometheus::{
    register_histogram_vec_with_registry, register_histogram_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_vec_with_registry, register_int_gauge_with_registry, Encoder, HistogramVec,
    IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};
use prometheus::{Histogram, IntCounter};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process's metrics registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

pub(crate) struct Metrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_healthy: IntGaugeVec,
    pub reloads: IntCounterVec,
}

pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = registry();
    Metrics {
        requests: register_int_counter_vec_with_registry!(
            "tessera_requests_total",
            "Requests answered, by route and status code.",
            &["route", "status"],
            r
        )
        .expect("metric registers"),
        duration: register_histogram_vec_with_registry!(
            "tessera_request_duration_seconds",
            "Time from the request header to the last response byte, by route.",
            &["route"],
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            r
        )
        .expect("metric registers"),
        upstream_errors: register_int_counter_vec_with_registry!(
            "tessera_upstream_errors_total",
            "Failed upstream attempts, by cluster, endpoint and kind (connect, connect_timeout, timeout, response).",
            &["cluster", "endpoint", "kind"],
            r
        )
        .expect("metric registers"),
        upstream_healthy: register_int_gauge_vec_with_registry!(
            "tessera_upstream_healthy",
            "1 if the endpoint passes its health checks, else 0 (clusters with health checks only).",
            &["cluster", "endpoint"],
            r
        )
        .expect("metric registers"),
        reloads: register_int_counter_vec_with_registry!(
            "tessera_config_reloads_total",
            "Config reloads, by result (ok, failed).",
            &["result"],
            r
        )
        .expect("metric registers"),
    }
});

/// The hot cache's metrics (see docs/operations.md).
pub(crate) struct HotCacheMetrics {
    pub requests: IntCounterVec,
    pub copy_bytes: IntCounter,
    pub copy_duration: Histogram,
    pub failures: IntCounterVec,
    pub evictions: IntCounter,
    pub evicted_bytes: IntCounter,
    pub bytes: IntGauge,
    pub files: IntGauge,
    pub pinned: IntGauge,
}

pub(crate) static HOT_CACHE: LazyLock<HotCacheMetrics> = LazyLock::new(|| {
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
            "Failed copies by kind (not_found, timeout, denied, unavailable, changed, truncated, disk_full, too_large, io, aborted).",
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

/// The `byte_range` handler's metrics.
pub(crate) struct ByteRangeMetrics {
    pub requests: IntCounterVec,
    pub fetched_bytes: IntCounter,
}

pub(crate) static BYTE_RANGE: LazyLock<ByteRangeMetrics> = LazyLock::new(|| {
    let r = registry();
    ByteRangeMetrics {
        requests: register_int_counter_vec_with_registry!(
            "tessera_byte_range_requests_total",
            "byte_range requests by outcome: served (decoded from ranges), otherwise (handed on or refused), not_modified.",
            &["outcome"],
            r
        )
        .expect("metric registers"),
        fetched_bytes: register_int_counter_with_registry!(
            "tessera_byte_range_fetched_bytes_total",
            "Image bytes read from origins by byte_range (headers excluded).",
            r
        )
        .expect("metric registers"),
    }
});

/// The `thumbs` handler's requests by route and outcome.
pub(crate) static THUMBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_thumbs_requests_total",
        "thumbs requests by route and outcome: exact (a thumbnail served as it is), resized (made from a larger one), upscaled, info, not_modified, otherwise (handed on, or 404 without an otherwise route), unauthorised.",
        &["route", "outcome"],
        registry()
    )
    .expect("metric registers")
});

/// The request metrics of one route, resolved once: looking series up by label values hashes
/// and locks, which would cost every request. Series outlive reloads (same labels, same series).
pub(crate) struct RouteMetrics {
    route: String,
    duration: Histogram,
    /// Indexed by status code (0 when no response was written).
    by_status: Box<[OnceLock<IntCounter>]>,
}

impl RouteMetrics {
    pub(crate) fn new(route: &str) -> Self {
        Self {
            route: route.to_string(),
            duration: METRICS.duration.with_label_values(&[route]),
            by_status: (0..1000).map(|_| OnceLock::new()).collect(),
        }
    }

    pub(crate) fn observe(&self, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        match self.by_status.get(usize::from(status)) {
            Some(slot) => slot
                .get_or_init(|| {
                    METRICS
                        .requests
                        .with_label_values(&[&self.route, &status.to_string()])
                })
                .inc(),
            None => METRICS
                .requests
                .with_label_values(&[&self.route, &status.to_string()])
                .inc(),
        }
    }
}

/// The response cache's metrics (see docs/operations.md).
pub(crate) struct ResponseCacheMetrics {
    pub requests: IntCounterVec,
    pub lock_waits: IntCounterVec,
    pub stores: IntCounterVec,
    pub stale_served: IntCounterVec,
    pub purged: IntCounter,
    pub bytes: IntGauge,
    pub entries: IntGauge,
}

pub(crate) static RESPONSE_CACHE: LazyLock<ResponseCacheMetrics> = LazyLock::new(|| {
    let r = registry();
    ResponseCacheMetrics {
        requests: register_int_counter_vec_with_registry!(
            "tessera_cache_requests_total",
            "Requests to cached routes by outcome: hit (a fresh answer was kept), miss (none was), expired (one was, past its lifetime: fetched again), bypass (not cacheable: method, handler, or a wait that ended without an answer).",
            &["route", "outcome"],
            r
        )
        .expect("metric registers"),
        lock_waits: register_int_counter_vec_with_registry!(
            "tessera_cache_lock_waits_total",
            "Requests that waited for another request fetching the same answer.",
            &["route"],
            r
        )
        .expect("metric registers"),
        stores: register_int_counter_vec_with_registry!(
            "tessera_cache_stores_total",
            "Fetched answers by what the cache did with them: stored, not_cacheable (status, Cache-Control, Set-Cookie, Vary: *, Authorization), too_large, purged (a purge ran while it was fetched).",
            &["route", "result"],
            r
        )
        .expect("metric registers"),
        stale_served: register_int_counter_vec_with_registry!(
            "tessera_cache_stale_served_total",
            "Stale answers served because fetching a fresh one failed.",
            &["route"],
            r
        )
        .expect("metric registers"),
        purged: register_int_counter_with_registry!(
            "tessera_cache_purged_total",
            "Answers dropped by the admin purge endpoint.",
            r
        )
        .expect("metric registers"),
        bytes: register_int_gauge_with_registry!(
            "tessera_cache_bytes",
            "Memory held by kept answers (bodies, headers and keys), as counted against response_cache.memory.",
            r
        )
        .expect("metric registers"),
        entries: register_int_gauge_with_registry!(
            "tessera_cache_entries",
            "Answers kept in the response cache.",
            r
        )
        .expect("metric registers"),
    }
});

/// Register the built-in metrics so they show up before the first request.
pub fn init() {
    for result in ["ok", "failed"] {
        METRICS.reloads.with_label_values(&[result]);
    }
    for outcome in ["hit", "miss", "joined"] {
        HOT_CACHE.requests.with_label_values(&[outcome]);
    }
    LazyLock::force(&RESPONSE_CACHE);
}

pub(crate) fn set_endpoint_health(cluster: &str, endpoint: &str, healthy: bool) {
    METRICS
        .upstream_healthy
        .with_label_values(&[cluster, endpoint])
        .set(i64::from(healthy));
}

pub(crate) fn forget_endpoint_health(cluster: &str, endpoint: &str) {
    let _ = METRICS
        .upstream_healthy
        .remove_label_values(&[cluster, endpoint]);
}

/// The registry in Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry().gather(), &mut buf);
    buf
}
