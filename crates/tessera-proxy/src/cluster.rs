//! Clusters: named groups of upstream endpoints, a balancing policy, active health checks,
//! timeouts and the retry budget.
//!
//! Balancing and health state come from pingora-load-balancing. The health-check loop is ours
//! rather than pingora's background service because clusters come and go with config reloads:
//! each loop holds only a weak reference to its cluster and ends when the last config using the
//! cluster is gone. A reload that leaves a cluster's config unchanged keeps the same `Cluster`,
//! so health state survives it.

use crate::config::{ClusterConfig, HealthCheckConfig, LoadBalancing, Protocol, Timeouts};
use crate::metrics::registry;
use crate::template::Template;
use crate::upstream_tls::UpstreamTls;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora_load_balancing::discovery::ServiceDiscovery;
use pingora_load_balancing::health_check::{
    HealthCheck, HealthObserve, HttpHealthCheck, TcpHealthCheck,
};
use pingora_load_balancing::selection::{Consistent, Random, RoundRobin};
use pingora_load_balancing::{Backend, Backends, LoadBalancer};
use prometheus::{register_int_gauge_vec_with_registry, IntGaugeVec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::LazyLock;

/// How many candidates a selection looks at before giving up.
const MAX_SELECT_ITERATIONS: usize = 256;

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    Hash(LoadBalancer<Consistent>),
}

impl Balancer {
    fn select_with(&self, key: &[u8], accept: impl Fn(&Backend, bool) -> bool) -> Option<Backend> {
        match self {
            Balancer::RoundRobin(lb) => lb.select_with(key, MAX_SELECT_ITERATIONS, accept),
            Balancer::Random(lb) => lb.select_with(key, MAX_SELECT_ITERATIONS, accept),
            Balancer::Hash(lb) => lb.select_with(key, MAX_SELECT_ITERATIONS, accept),
        }
    }

    fn backends(&self) -> &Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        }
    }
}

/// A built cluster, shared by every route that uses it.
pub struct Cluster {
    name: String,
    config: ClusterConfig,
    balancer: Balancer,
    hash_key: Option<Template>,
    health_loop_started: AtomicBool,
    /// For endpoints found by a discovery (the fleet's DNS): how often to look again.
    refresh: Option<std::time::Duration>,
    discovery_started: AtomicBool,
    /// HTTPS to the endpoints.
    tls: Option<UpstreamTls>,
    /// Each endpoint's host as written (a name, or an address), for TLS.
    hosts: std::collections::HashMap<std::net::SocketAddr, String>,
    /// Set when a reload removed or rebuilt this cluster: its health loop stops and stops
    /// reporting, though requests that started on it may still be finishing.
    retired: Arc<AtomicBool>,
}

/// Logs health transitions as they happen and keeps the health gauge current.
struct HealthLogger {
    cluster: String,
    retired: Arc<AtomicBool>,
}

#[async_trait]
impl HealthObserve for HealthLogger {
    async fn observe(&self, target: &Backend, healthy: bool) {
        if self.retired.load(Ordering::SeqCst) {
            return;
        }
        let endpoint = target.addr.to_string();
        set_endpoint_health(&self.cluster, &endpoint, healthy);
        if healthy {
            tracing::info!(cluster = %self.cluster, endpoint = %endpoint, "endpoint is healthy again; back in rotation");
        } else {
            tracing::warn!(cluster = %self.cluster, endpoint = %endpoint, "endpoint failed its health check; taken out of rotation");
        }
    }
}

type BoxedCheck = Box<dyn HealthCheck + Send + Sync>;

/// A check of another port of each endpoint than the one it serves on (`health_check.port`).
struct OnPort {
    port: u16,
    inner: BoxedCheck,
}

#[async_trait]
impl HealthCheck for OnPort {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let mut there = target.clone();
        if let Some(inet) = target.addr.as_inet() {
            let addr = std::net::SocketAddr::new(inet.ip(), self.port);
            there.addr = pingora::protocols::l4::socket::SocketAddr::Inet(addr);
        }
        self.inner.check(&there).await
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.inner.health_status_change(target, healthy).await;
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.inner.health_threshold(success)
    }
}

