//! A [`Runtime`] is one validated, built configuration: clusters, shared resources, the route
//! table with its filters and handlers. The service holds the current one behind an `ArcSwap`;
//! each request takes a reference when it starts, so a reload never changes a request midway.
//!
//! [`Runtime::build`] runs in named steps — listeners, clusters, fleet, resources, routes — and each
//! step reports every problem it finds, at its place in the file, before the build gives up.

use crate::cluster::Cluster;
use crate::config::{Config, ConfigError, ConfigErrors, ConfigPath, RouteConfig, Source};
use crate::fleet::Fleet;
use crate::plugin::resources::ResourceEnv;
use crate::plugin::{BuildContext, BuildError, Registry, Resources};
use crate::public_url::{self, PublicUrls};
use crate::response_cache::{ResponseCache, RouteCache};
use crate::route::{Route, RouteMatcher, RouteMetrics, RouteTable, NO_ROUTE};
use crate::template::Template;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    /// What plugins share, built from the config's top-level sections.
    pub resources: Resources,
    /// Kept answers of routes with `cache:`, kept while `response_cache:` is unchanged.
    pub response_cache: Arc<ResponseCache>,
    /// `public_url` and `trusted_proxies`: the base of the URLs answers carry.
    pub public_urls: PublicUrls,
    /// `fleet:`: the nodes this one shares images with.
    pub fleet: Option<Arc<Fleet>>,
    /// Metrics of requests no route matched.
    pub(crate) no_route_metrics: RouteMetrics,
}

/// The problems found so far, each placed in the config file.
struct Problems<'a> {
    source: &'a Source,
    found: Vec<ConfigError>,
}

impl Problems<'_> {
    fn at(&mut self, path: &ConfigPath, message: impl Into<String>) {
        self.found.push(self.source.error_at(path, message));
    }
}

impl Runtime {
    /// Check and build `config`. Every problem found is reported, each at its place in `source`.
    /// Clusters whose config is unchanged from `previous` are reused, keeping their health state;
    /// resources decide for themselves what they keep.
    pub fn build(
        config: Config,
        source: &Source,
        registry: &Registry,
        previous: Option<&Runtime>,
    ) -> Result<Self, ConfigErrors> {
        let mut problems = Problems {
            source,
            found: Vec::new(),
        };
        check_listeners(&config, &mut problems);
        check_traces(&config, &mut problems);
        let public_urls = build_public_urls(&config, &mut problems);
        check_sections(&config, registry, &mut problems);
        let clusters = build_clusters(&config, previous, &mut problems);
        let fleet = build_fleet(&config, previous, &mut problems);
        let resources = build_resources(&config, registry, previous, &mut problems);
        let response_cache = match previous {
            Some(p) if p.config.response_cache == config.response_cache => p.response_cache.clone(),
            _ => Arc::new(ResponseCache::new(config.response_cache.clone())),
        };
        let routes = build_routes(&config, registry, &clusters, &resources, &mut problems);
        if !problems.found.is_empty() {
            return Err(ConfigErrors(problems.found));
        }
        Ok(Self {
            config,
            routes: RouteTable::new(routes),
            clusters,
            resources,
            response_cache,
            public_urls,
            fleet,
            no_route_metrics: RouteMetrics::new(NO_ROUTE),
        })
    }

