//! A [`Runtime`] is one validated, built configuration: clusters, the route table with its
//! filters and handlers. The service holds the current one behind an `ArcSwap`; each request
//! takes a reference when it starts, so a reload never changes a request midway.

use crate::cluster::Cluster;
use crate::config::{Config, ConfigError, ConfigErrors, ConfigPath, Source};
use crate::imaging::IndexStore;
use crate::metrics::RouteMetrics;
use crate::plugin::{BuildContext, BuildError, Registry};
use crate::response_cache::{ResponseCache, RouteCache};
use crate::route::{Route, RouteMatcher, RouteTable};
use crate::storage::{build_origin, HotCacheSlot};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use tessera_origin::Origin;

pub struct Runtime {
    pub config: Config,
    pub routes: RouteTable,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    pub origins: BTreeMap<String, Arc<dyn Origin>>,
    /// The process's hot cache, carried over from the previous runtime on reload.
    pub hot_cache: Option<Arc<HotCacheSlot>>,
    /// JP2 header indexes, kept while `image_index:` is unchanged.
    pub image_index: Arc<IndexStore>,
    /// Kept answers of routes with `cache:`, kept while `response_cache:` is unchanged.
    pub response_cache: Arc<ResponseCache>,
    /// Metrics of requests no route matched.
    pub(crate) no_route_metrics: RouteMetrics,
}

impl Runtime {
    /// Check and build `config`. Every problem found is reported, each at its place in `source`.
    /// Clusters whose config is unchanged from `previous` are reused, keeping their health state.
    pub fn build(
        config: Config,
        source: &Source,
        registry: &Registry,
        previous: Option<&Runtime>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors: Vec<ConfigError> = Vec::new();
        let root = ConfigPath::root();

        check_listeners(&config, source, &mut errors);

        let mut clusters = BTreeMap::new();
        for (name, cc) in &config.clusters {
            let path = root.key("clusters").key(name.clone());
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
                Err(e) => errors.push(source.error_at(&path, format!("cluster {name:?}: {e}"))),
            }
        }

        let mut origins: BTreeMap<String, Arc<dyn Origin>> = BTreeMap::new();
        for (name, oc) in &config.origins {
            if let Some(prev) = previous {
                if prev.config.origins.get(name) == Some(oc) {
                    if let Some(o) = prev.origins.get(name) {
                        origins.insert(name.clone(), o.clone());
                        continue;
                    }
                }
            }
            match build_origin(oc) {
                Ok(o) => {
                    origins.insert(name.clone(), o);
                }
                Err(e) => errors.push(source.error_at(
                    &root.key("origins").key(name.clone()),
                    format!("origin {name:?}: {e}"),
                )),
            }
        }

        let hot_cache = match (
            &config.hot_cache,
            previous.and_then(|p| p.hot_cache.as_ref()),
        ) {
            // The cache owns its directory for the life of the process: a reload keeps it.
            (_, Some(old)) => Some(old.clone()),
            (Some(_), None) if previous.is_some() => {
                errors.push(source.error_at(
                    &root.key("hot_cache"),
                    "a hot cache cannot be added by a reload (it must be opened before serving); restart Tessera",
                ));
                None
            }
            (Some(hc), None) => match HotCacheSlot::new(hc) {
                Ok(slot) => Some(Arc::new(slot)),
                Err(e) => {
                    errors.push(source.error_at(&root.key("hot_cache"), e));
                    None
                }
            },
            (None, None) => None,
        };

