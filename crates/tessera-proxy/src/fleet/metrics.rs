//! The fleet's metrics (docs/operations.md lists them). The hop's latency is the ring
//! cluster's upstream latency (`cluster="fleet"`); the peers' health, its
//! `tessera_upstream_healthy`.

use crate::metrics::registry;
use prometheus::{
    register_int_counter_vec_with_registry, register_int_counter_with_registry, IntCounter,
    IntCounterVec,
};
use std::sync::LazyLock;

pub(crate) struct FleetMetrics {
    pub requests: IntCounterVec,
    pub forged_marks: IntCounter,
}

/// What became of a request on a route with `fleet:`.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    /// This node owns the image: served here.
    Owner,
    /// Sent to the owner.
    Forwarded,
    /// The owner could not be reached: sent to the next node on the ring.
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
        "Requests of routes with fleet: served as the image's owner, forwarded to it, sent to the next node when it could not be reached, or received from a peer.",
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
}
});

pub(crate) fn init_metrics() {
    LazyLock::force(&FLEET);
}
