//! A fleet: N nodes that copy, decode and keep each image once between them.
//!
//! A request's life on a route with `fleet: { key }`:
//!
//! 1. A request that carries a hop mark ([`hop`]) came from a peer: if the mark verifies, the
//!    request is the client's as the peer saw it (address, TLS, public base URL) and is served
//!    here, never forwarded again; if it does not, the mark is dropped and counted, and the
//!    request is any client's.
//! 2. The route's filters run (a request refused at the edge never costs a hop).
//! 3. The route's key, rendered from the captures, picks the image's owner on a consistent-hash
//!    ring (Ketama, Pingora's) of this node and its healthy peers. This node: served here.
//! 4. Another node: the request goes to it as to an upstream, over Pingora's keep-alive pool,
//!    with a hop mark, and its answer is relayed as it comes (the owner ran the route's filters
//!    and keeps the answer in its response cache).
//! 5. The peers are a fixed list or every address of a DNS name (see `dns`), this node always
//!    among them.
//! 6. If the owner cannot be reached, or fails before answering, the request is served on this
//!    node (sent to itself, with the mark), counted as a fallback. A peer that fails its health
//!    checks (`/readyz` on its admin port) is out of the ring until it passes again, and its
//!    images have a new owner meanwhile. Alone, or with every peer down, a node serves
//!    everything.
//!
//! The ring is a [`Cluster`] like any other (its health loop, its metrics); what the fleet adds
//! is this node's place in it, the key per route and the mark.

mod dns;
pub mod hop;
mod metrics;
mod peer_admin;

pub(crate) use metrics::{init_metrics, Outcome, FLEET};

use crate::cluster::Cluster;
use crate::config::{
    AdminConfig, ClusterConfig, ConfigPath, FleetConfig, HealthCheckConfig, LoadBalancing, Protocol,
};
use hop::{Hop, Signer};
use pingora::http::RequestHeader;
use pingora_load_balancing::Backend;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The shortest secret accepted.
const MIN_SECRET: usize = 16;

/// How long a peer's admin listener has to answer a purge.
const PEER_ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// This node's fleet: the ring and the secret.
pub struct Fleet {
    /// The section as written, so that a reload with the same one keeps this fleet (and the
    /// health of its peers).
    config: FleetConfig,
    node: Backend,
    ring: Arc<Cluster>,
    signer: Signer,
    /// The peers' admin port (health checks, purges).
    admin_port: u16,
}

impl Fleet {
    /// Build the fleet of `config`, on a node whose first listener has `listen_port`; a
    /// problem is placed at the key it concerns.
    pub fn build(
        config: &FleetConfig,
        admin: Option<&AdminConfig>,
        listen_port: Option<u16>,
    ) -> Result<Self, (ConfigPath, String)> {
        let at = |key: &str| ConfigPath::root().key("fleet").key(key);
        let node = match (&config.node, listen_port) {
            (Some(node), _) => node.clone(),
            (None, Some(port)) => format!("${{POD_IP}}:{port}"),
            (None, None) => return Err((at("node"), "set node: this node has no listener".into())),
        };
        let node_addr = expand_env(&node).map_err(|e| {
            let key = if config.node.is_some() { "node" } else { "" };
            let path = if key.is_empty() {
                ConfigPath::root().key("fleet")
            } else {
                at(key)
            };
            (
                path,
                format!("{e} (fleet.node's default is \"${{POD_IP}}:PORT\")"),
            )
        })?;
        let node = Backend::new(&node_addr)
            .map_err(|e| (at("node"), format!("{node_addr:?} is not ip:port: {e}")))?;
        let secret = read_secret(config).map_err(|(key, e)| (at(key), e))?;
        let peers = &config.peers.fixed;
        if !peers.is_empty() && config.peers.dns.is_some() {
            return Err((at("peers"), "give static peers or dns, not both".into()));
        }
        let mut endpoints = vec![node_addr.clone()];
        for (i, peer) in peers.iter().enumerate() {
            let path = || at("peers").key("static").index(i);
            let peer = expand_env(peer).map_err(|e| (path(), e))?;
            let backend =
                Backend::new(&peer).map_err(|_| (path(), format!("{peer:?} is not ip:port")))?;
            if backend.addr != node.addr {
                endpoints.push(peer);
            }
        }
        let health = &config.health;
        let admin_port = admin
            .and_then(|a| a.address.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok());
        let Some(port) = health.port.or(admin_port) else {
            return Err((
                at("health"),
                "set health.port (the peers' admin port): this node has no admin listener".into(),
            ));
        };
        let ring = ClusterConfig {
            endpoints,
            load_balancing: LoadBalancing::ConsistentHash("fleet".into()),
            health_check: Some(HealthCheckConfig {
                interval: health.interval,
                path: Some(health.path.clone()),
                host: None,
                port: Some(port),
                timeout: health.timeout,
                healthy_threshold: 1,
                unhealthy_threshold: health.unhealthy_threshold.max(1),
            }),
            timeouts: config.timeouts.clone(),
            retries: 1,
            protocol: Protocol::Http,
            tls: config.tls.clone(),
        };
        let ring = match &config.peers.dns {
            None => Cluster::build("fleet", &ring).map_err(|e| {
                let key = if e.starts_with("tls.") {
                    "tls"
                } else {
                    "peers"
                };
                (at(key), e)
            })?,
            Some(dns) => {
                let at = |key: &str| at("peers").key("dns").key(key);
                let server = match dns.server.as_deref().map(str::parse) {
                    Some(Ok(addr)) => Some(addr),
                    Some(Err(_)) => return Err((at("server"), "must be ip:port".into())),
                    None => None,
                };
                let peers = dns::DnsPeers::new(&dns.name, dns.port, server, node.clone())
                    .map_err(|e| (at("name"), e))?;
                Cluster::discovered("fleet", &ring, Box::new(peers), dns.refresh.0)
                    .map_err(|e| (ConfigPath::root().key("fleet").key("tls"), e))?
            }
        };
        Ok(Self {
            config: config.clone(),
            node,
            ring: Arc::new(ring),
            signer: Signer::new(&secret),
            admin_port: port,
        })
    }

