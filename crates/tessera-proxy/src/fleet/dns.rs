//! Peers from DNS: every A and AAAA record of one name (a Kubernetes headless Service has one
//! per ready pod), each at the fleet's port, resolved again every `refresh`.
//!
//! This node is always in the ring. Until the name first resolves the ring is this node
//! alone, so a fleet whose DNS fails works as a single node; once it has resolved, a failed
//! lookup keeps the ring as it was (a DNS hiccup must not move every image). Each change of the
//! ring is logged. The resolver is hickory's, with the system's configuration or one given
//! server (`peers.dns.server`), and no cache of its own: the ring follows the records' changes
//! at the next refresh, whatever their TTL.

use async_trait::async_trait;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use pingora_load_balancing::discovery::ServiceDiscovery;
use pingora_load_balancing::Backend;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;

/// The peers a DNS name gives.
pub struct DnsPeers {
    name: String,
    port: u16,
    node: Backend,
    resolver: TokioResolver,
    /// What the last lookup that succeeded gave; empty before the first.
    last: Mutex<BTreeSet<Backend>>,
}

impl DnsPeers {
    /// `server`: a DNS server's `ip:port` to ask instead of the system's.
    pub fn new(
        name: &str,
        port: u16,
        server: Option<SocketAddr>,
        node: Backend,
    ) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let config = ResolverConfig::from_parts(None, vec![], vec![server]);
                TokioResolver::builder_with_config(config, provider)
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        builder.options_mut().cache_size = 0;
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            name: name.to_string(),
            port,
            node,
            resolver,
            last: Mutex::new(BTreeSet::new()),
        })
    }

    fn backend(&self, addr: SocketAddr) -> Backend {
        Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
            weight: 1,
            ext: Default::default(),
        }
    }
}

#[async_trait]
impl ServiceDiscovery for DnsPeers {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let found = self.resolver.lookup_ip(self.name.as_str()).await;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let ring = match found {
            Ok(ips) => {
                let mut ring: BTreeSet<Backend> = ips
                    .iter()
                    .map(|ip| self.backend(SocketAddr::new(ip, self.port)))
                    .collect();
                ring.insert(self.node.clone());
                ring
            }
            Err(e) if last.is_empty() => {
                tracing::warn!(name = %self.name, error = %e, "the fleet's peers cannot be resolved: serving alone until they can");
                BTreeSet::from([self.node.clone()])
            }
            Err(e) => {
                tracing::warn!(name = %self.name, error = %e, "the fleet's peers cannot be resolved: keeping the ring as it is");
                return pingora::Error::e_explain(
                    pingora::ErrorType::Custom("fleet DNS"),
                    e.to_string(),
                );
            }
        };
        if *last != ring {
            let names = |set: &BTreeSet<Backend>| -> Vec<String> {
                set.iter().map(|b| b.addr.to_string()).collect()
            };
            let joined: BTreeSet<_> = ring.difference(&last).cloned().collect();
            let left: BTreeSet<_> = last.difference(&ring).cloned().collect();
            tracing::info!(
                name = %self.name,
                nodes = ring.len(),
                joined = ?names(&joined),
                left = ?names(&left),
                "the fleet's ring changed"
            );
            *last = ring.clone();
        }
        Ok((ring, HashMap::new()))
    }
}
