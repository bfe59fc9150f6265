//! The process's Prometheus registry, served on the admin listener at `/metrics`.
//!
//! One registry per process; each component registers its own metrics on it, in a `metrics`
//! module beside the code that counts them (routes, upstreams, the response cache, reloads; the
//! image application's handlers and hot cache likewise). Names carry their unit (`_seconds`,
//! `_bytes`, `_total`). docs/operations.md lists them all.

use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::LazyLock;

/// The registry, with the process's own series (`process_resident_memory_bytes`,
/// `process_cpu_seconds_total`, `process_open_fds`, …, read from /proc at each scrape) and
/// `tessera_build_info`.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let registry = Registry::new();
    let process = prometheus::process_collector::ProcessCollector::for_self();
    let _ = registry.register(Box::new(process));
    if let Ok(info) = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "tessera_build_info",
            "Always 1; the labels say which build is running.",
        ),
        &["version"],
    ) {
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let _ = registry.register(Box::new(info));
    }
    registry
});

/// The process's metrics registry. Plugins register their own metrics here.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// The registry in Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry().gather(), &mut buf);
    buf
}
