//! The response cache's metrics (see docs/operations.md).

use crate::metrics::registry;
use prometheus::{
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_with_registry, IntCounter, IntCounterVec, IntGauge,
};
use std::sync::LazyLock;

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

/// Register the response cache's metrics so they show up before the first request.
pub fn init_metrics() {
    LazyLock::force(&RESPONSE_CACHE);
}
