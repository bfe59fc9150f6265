//! Requests answered and their duration, by route.

use crate::metrics::registry;
use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry, Histogram,
    HistogramVec, IntCounter, IntCounterVec,
};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_requests_total",
        "Requests answered, by route and status code.",
        &["route", "status"],
        registry()
    )
    .expect("metric registers")
});

static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec_with_registry!(
        "tessera_request_duration_seconds",
        "Time from the request header to the last response byte, by route.",
        &["route"],
        vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0
        ],
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
            duration: DURATION.with_label_values(&[route]),
            by_status: (0..1000).map(|_| OnceLock::new()).collect(),
        }
    }

    pub(crate) fn observe(&self, status: u16, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
        let series = || REQUESTS.with_label_values(&[&self.route, &status.to_string()]);
        match self.by_status.get(usize::from(status)) {
            Some(slot) => slot.get_or_init(series).inc(),
            None => series().inc(),
        }
    }
}