fn health_check(
    cluster: &str,
    hc: &HealthCheckConfig,
    tls: Option<&UpstreamTls>,
    retired: &Arc<AtomicBool>,
) -> BoxedCheck {
    // A check on another port (an admin listener) is plain HTTP.
    let tls = tls.filter(|_| hc.port.is_none());
    let check = check_of_kind(cluster, hc, tls, retired);
    match hc.port {
        Some(port) => Box::new(OnPort { port, inner: check }),
        None => check,
    }
}

fn check_of_kind(
    cluster: &str,
    hc: &HealthCheckConfig,
    tls: Option<&UpstreamTls>,
    retired: &Arc<AtomicBool>,
) -> BoxedCheck {
    let observer = Box::new(HealthLogger {
        cluster: cluster.to_string(),
        retired: retired.clone(),
    });
    match &hc.path {
        Some(path) => {
            let host = hc.host.as_deref().unwrap_or("localhost");
            let mut check = HttpHealthCheck::new(host, tls.is_some());
            if let Some(tls) = tls {
                tls.apply(&mut check.peer_template, host);
            }
            if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) {
                let _ = req.insert_header("Host", host);
                let _ = req.insert_header("User-Agent", "tessera-health-check");
                check.req = req;
            }
            check.peer_template.options.connection_timeout = Some(hc.timeout.0);
            check.peer_template.options.read_timeout = Some(hc.timeout.0);
            check.consecutive_success = hc.healthy_threshold;
            check.consecutive_failure = hc.unhealthy_threshold;
            check.validator = Some(Box::new(|resp| {
                if resp.status.is_success() {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::Custom("health check status"),
                        format!("status {}", resp.status),
                    )
                }
            }));
            check.health_changed_callback = Some(observer);
            Box::new(check)
        }
        None => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(hc.timeout.0);
            check.consecutive_success = hc.healthy_threshold;
            check.consecutive_failure = hc.unhealthy_threshold;
            check.health_changed_callback = Some(observer);
            check
        }
    }
}

fn build_lb<S>(
    endpoints: &[String],
    hc: Option<&HealthCheckConfig>,
    tls: Option<&UpstreamTls>,
    name: &str,
    retired: &Arc<AtomicBool>,
) -> Result<LoadBalancer<S>, String>
where
    S: pingora_load_balancing::selection::BackendSelection + 'static,
    S::Iter: pingora_load_balancing::selection::BackendIter,
{
    let mut lb = LoadBalancer::<S>::try_from_iter(endpoints.iter().map(String::as_str))
        .map_err(|e| format!("cannot resolve endpoints: {e}"))?;
    if let Some(hc) = hc {
        lb.set_health_check(health_check(name, hc, tls, retired));
    }
    Ok(lb)
}

/// The cluster's TLS files, read; a problem names its key under `tls`.
fn load_tls(config: &ClusterConfig) -> Result<Option<UpstreamTls>, String> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    if config.protocol == Protocol::Fastcgi {
        return Err("a fastcgi cluster cannot speak TLS".into());
    }
    UpstreamTls::load(tls)
        .map(Some)
        .map_err(|(key, e)| format!("tls.{key}: {e}"))
}

/// The host each endpoint was written with, by the addresses it resolves to.
fn hosts_of(endpoints: &[String]) -> std::collections::HashMap<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let mut hosts = std::collections::HashMap::new();
    for ep in endpoints {
        let host = ep.rsplit_once(':').map_or(ep.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        for addr in ep.to_socket_addrs().into_iter().flatten() {
            hosts.insert(addr, host.to_string());
        }
    }
    hosts
}