        let image_index = match previous {
            Some(p) if p.config.image_index == config.image_index => p.image_index.clone(),
            _ => Arc::new(IndexStore::new(
                config.image_index.memory.0,
                config.image_index.dir.as_ref().map(Into::into),
                config.image_index.first_read.0,
                config.image_index.beside_image,
            )),
        };
        let response_cache = match previous {
            Some(p) if p.config.response_cache == config.response_cache => p.response_cache.clone(),
            _ => Arc::new(ResponseCache::new(config.response_cache.clone())),
        };
        let route_names: std::collections::BTreeSet<String> =
            config.routes.iter().map(|r| r.name.clone()).collect();
        let mut routes = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, rc) in config.routes.iter().enumerate() {
            let rpath = root.key("routes").index(i);
            if let Some(first) = seen.insert(&rc.name, i) {
                let at = source.error_at(&root.key("routes").index(first).key("name"), "");
                let line = at.position.map(|p| p.line).unwrap_or(0);
                errors.push(source.error_at(
                    &rpath.key("name"),
                    format!(
                        "duplicate route name {:?} (first defined on line {line})",
                        rc.name
                    ),
                ));
            }
            let matcher = match RouteMatcher::build(&rc.match_) {
                Ok(m) => m,
                Err((p, e)) => {
                    errors.push(source.error_at(&rpath.key("match").join(&p), e));
                    continue;
                }
            };
            let captures = matcher.capture_names();
            let ctx = BuildContext {
                route: &rc.name,
                captures: &captures,
                clusters: &clusters,
                origins: &origins,
                route_names: &route_names,
                hot_cache: hot_cache.as_ref(),
                image_index: &image_index,
            };

            let mut filters = Vec::new();
            for (j, spec) in rc.filters.iter().enumerate() {
                let fpath = rpath.key("filters").index(j);
                let Some(factory) = registry.filters.get(&spec.name) else {
                    errors.push(source.error_at(
                        &fpath,
                        format!(
                            "unknown filter {:?} (known: {})",
                            spec.name,
                            registry.filter_names().join(", ")
                        ),
                    ));
                    continue;
                };
                match factory.build(spec.config.clone(), &ctx) {
                    Ok(f) => filters.push(f),
                    Err(e) => errors.push(plugin_error(
                        source,
                        &fpath,
                        &spec.name,
                        &spec.config,
                        "filter",
                        e,
                    )),
                }
            }

            let hpath = rpath.key("handler");
            let handler = match registry.handlers.get(&rc.handler.name) {
                None => {
                    errors.push(source.error_at(
                        &hpath,
                        format!(
                            "unknown handler {:?} (known: {})",
                            rc.handler.name,
                            registry.handler_names().join(", ")
                        ),
                    ));
                    continue;
                }
                Some(factory) => match factory.build(rc.handler.config.clone(), &ctx) {
                    Ok(h) => h,
                    Err(e) => {
                        errors.push(plugin_error(
                            source,
                            &hpath,
                            &rc.handler.name,
                            &rc.handler.config,
                            "handler",
                            e,
                        ));
                        continue;
                    }
                },
            };
            routes.push(Arc::new(Route {
                name: rc.name.clone(),
                matcher,
                filters,
                handler,
                cache: rc.cache.clone().map(|c| RouteCache::new(rc, c)),
                metrics: RouteMetrics::new(&rc.name),
            }));
        }

        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Self {
            config,
            routes: RouteTable::new(routes),
            clusters,
            origins,
            hot_cache,
            image_index,
            response_cache,
            no_route_metrics: RouteMetrics::new(crate::service::NO_ROUTE),
        })
    }

    /// Start health checks of clusters that have none running yet. Needs a Tokio runtime.
    pub fn start_background_tasks(&self) {
        for c in self.clusters.values() {
            c.start_health_checks();
        }
    }
}

/// Place a plugin's error: inside its config when it has one, else at the bare name.
fn plugin_error(
    source: &Source,
    at: &ConfigPath,
    name: &str,
    config: &serde_yaml_ng::Value,
    kind: &str,
    e: BuildError,
) -> ConfigError {
    let base = if config.is_null() {
        at.clone()
    } else {
        at.key(name)
    };
    source.error_at(
        &base.join(&e.path),
        format!("{kind} {name:?}: {}", e.message),
    )
}