    /// Let every resource touch the world before this config serves (open directories, sweep
    /// temporaries). `tessera run` and reloads call it; `tessera check` does not.
    pub fn open_resources(&self, source: &Source) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        for (section, hooks) in self.resources.each() {
            if let Err(message) = hooks.open() {
                errors.push(source.error_at(&ConfigPath::root().key(section), message));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Say what is valid but probably not meant: a config with no routes answers every
    /// request 404 (an empty file is such a config).
    pub fn log_warnings(&self, source: &Source) {
        if self.config.routes.is_empty() {
            tracing::warn!(config = %source.name, "the config has no routes: every request will be answered 404");
        }
    }

    /// Start health checks of clusters that have none running yet, and the resources'
    /// background tasks. Needs a Tokio runtime.
    pub fn start_background_tasks(&self) {
        for c in self.clusters.values() {
            c.start_health_checks();
        }
        if let Some(fleet) = &self.fleet {
            fleet.ring().start_discovery();
            fleet.ring().start_health_checks();
        }
        for (_, hooks) in self.resources.each() {
            hooks.start();
        }
    }
}

/// `server.traces`, if any, can be exported.
fn check_traces(config: &Config, problems: &mut Problems<'_>) {
    let Some(traces) = &config.server.traces else {
        return;
    };
    let path = ConfigPath::root().key("server").key("traces");
    for (key, message) in traces.problems() {
        problems.at(&path.key(key), message);
    }
}

/// Every listener and the admin address parse, and their TLS files are readable.
fn check_listeners(config: &Config, problems: &mut Problems<'_>) {
    let root = ConfigPath::root();
    if config.listen.is_empty() {
        problems.at(&root.key("listen"), "at least one listener is needed");
    }
    for (i, l) in config.listen.iter().enumerate() {
        let path = root.key("listen").index(i);
        if l.address.parse::<SocketAddr>().is_err() {
            problems.at(
                &path.key("address"),
                format!("{:?} is not an ip:port address", l.address),
            );
        }
        if let Some(tls) = &l.tls {
            for (key, file) in [("cert", &tls.cert), ("key", &tls.key)] {
                if let Err(e) = std::fs::metadata(file) {
                    problems.at(
                        &path.key("tls").key(key),
                        format!("cannot read {file:?}: {e}"),
                    );
                }
            }
        }
        if l.read_buffer.0 > MAX_READ_BUFFER {
            problems.at(
                &path.key("read_buffer"),
                format!(
                    "{} bytes for each connection is too much: at most {MAX_READ_BUFFER} (1 MiB)",
                    l.read_buffer.0
                ),
            );
        }
    }
    let cleartext: Vec<bool> = config
        .listen
        .iter()
        .filter(|l| l.tls.is_none())
        .map(|l| l.h2c)
        .collect();
    if cleartext.iter().any(|&h| h) && cleartext.iter().any(|&h| !h) {
        // Pingora's HTTP options belong to the service, not to one listener.
        problems.at(
            &root.key("listen"),
            "h2c must be the same on every cleartext listener",
        );
    }
    if let Some(admin) = &config.admin {
        if admin.address.parse::<SocketAddr>().is_err() {
            problems.at(
                &root.key("admin").key("address"),
                format!("{:?} is not an ip:port address", admin.address),
            );
        }
    }
    check_addresses_differ(config, problems);
}

/// Every connection allocates its read buffer: beyond this, a flood of connections is a flood
/// of memory.
const MAX_READ_BUFFER: u64 = 1 << 20;

/// `public_url` is a URL a viewer can use; `trusted_proxies` are addresses or networks.
fn build_public_urls(config: &Config, problems: &mut Problems<'_>) -> PublicUrls {
    let root = ConfigPath::root();
    let fixed = config
        .public_url
        .as_deref()
        .and_then(|text| match public_url::normalise(text) {
            Ok(url) => Some(url),
            Err(e) => {
                problems.at(&root.key("public_url"), e);
                None
            }
        });
    let mut trusted_proxies = Vec::new();
    for (i, text) in config.trusted_proxies.iter().enumerate() {
        match text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => problems.at(
                &root.key("trusted_proxies").index(i),
                format!("{text:?} is not an address or network (10.0.0.0/8)"),
            ),
        }
    }
    PublicUrls {
        fixed,
        trusted_proxies,
    }
}

/// Two listeners on one address (or on the same port, one of them on every interface) cannot
/// both bind: say so now, not when the server fails to start.
fn check_addresses_differ(config: &Config, problems: &mut Problems<'_>) {
    let root = ConfigPath::root();
    let mut taken: Vec<(SocketAddr, ConfigPath)> = Vec::new();
    let listeners = config
        .listen
        .iter()
        .enumerate()
        .map(|(i, l)| (&l.address, root.key("listen").index(i).key("address")));
    let admin = config
        .admin
        .iter()
        .map(|a| (&a.address, root.key("admin").key("address")));
    for (address, path) in listeners.chain(admin) {
        let Ok(addr) = address.parse::<SocketAddr>() else {
            continue;
        };
        let clash = taken.iter().find(|(other, _)| {
            other.port() == addr.port()
                && (other.ip() == addr.ip()
                    || other.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        });
        if let Some((other, _)) = clash {
            problems.at(
                &path,
                format!("{addr} is already used by another listener ({other})"),
            );
        } else {
            taken.push((addr, path));
        }
    }
}

/// Every top-level key the engine does not know is read by a registered resource.
fn check_sections(config: &Config, registry: &Registry, problems: &mut Problems<'_>) {
    let known = registry.resource_sections();
    for section in config.sections.keys() {
        if !known.contains(&section.as_str()) {
            let expected: Vec<&str> = crate::config::ENGINE_KEYS
                .iter()
                .copied()
                .chain(known.iter().copied())
                .collect();
            problems.at(
                &ConfigPath::root().key(section.clone()),
                format!(
                    "unknown field `{section}`, expected one of {}",
                    expected.join(", ")
                ),
            );
        }
    }
}

/// The clusters; one whose config is unchanged is taken over from `previous`.
fn build_clusters(
    config: &Config,
    previous: Option<&Runtime>,
    problems: &mut Problems<'_>,
) -> BTreeMap<String, Arc<Cluster>> {
    let mut clusters = BTreeMap::new();
    for (name, cc) in &config.clusters {
        if let Some(old) = previous.and_then(|p| p.clusters.get(name)) {
            if old.config() == cc {
                clusters.insert(name.clone(), old.clone());
                continue;
            }
        }
        match Cluster::build(name, cc) {
            Ok(c) => {
                clusters.insert(name.clone(), Arc::new(c));
            }
            Err(e) => problems.at(
                &ConfigPath::root().key("clusters").key(name.clone()),
                format!("cluster {name:?}: {e}"),
            ),
        }
    }
    clusters
}

/// The fleet of `fleet:`, kept from `previous` if the section is unchanged (with its peers'
/// health).
fn build_fleet(
    config: &Config,
    previous: Option<&Runtime>,
    problems: &mut Problems<'_>,
) -> Option<Arc<Fleet>> {
    let section = config.fleet.as_ref()?;
    if let Some(old) = previous.and_then(|p| p.fleet.as_ref()) {
        if old.is_built_from(section) {
            return Some(old.clone());
        }
    }
    let listen_port = config
        .listen
        .first()
        .and_then(|l| l.address.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok());
    match Fleet::build(section, config.admin.as_ref(), listen_port) {
        Ok(fleet) => Some(Arc::new(fleet)),
        Err((path, e)) => {
            problems.at(&path, e);
            None
        }
    }
}

/// Every registered resource, in registration order, from its section (or from nothing).
fn build_resources(
    config: &Config,
    registry: &Registry,
    previous: Option<&Runtime>,
    problems: &mut Problems<'_>,
) -> Resources {
    let mut resources = Resources::default();
    let env = ResourceEnv {
        previous: previous.map(|p| &p.resources),
        reload: previous.is_some(),
        base_dir: problems.source.base_dir.as_deref(),
    };
    for (section, factory) in &registry.resources {
        let value = config.sections.get(section).cloned();
        if let Err(errors) = factory.build_into(section, value, &env, &mut resources) {
            let at = ConfigPath::root().key(section.clone());
            for e in errors.0 {
                problems.at(&at.join(&e.path), e.message);
            }
        }
    }
    resources
}

/// The route table: each route's matcher, filters, handler and cache.
fn build_routes(
    config: &Config,
    registry: &Registry,
    clusters: &BTreeMap<String, Arc<Cluster>>,
    resources: &Resources,
    problems: &mut Problems<'_>,
) -> Vec<Arc<Route>> {
    let route_names: BTreeSet<String> = config.routes.iter().map(|r| r.name.clone()).collect();
    let mut routes = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, rc) in config.routes.iter().enumerate() {
        let rpath = ConfigPath::root().key("routes").index(i);
        if let Some(first) = seen.insert(&rc.name, i) {
            let at = problems.source.error_at(
                &ConfigPath::root().key("routes").index(first).key("name"),
                "",
            );
            let line = at.position.map(|p| p.line).unwrap_or(0);
            problems.at(
                &rpath.key("name"),
                format!(
                    "duplicate route name {:?} (first defined on line {line})",
                    rc.name
                ),
            );
        }
        let matcher = match RouteMatcher::build(&rc.match_) {
            Ok(m) => m,
            Err((p, e)) => {
                problems.at(&rpath.key("match").join(&p), e);
                continue;
            }
        };
        let captures = matcher.capture_names();
        let ctx = BuildContext {
            route: &rc.name,
            captures: &captures,
            clusters,
            route_names: &route_names,
            resources,
        };
        if let Some(route) = build_route(rc, &rpath, matcher, &ctx, registry, problems) {
            routes.push(Arc::new(route));
        }
    }
    routes
}

/// One route's filters and handler, built by their factories.
fn build_route(
    rc: &RouteConfig,
    rpath: &ConfigPath,
    matcher: RouteMatcher,
    ctx: &BuildContext<'_>,
    registry: &Registry,
    problems: &mut Problems<'_>,
) -> Option<Route> {
    let mut filters = Vec::new();
    for (j, spec) in rc.filters.iter().enumerate() {
        let fpath = rpath.key("filters").index(j);
        let Some(factory) = registry.filters.get(&spec.name) else {
            problems.at(
                &fpath,
                format!(
                    "unknown filter {:?} (known: {})",
                    spec.name,
                    registry.filter_names().join(", ")
                ),
            );
            continue;
        };
        match factory.build(spec.config.clone(), ctx) {
            Ok(f) => filters.push(f),
            Err(e) => plugin_error(problems, &fpath, &spec.name, &spec.config, "filter", e),
        }
    }

    let hpath = rpath.key("handler");
    let Some(factory) = registry.handlers.get(&rc.handler.name) else {
        problems.at(
            &hpath,
            format!(
                "unknown handler {:?} (known: {})",
                rc.handler.name,
                registry.handler_names().join(", ")
            ),
        );
        return None;
    };
    let handler = match factory.build(rc.handler.config.clone(), ctx) {
        Ok(h) => h,
        Err(e) => {
            let (name, config) = (&rc.handler.name, &rc.handler.config);
            plugin_error(problems, &hpath, name, config, "handler", e);
            return None;
        }
    };
    let fleet_key = match rc.fleet.as_ref().map(|f| fleet_key(&f.key, ctx.captures)) {
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            problems.at(&rpath.key("fleet").key("key"), e);
            return None;
        }
        None => None,
    };
    let public_url = match rc.public_url.as_deref().map(public_url::normalise) {
        Some(Ok(url)) => Some(url),
        Some(Err(e)) => {
            problems.at(&rpath.key("public_url"), e);
            return None;
        }
        None => None,
    };
    Some(Route {
        name: rc.name.clone(),
        public_url,
        matcher,
        filters: filters.into(),
        handler,
        cache: rc.cache.clone().map(|c| RouteCache::new(rc, c)),
        fleet_key,
        metrics: RouteMetrics::new(&rc.name),
    })
}

