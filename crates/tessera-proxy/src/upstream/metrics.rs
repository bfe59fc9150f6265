//! Failed upstream attempts, by cluster, endpoint and kind.

use crate::metrics::registry;
use prometheus::{register_int_counter_vec_with_registry, IntCounterVec};
use std::sync::LazyLock;

static UPSTREAM_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_upstream_errors_total",
        "Failed upstream attempts, by cluster, endpoint and kind (connect, connect_timeout, timeout, response).",
        &["cluster", "endpoint", "kind"],
        registry()
    )
    .expect("metric registers")
});

/// Count one failed attempt at `endpoint` of `cluster`.
pub(crate) fn count_failed_attempt(cluster: &str, endpoint: &str, kind: &str) {
    UPSTREAM_ERRORS
        .with_label_values(&[cluster, endpoint, kind])
        .inc();
}
