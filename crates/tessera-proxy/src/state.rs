//! The state shared by the proxy, the admin listener and the supervisor: the current runtime
//! and how to rebuild it from the config file.

use crate::config::{load_str, read_file, Config, ConfigErrors, Source};
use crate::metrics::registry;
use crate::plugin::Registry;
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use prometheus::{register_int_counter_vec_with_registry, IntCounterVec};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::sync::LazyLock;

/// Where the config comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A file, re-read on every reload.
    File(PathBuf),
    /// Text compiled into the binary (the embedded default) or made by the command line
    /// (`tessera serve`); reloads re-read the same text.
    /// Relative paths in it resolve against `base` (e.g. the source tree it came from).
    Embedded {
        name: String,
        text: std::borrow::Cow<'static, str>,
        base: PathBuf,
    },
}

impl ConfigSource {
    /// The config text as it is now.
    pub fn read(&self) -> Result<String, ConfigErrors> {
        match self {
            ConfigSource::File(path) => read_file(path),
            ConfigSource::Embedded { text, .. } => Ok(text.to_string()),
        }
    }

    pub fn load(&self) -> Result<(Config, Source), ConfigErrors> {
        self.parse(&self.read()?)
    }

    /// Parse config text from this source; relative paths in it will resolve against
    /// [`ConfigSource::base_dir`].
    pub fn parse(&self, text: &str) -> Result<(Config, Source), ConfigErrors> {
        let (config, mut source) = load_str(&self.name(), text)?;
        source.base_dir = Some(self.base_dir());
        Ok((config, source))
    }

    /// What relative paths in the config (a directory a resource reads, say) are relative to:
    /// the config file's directory.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            },
            ConfigSource::Embedded { base, .. } => base.clone(),
        }
    }

    pub fn name(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Embedded { name, .. } => name.clone(),
        }
    }
}

/// A hash of config text, to notice when a watched file really changed.
pub fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// What the command line says over the config file (`tessera run --listen`), applied to every
/// version of the config read, at start and at each reload.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Listen on these `ip:port` addresses instead of the config's `listen`.
    pub listen: Option<Vec<String>>,
}

impl Overrides {
    /// An address from the command line is served as plain HTTP/1.1 with the defaults.
    pub fn apply(&self, config: &mut crate::config::Config) {
        if let Some(addresses) = &self.listen {
            config.listen = addresses
                .iter()
                .map(|a| crate::config::ListenerConfig::plain(a))
                .collect();
        }
    }
}

pub struct Shared {
    pub current: ArcSwap<Runtime>,
    pub registry: Registry,
    pub source: ConfigSource,
    pub overrides: Overrides,
    /// Set once the service is serving and reloads are armed.
    pub ready: AtomicBool,
}

impl Shared {
    /// Apply config text (or the error reading it). A valid config replaces the current runtime
    /// for new requests (in-flight requests keep the one they started with); an invalid one is
    /// logged and changes nothing.
    pub fn apply(&self, text: Result<String, ConfigErrors>) -> Result<(), ConfigErrors> {
        let result = text.and_then(|text| self.try_apply(&text));
        match &result {
            Ok(()) => {
                RELOADS.with_label_values(&["ok"]).inc();
                tracing::info!(config = %self.source.name(), "config reloaded");
            }
            Err(errors) => {
                RELOADS.with_label_values(&["failed"]).inc();
                for e in &errors.0 {
                    tracing::error!("{e}");
                }
                tracing::error!(config = %self.source.name(), problems = errors.0.len(), "config reload refused; the running config stays");
            }
        }
        result
    }

    fn try_apply(&self, text: &str) -> Result<(), ConfigErrors> {
        let (mut config, source) = self.source.parse(text)?;
        self.overrides.apply(&mut config);
        let old = self.current.load_full();
        let runtime = Runtime::build(config, &source, &self.registry, Some(&old))?;
        runtime.open_resources(&source)?;
        runtime.log_warnings(&source);
        let (new, old_cfg) = (&runtime.config, &old.config);
        if new.listen != old_cfg.listen
            || new.admin != old_cfg.admin
            || new.server != old_cfg.server
        {
            tracing::warn!(
                "listen, admin and server settings changed; they take effect only after a restart (routes, clusters and filters were reloaded)"
            );
        }
        for (name, cluster) in &old.clusters {
            let kept = runtime
                .clusters
                .get(name)
                .is_some_and(|c| Arc::ptr_eq(c, cluster));
            if !kept {
                cluster.retire();
            }
        }
        if let Some(fleet) = &old.fleet {
            if !runtime
                .fleet
                .as_ref()
                .is_some_and(|f| Arc::ptr_eq(f, fleet))
            {
                fleet.ring().retire();
            }
        }
        runtime.start_background_tasks();
        self.current.store(Arc::new(runtime));
        Ok(())
    }
}

/// 1 while `/readyz` says ready (set at each scrape).
pub(crate) static READY: LazyLock<prometheus::IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge_with_registry!(
        "tessera_ready",
        "1 while the node is ready to serve (what /readyz says), 0 while starting or shutting down.",
        registry()
    )
    .expect("metric registers")
});

static RELOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec_with_registry!(
        "tessera_config_reloads_total",
        "Config reloads, by result (ok, failed).",
        &["result"],
        registry()
    )
    .expect("metric registers")
});

/// Register the reload counter's series so they show up before the first reload.
pub(crate) fn init_metrics() {
    for result in ["ok", "failed"] {
        RELOADS.with_label_values(&[result]);
    }
    LazyLock::force(&READY);
}