/// A route's fleet key: a template of its captures that uses at least one (a key without
/// any would send all the route's requests to one node).
fn fleet_key(source: &str, captures: &BTreeSet<String>) -> Result<Template, String> {
    let key = Template::parse(source)?;
    key.check(captures)?;
    if key.captures().next().is_none() {
        return Err("the key must use the route's captures, e.g. \"{image}\"".into());
    }
    Ok(key)
}

/// Place a plugin's error: inside its config when it has one, else at the bare name.
fn plugin_error(
    problems: &mut Problems<'_>,
    at: &ConfigPath,
    name: &str,
    config: &serde_yaml_ng::Value,
    kind: &str,
    e: BuildError,
) {
    let base = if config.is_null() {
        at.clone()
    } else {
        at.key(name)
    };
    problems.at(
        &base.join(&e.path),
        format!("{kind} {name:?}: {}", e.message),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::Builder;

    fn errors(yaml: &str) -> Vec<String> {
        let (config, source) = load_str("p.yaml", yaml).expect("parses");
        match Runtime::build(config, &source, Builder::with_builtins().registry(), None) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_config_builds() {
        let yaml = "clusters:\n  web: { endpoints: [\"127.0.0.1:1\"] }\nroutes:\n  - name: r\n    match: { path: \"/{id}\" }\n    filters: [cors]\n    handler: { proxy: { cluster: web, path: \"/x/{id}\" } }\n";
        assert_eq!(errors(yaml), Vec::<String>::new());
    }

    #[test]
    fn unknown_cluster_and_capture_are_reported_in_place() {
        let yaml = "routes:\n  - name: r\n    match: { path: \"/{id}\" }\n    handler: { proxy: { cluster: nope } }\n  - name: s\n    match: { path: \"/s\" }\n    handler: { redirect: { location: \"/{id}\" } }\n";
        let e = errors(yaml);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("p.yaml:4:34: handler \"proxy\": unknown cluster \"nope\""),
            "{}",
            e[0]
        );
        assert!(
            e[1].starts_with("p.yaml:7:38: handler \"redirect\": template \"/{id}\" uses {id}"),
            "{}",
            e[1]
        );
    }

    #[test]
    fn duplicate_routes_unknown_plugins_and_bad_patterns() {
        let yaml = "routes:\n  - name: a\n    match: { path: \"/a\" }\n    filters: [gzip]\n    handler: { respond: {} }\n  - name: a\n    match: { path: \"b\" }\n    handler: { serve: {} }\n";
        let e = errors(yaml);
        assert!(
            e.iter()
                .any(|l| l.starts_with("p.yaml:4:15: unknown filter \"gzip\"")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|l| l
                .starts_with("p.yaml:6:11: duplicate route name \"a\" (first defined on line 2)")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("p.yaml:7:20: path pattern \"b\" must start with '/'")),
            "{e:?}"
        );
    }

    #[test]
    fn cluster_problems() {
        let yaml = "clusters:\n  a: { endpoints: [] }\n  b: { endpoints: [\"nohost\"] }\n  c: { endpoints: [\"127.0.0.1:1\"], load_balancing: { consistent_hash: \"{bad\" } }\n";
        let e = errors(yaml);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("at least one endpoint"));
        assert!(e[1].contains("must be host:port"));
        assert!(e[2].contains("unclosed"));
    }

    #[test]
    fn listeners_and_admin_need_their_own_addresses() {
        let yaml = "listen: [{ address: \"127.0.0.1:8080\" }, { address: \"0.0.0.0:8080\" }]\nadmin: { address: \"127.0.0.1:8080\" }\n";
        let e = errors(yaml);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("p.yaml:1:"), "{e:?}");
        assert!(
            e[0].contains("0.0.0.0:8080 is already used by another listener (127.0.0.1:8080)"),
            "{e:?}"
        );
        assert!(e[1].starts_with("p.yaml:2:"), "{e:?}");
        let ok = "listen: [{ address: \"127.0.0.1:8080\" }, { address: \"127.0.0.2:8080\" }]\nadmin: { address: \"127.0.0.1:9090\" }\n";
        assert_eq!(errors(ok), Vec::<String>::new());
    }

    #[test]
    fn an_oversized_read_buffer_is_refused_at_its_line() {
        let yaml = "listen:\n  - address: \"127.0.0.1:1\"\n    read_buffer: 64MiB\n";
        let e = errors(yaml);
        assert!(
            e[0].starts_with("p.yaml:3:") && e[0].contains("too much"),
            "{e:?}"
        );
        let ok = "listen: [{ address: \"127.0.0.1:1\", read_buffer: 64KiB }]\n";
        assert_eq!(errors(ok), Vec::<String>::new());
    }

    #[test]
    fn mixed_h2c_listeners_are_refused() {
        let yaml =
            "listen: [{ address: \"127.0.0.1:1\", h2c: true }, { address: \"127.0.0.1:2\" }]\n";
        let e = errors(yaml);
        assert!(e[0].contains("h2c must be the same"), "{e:?}");
    }

    #[test]
    fn an_unknown_top_level_key_is_refused_in_place() {
        let e = errors("listen: [{ address: \"127.0.0.1:1\" }]\ncolour: blue\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("p.yaml:2:9: unknown field `colour`, expected one of listen,"),
            "{e:?}"
        );
    }
}