impl Cluster {
    /// Build a cluster; endpoint names are resolved now.
    pub fn build(name: &str, config: &ClusterConfig) -> Result<Self, String> {
        if config.endpoints.is_empty() {
            return Err("a cluster needs at least one endpoint".into());
        }
        for ep in &config.endpoints {
            if ep
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(format!("endpoint {ep:?} must be host:port"));
            }
        }
        let hc = config.health_check.as_ref();
        if config.protocol == Protocol::Fastcgi && hc.is_some_and(|h| h.path.is_some()) {
            return Err(
                "a fastcgi cluster cannot have an HTTP health check: omit health_check.path for a TCP check".into(),
            );
        }
        if let Some(path) = hc.and_then(|h| h.path.as_deref()) {
            if !path.starts_with('/') || RequestHeader::build("GET", path.as_bytes(), None).is_err()
            {
                return Err(format!(
                    "health_check.path {path:?} must be a path starting with '/'"
                ));
            }
        }
        let tls = load_tls(config)?;
        let retired = Arc::new(AtomicBool::new(false));
        let (balancer, hash_key) = match &config.load_balancing {
            LoadBalancing::RoundRobin => (
                Balancer::RoundRobin(build_lb(
                    &config.endpoints,
                    hc,
                    tls.as_ref(),
                    name,
                    &retired,
                )?),
                None,
            ),
            LoadBalancing::Random => (
                Balancer::Random(build_lb(
                    &config.endpoints,
                    hc,
                    tls.as_ref(),
                    name,
                    &retired,
                )?),
                None,
            ),
            LoadBalancing::ConsistentHash(key) => {
                let key = Template::parse(key)?;
                (
                    Balancer::Hash(build_lb(
                        &config.endpoints,
                        hc,
                        tls.as_ref(),
                        name,
                        &retired,
                    )?),
                    Some(key),
                )
            }
        };
        Ok(Self {
            name: name.to_string(),
            config: config.clone(),
            balancer,
            hash_key,
            health_loop_started: AtomicBool::new(false),
            refresh: None,
            discovery_started: AtomicBool::new(false),
            // Resolved again only for TLS, which needs the names (the balancer keeps addresses).
            hosts: if tls.is_some() {
                hosts_of(&config.endpoints)
            } else {
                Default::default()
            },
            tls,
            retired,
        })
    }

    /// A consistent-hash cluster whose endpoints `discovery` finds, again every `refresh`
    /// (see [`Cluster::start_discovery`]); `config` gives its health check and timeouts.
    pub fn discovered(
        name: &str,
        config: &ClusterConfig,
        discovery: Box<dyn ServiceDiscovery + Send + Sync>,
        refresh: std::time::Duration,
    ) -> Result<Self, String> {
        let tls = load_tls(config)?;
        let retired = Arc::new(AtomicBool::new(false));
        let mut lb = LoadBalancer::<Consistent>::from_backends(Backends::new(discovery));
        if let Some(hc) = &config.health_check {
            lb.set_health_check(health_check(name, hc, tls.as_ref(), &retired));
        }
        Ok(Self {
            name: name.to_string(),
            config: config.clone(),
            balancer: Balancer::Hash(lb),
            hash_key: None,
            health_loop_started: AtomicBool::new(false),
            refresh: Some(refresh),
            discovery_started: AtomicBool::new(false),
            hosts: Default::default(),
            tls,
            retired,
        })
    }

    /// Look for the endpoints now, then every `refresh`, once per cluster; stops when the
    /// cluster is dropped or retired. Clusters with a fixed list have nothing to look for.
    /// Must be called from within a Tokio runtime.
    pub fn start_discovery(self: &Arc<Self>) {
        let Some(refresh) = self.refresh else {
            return;
        };
        if self.discovery_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(refresh).await;
                }
                let Some(cluster) = weak.upgrade() else {
                    break;
                };
                if cluster.retired.load(Ordering::SeqCst) {
                    break;
                }
                let _ = cluster.update().await;
            }
        });
    }

    async fn update(&self) -> pingora::Result<()> {
        match &self.balancer {
            Balancer::Hash(lb) => lb.update().await,
            Balancer::RoundRobin(lb) => lb.update().await,
            Balancer::Random(lb) => lb.update().await,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.config.timeouts
    }

    /// How many further endpoints to try when connecting fails.
    pub fn retries(&self) -> usize {
        self.config.retries
    }

    /// The consistent-hash key template, for clusters that hash.
    pub fn hash_key(&self) -> Option<&Template> {
        self.hash_key.as_ref()
    }

    /// Pick a healthy endpoint not in `exclude`.
    pub fn select(&self, key: &[u8], exclude: &[Backend]) -> Option<Backend> {
        let accept = |b: &Backend, healthy: bool| healthy && !exclude.contains(b);
        // One endpoint (a local IIPImage, most often): nothing to balance, and the balancer's
        // walk would make a set of the endpoints it has seen for every request.
        let backends = self.balancer.backends();
        let all = backends.get_backend();
        if all.len() == 1 {
            let only = all.first()?;
            return accept(only, backends.ready(only)).then(|| only.clone());
        }
        self.balancer.select_with(key, accept)
    }

    /// Every endpoint with its current health.
    pub fn endpoints(&self) -> Vec<(Backend, bool)> {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .map(|b| (b.clone(), backends.ready(b)))
            .collect()
    }

    /// The peer for one attempt at `backend`, with this cluster's timeouts.
    pub fn peer(&self, backend: &Backend) -> Option<HttpPeer> {
        let addr = *backend.addr.as_inet()?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        if let Some(tls) = &self.tls {
            let ip = addr.ip().to_string();
            tls.apply(&mut peer, self.hosts.get(&addr).unwrap_or(&ip));
        }
        let t = &self.config.timeouts;
        peer.options.connection_timeout = Some(t.connect.0);
        peer.options.read_timeout = Some(t.read.0);
        peer.options.write_timeout = Some(t.write.0);
        peer.options.idle_timeout = Some(t.idle.0);
        Some(peer)
    }

    /// Drop this cluster's health series (it was removed or rebuilt by a reload).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        for (b, _) in self.endpoints() {
            forget_endpoint_health(&self.name, &b.addr.to_string());
        }
    }

    /// Start the health-check loop, once; it stops when the cluster is dropped.
    /// Must be called from within a Tokio runtime.
    pub fn start_health_checks(self: &Arc<Self>) {
        let Some(hc) = &self.config.health_check else {
            return;
        };
        if self.health_loop_started.swap(true, Ordering::SeqCst) {
            return;
        }
        for (b, healthy) in self.endpoints() {
            set_endpoint_health(&self.name, &b.addr.to_string(), healthy);
        }
        let interval = hc.interval.0;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cluster) = weak.upgrade() else {
                    break;
                };
                if cluster.retired.load(Ordering::SeqCst) {
                    break;
                }
                cluster.balancer.backends().run_health_check(true).await;
                drop(cluster);
                tokio::time::sleep(interval).await;
            }
        });
    }
}

