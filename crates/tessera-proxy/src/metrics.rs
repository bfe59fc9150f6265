//! The process's Prometheus registry, served on the admin listener at `/metrics`.
//!
//! One registry per process; each component registers its own metrics on it, in a `metrics`
//! module beside the code that counts them (routes, upstreams, the response cache, reloads; the
//! image application's handlers and hot cache likewise). Names carry their unit (`_seconds`,
//! `_bytes`, `_total`). docs/operations.md lists them all.

use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::LazyLock;

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

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
