//! The fleet's metrics (docs/operations.md lists them). Each peer's health is also the ring
//! cluster's `tessera_upstream_healthy{cluster="fleet"}`, and its failures its
//! `tessera_upstream_errors_total`.

use crate::metrics::registry;
use prometheus::{
    register_histogram_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry, Histogram,
    IntCounter, IntCounterVec, IntGaugeVec,
};
use std::sync::LazyLock;

pub(crate) struct FleetMetrics {
    pub requests: IntCounterVec,
    pub forged_marks: IntCounter,
    pub nodes: IntGaugeVec,
    pub hop: Histogram,
}

/// What became of a request on a route with `fleet:`.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    /// This node owns the image: served here.
    Owner,
    /// Sent to the owner.
    Forwarded,
    /// The owner could not be reached, or failed before answering: served here.
    Fallback,
    /// Came from a peer with a verified mark: served here.
    Received,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Owner => "owner",
            Outcome::Forwarded => "forwarded",
            Outcome::Fallback => "fallback",
            Outcome::Received => "received",
        }
    }

    pub(crate) fn count(self) {
        FLEET.requests.with_label_values(&[self.label()]).inc();
    }
}

pub(crate) static FLEET: LazyLock<FleetMetrics> = LazyLock::new(|| {
    FleetMetrics {
    requests: register_int_counter_vec_with_registry!(
        "tessera_fleet_requests_total",
        "Requests of routes with fleet: served as the image's owner, forwarded to it, served here when it could not be reached, or received from a peer.",
        &["outcome"],
        registry()
    )
    .expect("metric registers"),
    forged_marks: register_int_counter_with_registry!(
        "tessera_fleet_forged_marks_total",
        "Requests with a fleet hop mark that did not verify (served as a client's).",
        registry()
    )
    .expect("metric registers"),
    nodes: register_int_gauge_vec_with_registry!(
        "tessera_fleet_nodes",
        "Nodes in the ring, this one included: known, and healthy (updated at each scrape).",
        &["state"],
        registry()
    )
    .expect("metric registers"),
    hop: register_histogram_with_registry!(
        "tessera_fleet_hop_seconds",
        "From sending a request to its image's owner to the owner's response header.",
        vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
        registry()
    )
    .expect("metric registers"),
}
});

pub(crate) fn init_metrics() {
    for outcome in [
        Outcome::Owner,
        Outcome::Forwarded,
        Outcome::Fallback,
        Outcome::Received,
    ] {
        FLEET.requests.with_label_values(&[outcome.label()]);
    }
}