static UPSTREAM_HEALTHY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec_with_registry!(
        "tessera_upstream_healthy",
        "1 if the endpoint passes its health checks, else 0 (clusters with health checks only).",
        &["cluster", "endpoint"],
        registry()
    )
    .expect("metric registers")
});

fn set_endpoint_health(cluster: &str, endpoint: &str, healthy: bool) {
    UPSTREAM_HEALTHY
        .with_label_values(&[cluster, endpoint])
        .set(i64::from(healthy));
}

fn forget_endpoint_health(cluster: &str, endpoint: &str) {
    let _ = UPSTREAM_HEALTHY.remove_label_values(&[cluster, endpoint]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(endpoints: &str) -> Cluster {
        let config: ClusterConfig =
            serde_yaml_ng::from_str(&format!("endpoints: [{endpoints}]")).expect("parses");
        Cluster::build("c", &config).expect("builds")
    }

    #[test]
    fn one_endpoint_is_chosen_unless_excluded() {
        let c = cluster("\"127.0.0.1:1\"");
        let only = c.select(b"", &[]).expect("chosen");
        assert_eq!(only.addr.to_string(), "127.0.0.1:1");
        assert_eq!(c.select(b"", &[only]), None);
    }

    #[test]
    fn several_endpoints_are_balanced_and_excluded_ones_skipped() {
        let c = cluster("\"127.0.0.1:1\", \"127.0.0.1:2\"");
        let chosen: std::collections::BTreeSet<String> = (0..4)
            .map(|_| c.select(b"", &[]).expect("chosen").addr.to_string())
            .collect();
        assert_eq!(chosen.len(), 2, "{chosen:?}");
        let first = c.select(b"", &[]).expect("chosen");
        for _ in 0..4 {
            assert_ne!(
                c.select(b"", std::slice::from_ref(&first)),
                Some(first.clone())
            );
        }
    }
}