fn check_listeners(config: &Config, source: &Source, errors: &mut Vec<ConfigError>) {
    let root = ConfigPath::root();
    if config.listen.is_empty() {
        errors.push(source.error_at(&root.key("listen"), "at least one listener is needed"));
    }
    for (i, l) in config.listen.iter().enumerate() {
        let path = root.key("listen").index(i);
        if l.address.parse::<SocketAddr>().is_err() {
            errors.push(source.error_at(
                &path.key("address"),
                format!("{:?} is not an ip:port address", l.address),
            ));
        }
        if let Some(tls) = &l.tls {
            for (key, file) in [("cert", &tls.cert), ("key", &tls.key)] {
                if let Err(e) = std::fs::metadata(file) {
                    errors.push(source.error_at(
                        &path.key("tls").key(key),
                        format!("cannot read {file:?}: {e}"),
                    ));
                }
            }
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
        errors.push(source.error_at(
            &root.key("listen"),
            "h2c must be the same on every cleartext listener",
        ));
    }
    if let Some(admin) = &config.admin {
        if admin.address.parse::<SocketAddr>().is_err() {
            errors.push(source.error_at(
                &root.key("admin").key("address"),
                format!("{:?} is not an ip:port address", admin.address),
            ));
        }
    }
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
    fn orchestrate_needs_an_origin_a_hot_cache_and_local_path() {
        let yaml = "clusters:\n  iip: { endpoints: [\"127.0.0.1:1\"], protocol: fastcgi }\nroutes:\n  - name: t\n    match: { path: \"/i/{id}/{iiif*}\" }\n    handler: { orchestrate: { origin: nope, key: \"{id}\", cluster: iip, upstream_path: \"/x?IIIF={iiif}\" } }\n";
        let e = errors(yaml);
        assert!(
            e.iter()
                .any(|l| l.contains("unknown origin \"nope\" (defined: none)")),
            "{e:?}"
        );

        let dir = tempfile_dir();
        let yaml = format!("origins:\n  local: {{ dir: \"{dir}\" }}\nclusters:\n  iip: {{ endpoints: [\"127.0.0.1:1\"], protocol: fastcgi }}\nroutes:\n  - name: t\n    match: {{ path: \"/i/{{id}}/{{iiif*}}\" }}\n    handler: {{ orchestrate: {{ origin: local, key: \"{{id}}\", cluster: iip, upstream_path: \"/x?IIIF={{iiif}}\" }} }}\n");
        let e = errors(&yaml);
        assert!(
            e.iter()
                .any(|l| l.contains("needs a top-level `hot_cache:`")),
            "{e:?}"
        );

        let yaml = format!("{yaml}hot_cache: {{ dir: \"{dir}/cache\", capacity: 1GiB }}\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("upstream_path must use {local_path}"),
            "{e:?}"
        );

        let ok = yaml.replace("IIIF={iiif}", "IIIF={local_path}/{iiif}");
        assert_eq!(errors(&ok), Vec::<String>::new());
        // Checking a config never touches the cache directory.
        assert!(!std::path::Path::new(&format!("{dir}/cache")).exists());
    }

    #[test]
    fn origin_and_hot_cache_problems() {
        let yaml = "origins:\n  a: { dir: \"/no/such/dir\" }\n  b: {}\n  c: { dir: \"/\", s3: { bucket: x } }\nhot_cache: { dir: \"/tmp/x\", capacity: 1GiB, high_watermark: 50%, low_watermark: 60% }\nclusters:\n  f: { endpoints: [\"127.0.0.1:1\"], protocol: fastcgi, health_check: { path: \"/\" } }\n";
        let e = errors(yaml);
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(
            e[1].starts_with("p.yaml:2:8: origin \"a\": cannot read dir \"/no/such/dir\""),
            "{e:?}"
        );
        assert!(
            e[2].starts_with(
                "p.yaml:3:6: origin \"b\": an origin needs exactly one of `s3` or `dir`"
            ),
            "{e:?}"
        );
        assert!(
            e[3].starts_with("p.yaml:4:8: origin \"c\": an origin needs exactly one"),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.contains("fastcgi cluster cannot have an HTTP health check")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.contains("low_watermark must not be above")),
            "{e:?}"
        );
    }

    #[test]
    fn a_reload_cannot_add_a_hot_cache() {
        let registry = Builder::with_builtins();
        let (config, source) = load_str("p.yaml", "routes: []\n").unwrap();
        let first = Runtime::build(config, &source, registry.registry(), None).unwrap();
        let yaml = format!(
            "hot_cache: {{ dir: \"{}/c\", capacity: 1GiB }}\n",
            tempfile_dir()
        );
        let (config, source) = load_str("p.yaml", &yaml).unwrap();
        let e = Runtime::build(config, &source, registry.registry(), Some(&first))
            .err()
            .expect("refused");
        assert!(
            e.0[0].to_string().contains("cannot be added by a reload"),
            "{e}"
        );
    }

    #[test]
    fn hot_cache_dir_must_be_plain() {
        for dir in ["/var/cache/with space", "/var/cache/100%", "a?b"] {
            let yaml = format!("hot_cache: {{ dir: \"{dir}\", capacity: 1GiB }}\n");
            let e = errors(&yaml);
            assert!(
                e.iter().any(|l| l.contains("must be a path of letters")),
                "{dir}: {e:?}"
            );
        }
    }

    fn tempfile_dir() -> String {
        let dir = std::env::temp_dir().join(format!("tessera-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.display().to_string()
    }

    #[test]
    fn mixed_h2c_listeners_are_refused() {
        let yaml =
            "listen: [{ address: \"127.0.0.1:1\", h2c: true }, { address: \"127.0.0.1:2\" }]\n";
        let e = errors(yaml);
        assert!(e[0].contains("h2c must be the same"), "{e:?}");
    }
}