    /// Whether this fleet was built from `config` (a reload keeps it then).
    pub fn is_built_from(&self, config: &FleetConfig) -> bool {
        &self.config == config
    }

    /// The ring, as a cluster: requests to owners go upstream to it.
    pub fn ring(&self) -> &Arc<Cluster> {
        &self.ring
    }

    /// The owner of the image named `key`, if that is another node than this one.
    pub fn owner_elsewhere(&self, key: &[u8]) -> Option<Backend> {
        self.ring
            .select(key, &[])
            .filter(|b| b.addr != self.node.addr)
    }

    /// Pass an admin purge (its query string) on to every other node, each told to purge its
    /// own cache only: what each answered, by node.
    pub async fn purge_peers(&self, query: &str) -> Vec<(String, Result<String, String>)> {
        let path = format!("/cache/purge?{query}&scope=node");
        let peers = self.ring.endpoints().into_iter().map(|(b, _)| b);
        let asks = peers
            .filter(|b| !self.is_this_node(b))
            .filter_map(|b| b.addr.as_inet().copied())
            .map(|addr| {
                let admin = std::net::SocketAddr::new(addr.ip(), self.admin_port);
                let path = path.clone();
                async move {
                    let answer = peer_admin::post(admin, &path, PEER_ADMIN_TIMEOUT).await;
                    let answer = match answer {
                        Ok((200, body)) => Ok(body.trim().to_string()),
                        Ok((status, body)) => Err(format!("{status}: {}", body.trim())),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = &answer {
                        tracing::warn!(peer = %addr, error = %e, "a peer did not purge");
                    }
                    (addr.to_string(), answer)
                }
            });
        let mut answers = tokio::task::JoinSet::new();
        for ask in asks {
            answers.spawn(ask);
        }
        answers.join_all().await
    }

    /// Set the gauges of known and healthy nodes.
    pub fn count_nodes(&self) {
        let nodes = self.ring.endpoints();
        let healthy = nodes.iter().filter(|(_, up)| *up).count();
        FLEET
            .nodes
            .with_label_values(&["known"])
            .set(nodes.len() as i64);
        FLEET
            .nodes
            .with_label_values(&["healthy"])
            .set(healthy as i64);
    }

    /// This node, as it is in the ring.
    pub fn this_node(&self) -> &Backend {
        &self.node
    }

    /// Whether `backend` is this node.
    pub fn is_this_node(&self, backend: &Backend) -> bool {
        backend.addr == self.node.addr
    }

    /// Take the hop mark off `header`: what it says if it verifies, else `None` (and a mark
    /// that does not verify is counted).
    pub fn receive(&self, header: &mut RequestHeader) -> Option<Hop> {
        let mark = header.remove_header(hop::HEADER)?;
        let path = header.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let hop = mark
            .to_str()
            .ok()
            .and_then(|m| self.signer.verify(m, header.method.as_str(), path, now()));
        if hop.is_none() {
            FLEET.forged_marks.inc();
            tracing::warn!(
                path,
                "a request's fleet hop mark does not verify: served as a client's"
            );
        }
        hop
    }

    /// Mark `upstream` (a request going to its owner) with what this node knows of its client.
    pub fn mark(&self, upstream: &mut RequestHeader, hop: &Hop) {
        let path = upstream.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mark = self.signer.mark(hop, upstream.method.as_str(), path, now());
        let _ = upstream.insert_header(hop::HEADER, mark);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The secret from `secret_file` or `secret_env`, or the key at fault and why.
fn read_secret(config: &FleetConfig) -> Result<Vec<u8>, (&'static str, String)> {
    let (key, secret) = match (&config.secret_file, &config.secret_env) {
        (Some(file), None) => (
            "secret_file",
            std::fs::read(file).map_err(|e| ("secret_file", format!("cannot read {file}: {e}")))?,
        ),
        (None, Some(var)) => (
            "secret_env",
            std::env::var(var)
                .map_err(|_| ("secret_env", format!("the environment has no {var}")))?
                .into_bytes(),
        ),
        (Some(_), Some(_)) => {
            return Err((
                "secret_env",
                "set secret_file or secret_env, not both".into(),
            ))
        }
        (None, None) => {
            return Err((
                "secret_file",
                "the fleet needs a secret: set secret_file or secret_env".into(),
            ))
        }
    };
    let secret = secret.trim_ascii().to_vec();
    if secret.len() < MIN_SECRET {
        return Err((
            key,
            format!("the secret must be at least {MIN_SECRET} bytes"),
        ));
    }
    Ok(secret)
}

/// `text` with each `${VAR}` replaced by that environment variable.
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(format!("{text:?}: an unclosed ${{"));
        };
        let var = &rest[start + 2..start + end];
        out.push_str(
            &std::env::var(var).map_err(|_| format!("{text:?}: the environment has no {var}"))?,
        );
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
