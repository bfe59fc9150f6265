//! [`Builder`]: the registry of filter, handler and resource factories, and the way to run
//! Tessera with it. A plugin crate makes its own binary by adding factories to a builder and
//! calling `run`; the image application (`tessera-images`) is added the same way.

use crate::admin::Admin;
use crate::config::{Config, ConfigErrors};
use crate::filters::{cors, headers, ip_filter, rate_limit};
use crate::handlers::{proxy, redirect, respond};
use crate::plugin::factory::{FnFactory, FnHandlerFactory};
use crate::plugin::resources::FnResourceFactory;
use crate::plugin::{
    BuildContext, BuildError, BuildErrors, Filter, Handler, Registry, Resource, ResourceContext,
};
use crate::runtime::Runtime;
use crate::service::{Admission, ConnectionLimits, TesseraProxy};
use crate::state::{ConfigSource, Overrides, Shared};
use crate::supervisor::Supervisor;
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::L4BufferSettings;
use pingora::listeners::ListenerConfig as Endpoint;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Why `run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // Transparent: shown once, not once as this error and again as its source.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("listener {address}: {message}")]
    Listener { address: String, message: String },
    #[error(transparent)]
    Traces(#[from] crate::traces::TracesError),
}

#[derive(Clone, Default)]
pub struct Builder {
    registry: Registry,
    overrides: Overrides,
    /// Take the listening sockets from a running Tessera instead of binding them.
    upgrade: bool,
}

impl Builder {
    /// A builder with no factories at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A builder with the engine's built-in filters and handlers: the generic ones, which
    /// know nothing of images (`tessera-images` adds those).
    pub fn with_builtins() -> Self {
        Self::empty()
            .filter("headers", headers::Headers::build)
            .filter("cors", cors::Cors::build)
            .filter("rate_limit", rate_limit::RateLimit::build)
            .filter("ip_filter", ip_filter::IpFilter::build)
            .handler("proxy", proxy::Proxy::build)
            .handler("redirect", redirect::Redirect::build)
            .handler("respond", respond::Respond::build)
    }

    /// Register a filter factory: `C` is its YAML configuration, `build` makes the filter.
    pub fn filter<C, T, F>(mut self, name: &str, build: F) -> Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        T: Filter,
        F: Fn(C, &BuildContext<'_>) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        self.registry
            .filters
            .insert(name.to_string(), Arc::new(FnFactory::new(build)));
        self
    }

    /// Register a handler factory: `C` is its YAML configuration, `build` makes the handler.
    pub fn handler<C, T, F>(mut self, name: &str, build: F) -> Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        T: Handler,
        F: Fn(C, &BuildContext<'_>) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        self.registry.handlers.insert(
            name.to_string(),
            Arc::new(FnHandlerFactory(FnFactory::new(build))),
        );
        self
    }

    /// Register a shared resource, configured by the top-level section `section` of
    /// `proxy.yaml`: `C` is that section, `build` makes the resource (given `None` when the
    /// section is absent). Resources are built in the order they are registered, before any
    /// route; plugins get them with [`BuildContext::resource`]. See [`crate::plugin::resources`].
    pub fn resource<C, R, F>(mut self, section: &str, build: F) -> Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        R: Resource,
        F: Fn(Option<C>, &ResourceContext<'_, R>) -> Result<R, BuildErrors> + Send + Sync + 'static,
    {
        self.registry.resources.retain(|(s, _)| s != section);
        self.registry
            .resources
            .push((section.to_string(), Arc::new(FnResourceFactory::new(build))));
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Listen on these `ip:port` addresses (plain HTTP) instead of the config's `listen`.
    pub fn listen_on(mut self, addresses: Vec<String>) -> Self {
        self.overrides.listen = Some(addresses);
        self
    }

    /// Take over the listening sockets of the Tessera running with the same `server.upgrade_sock`
    /// when it gets SIGQUIT, instead of binding them: a zero-downtime upgrade.
    pub fn upgrade(mut self) -> Self {
        self.upgrade = true;
        self
    }

    /// Load and fully check a config (everything but binding the listeners).
    pub fn check(&self, source: &ConfigSource) -> Result<Config, ConfigErrors> {
        let (mut config, src) = source.load()?;
        self.overrides.apply(&mut config);
        let runtime = Runtime::build(config, &src, &self.registry, None)?;
        Ok(runtime.config)
    }

    /// The JSON Schema of the configuration, with this builder's filters and handlers.
    pub fn schema(&self) -> serde_json::Value {
        crate::schema::generate(&self.registry)
    }

    /// Start Tessera with the config from `source` and serve until a shutdown signal.
    pub fn run(self, source: ConfigSource) -> Result<(), RunError> {
        // The engine's series that should show up before the first request.
        crate::state::init_metrics();
        crate::response_cache::init_metrics();
        crate::service::init_metrics();
        crate::fleet::init_metrics();
        let (mut config, src) = source.load()?;
        self.overrides.apply(&mut config);
        let runtime = Runtime::build(config, &src, &self.registry, None)?;
        if !self.upgrade {
            // Upgrading, the running process holds them, and hands them over.
            check_bindable(&runtime.config)?;
        }
        runtime.open_resources(&src)?;
        runtime.log_warnings(&src);
        let config = runtime.config.clone();
        let shared = Arc::new(Shared {
            current: ArcSwap::from_pointee(runtime),
            registry: self.registry,
            source,
            overrides: self.overrides,
            ready: AtomicBool::new(false),
        });

        let threads = config.server.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let conf = ServerConf {
            threads,
            // On SIGTERM Pingora stops accepting, waits the grace period while in-flight
            // requests finish, then stops the runtimes.
            grace_period_seconds: Some(config.server.shutdown_grace.0.as_secs()),
            graceful_shutdown_timeout_seconds: Some(1),
            upstream_keepalive_pool_size: config.server.upstream_keepalive_pool,
            work_stealing: false,
            upgrade_sock: config.server.upgrade_sock.clone(),
            ..ServerConf::default()
        };
        let opt = self.upgrade.then(|| pingora::server::configuration::Opt {
            upgrade: true,
            ..Default::default()
        });
        let mut server = Server::new_with_opt_and_conf(opt, conf);
        server.bootstrap();
        if let Some(traces) = &config.server.traces {
            crate::traces::start(traces)?;
        }

        let mut app = pingora::proxy::http_proxy(
            &server.configuration,
            TesseraProxy {
                shared: shared.clone(),
            },
        );
        let h2c = config.listen.iter().any(|l| l.tls.is_none() && l.h2c);
        if h2c {
            let mut opts = HttpServerOptions::default();
            opts.h2c = true;
            app.server_options = Some(opts);
        }
        // Connection limits and the header deadline come before the proxy sees a connection.
        let limits = ConnectionLimits::from(&config.limits);
        let mut proxy = Service::new("tessera".to_string(), Admission::new(app, limits));
        for l in &config.listen {
            let mut endpoint = Endpoint::tcp(&l.address).l4_buffer(L4BufferSettings {
                read: Some(usize::try_from(l.read_buffer.0).unwrap_or(usize::MAX)),
                write: None,
            });
            if let Some(tls) = &l.tls {
                let mut settings = TlsSettings::intermediate(&tls.cert, &tls.key).map_err(|e| {
                    RunError::Listener {
                        address: l.address.clone(),
                        message: format!("TLS: {e}"),
                    }
                })?;
                settings.enable_h2();
                endpoint = endpoint.tls(settings);
            }
            proxy.add_listener(endpoint);
        }
        server.add_service(proxy);

        if let Some(admin) = &config.admin {
            let mut svc = Service::new(
                "tessera admin".to_string(),
                Admin {
                    shared: shared.clone(),
                },
            );
            svc.add_tcp(&admin.address);
            server.add_service(svc);
        }
        server.add_service(background_service(
            "tessera supervisor",
            Supervisor { shared },
        ));
        tracing::info!(
            listen = ?config.listen.iter().map(|l| l.address.as_str()).collect::<Vec<_>>(),
            admin = config.admin.as_ref().map(|a| a.address.as_str()).unwrap_or("-"),
            threads,
            "starting tessera"
        );
        // `run`, not `run_forever`: the latter exits the process, and the caller's clean-up
        // (a pid file) would not run.
        server.run(pingora::server::RunArgs::default());
        crate::traces::shutdown();
        Ok(())
    }
}

/// Bind every listener's address once, and let go: an address another process holds is an
/// error now, with a non-zero exit, rather than a panic in Pingora's listener thread that
/// leaves a process up and serving nothing.
fn check_bindable(config: &Config) -> Result<(), RunError> {
    let addresses = config
        .listen
        .iter()
        .map(|l| &l.address)
        .chain(config.admin.iter().map(|a| &a.address));
    for address in addresses {
        if let Err(e) = std::net::TcpListener::bind(address.as_str()) {
            return Err(RunError::Listener {
                address: address.clone(),
                message: format!("cannot listen: {e}"),
            });
        }
    }
    Ok(())
}
