//! What the image handlers' work looks like from outside (docs/operations.md lists these):
//! decodes per handler (waiting for a slot, running, how they ended), `render` and `info`
//! answers by outcome, as `byte_range` has its own, and the header index.

use prometheus::{
    register_histogram_vec_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry, HistogramVec,
    IntCounter, IntCounterVec, IntGaugeVec,
};
use std::sync::LazyLock;
use tessera_proxy::metrics::registry;

pub struct DecodeMetrics {
    pub wait: HistogramVec,
    pub duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub outcomes: IntCounterVec,
}

/// Decodes of `byte_range`, `render` and `thumbs` (its resizes), by handler.
pub static DECODES: LazyLock<DecodeMetrics> = LazyLock::new(|| {
    let r = registry();
    let seconds = vec![
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    DecodeMetrics {
        wait: register_histogram_vec_with_registry!(
            "tessera_decode_wait_seconds",
            "Time a request waited for one of its route's decode slots (max_concurrent_decodes).",
            &["handler"],
            seconds.clone(),
            r
        )
        .expect("metric registers"),
        duration: register_histogram_vec_with_registry!(
            "tessera_decode_duration_seconds",
            "Time of one decode with its resize and encode, on the blocking pool (also of decodes that outlived their timeout).",
            &["handler"],
            seconds,
            r
        )
        .expect("metric registers"),
        in_flight: register_int_gauge_vec_with_registry!(
            "tessera_decodes_in_flight",
            "Decode slots held (a decode past its timeout holds its slot until it ends).",
            &["handler"],
            r
        )
        .expect("metric registers"),
        outcomes: register_int_counter_vec_with_registry!(
            "tessera_decodes_total",
            "Decodes by how they ended: ok, failed (an error), timeout (answered 504; it ran on), crashed.",
            &["handler", "outcome"],
            r
        )
        .expect("metric registers"),
    }
});

/// `render` and `info` answers by outcome.
pub static ANSWERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_image_requests_total",
        "render and info requests by outcome: jp2 or other (the master's kind), not_modified, failed.",
        &["handler", "outcome"],
        registry()
    )
    .expect("metric registers")
});

/// `render`'s decoded levels (see `imaging::levels`): requests answered from a kept level, and
/// levels decoded.
pub static LEVELS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_decoded_levels_total",
        "render requests for a small resolution level: kept (cropped from a level in memory) or decoded (the level decoded whole, then kept).",
        &["outcome"],
        registry()
    )
    .expect("metric registers")
});

pub struct IndexMetrics {
    pub lookups: IntCounterVec,
    pub read_bytes: IntCounter,
}

/// The JP2 header index.
pub static INDEX: LazyLock<IndexMetrics> = LazyLock::new(|| {
    let r = registry();
    IndexMetrics {
        lookups: register_int_counter_vec_with_registry!(
            "tessera_index_lookups_total",
            "Header index lookups by where the index came from: memory, disk, beside (the object beside the image), built (read from the origin), failed.",
            &["source"],
            r
        )
        .expect("metric registers"),
        read_bytes: register_int_counter_with_registry!(
            "tessera_index_read_bytes_total",
            "Bytes read from origins to build header indexes.",
            r
        )
        .expect("metric registers"),
    }
});

/// The series alert rules and dashboards name exist (at 0) from the start.
pub fn init_metrics() {
    LazyLock::force(&DECODES);
    for (handler, outcomes) in [
        ("render", &["jp2", "other", "not_modified", "failed"][..]),
        ("info", &["jp2", "other", "redirect", "failed"][..]),
    ] {
        for outcome in outcomes {
            ANSWERS.with_label_values(&[handler, outcome]);
        }
    }
    for outcome in ["kept", "decoded"] {
        LEVELS.with_label_values(&[outcome]);
    }
    for source in ["memory", "disk", "beside", "built", "failed"] {
        INDEX.lookups.with_label_values(&[source]);
    }
}

/// Count one `render` or `info` answer.
pub fn answered(handler: &str, outcome: &str) {
    ANSWERS.with_label_values(&[handler, outcome]).inc();
}

/// Count a handler's failed answer, passing the result on.
pub fn count_failure<T, E>(handler: &str, result: Result<T, E>) -> Result<T, E> {
    if result.is_err() {
        answered(handler, "failed");
    }
    result
}
