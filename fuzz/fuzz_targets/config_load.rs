//! Fuzz loading `proxy.yaml`: parsing (serde_yaml_ng with unknown top-level keys kept as
//! sections), placing errors at `file:line:col` (a second, event-based parse of the same
//! text), and building a runtime from what parsed. A reload reads whatever is in the file, so
//! none of it may panic or loop, whatever the text.
//!
//! Clusters are left out of the build (their endpoints are resolved by DNS, which a fuzzer
//! should not do); every other part is built with the engine's built-in plugins.
//!
//! Run with `cargo +nightly fuzz run config_load` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_proxy::config::{load_str, ConfigPath};
use tessera_proxy::runtime::Runtime;
use tessera_proxy::Builder;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (config, source) = match load_str("proxy.yaml", text) {
        Ok(loaded) => loaded,
        Err(errors) => {
            let _ = errors.to_string();
            return;
        }
    };
    // Positions for paths that exist and paths that do not.
    let _ = source.error_at(&ConfigPath::root().key("routes").index(3).key("handler"), "x");
    if !config.clusters.is_empty() {
        return;
    }
    let registry = Builder::with_builtins();
    if let Err(errors) = Runtime::build(config, &source, registry.registry(), None) {
        let _ = errors.to_string();
    }
});
