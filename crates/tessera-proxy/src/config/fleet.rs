//! `fleet:` and a route's `fleet:`: the nodes that share the work of one image each.

use super::{Dur, Timeouts, UpstreamTlsConfig};
use schemars::JsonSchema;
use serde::Deserialize;

/// The fleet this node belongs to: every node in it sends the requests of an image to that
/// image's owner on a consistent-hash ring of the healthy nodes.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// This node as its peers reach it: `ip:port` of its listener. `${VAR}` is replaced with
    /// the environment variable. Default: `"${POD_IP}:PORT"`, PORT being the first listener's
    /// (as on Kubernetes, with the pod's IP in `POD_IP`).
    #[serde(default)]
    pub node: Option<String>,
    /// The other nodes (this one may be among them; it is always in the ring).
    pub peers: PeersConfig,
    /// A file holding the secret that signs requests between nodes (at least 16 bytes, the
    /// same on every node). One of `secret_file` and `secret_env` is required.
    #[serde(default)]
    pub secret_file: Option<String>,
    /// An environment variable holding that secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// How a peer's health is checked: its `/readyz` on its admin port.
    #[serde(default)]
    pub health: FleetHealthConfig,
    /// Timeouts of requests to peers.
    #[serde(default = "peer_timeouts")]
    pub timeouts: Timeouts,
    /// Speak HTTPS to peers (whose `node` address is then a TLS listener).
    #[serde(default)]
    pub tls: Option<UpstreamTlsConfig>,
}

/// Where the peers are.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// A fixed list of `ip:port`.
    #[serde(rename = "static", default)]
    pub fixed: Vec<String>,
    /// Or: every address a DNS name resolves to, found again every `refresh`.
    #[serde(default)]
    pub dns: Option<DnsPeersConfig>,
}

/// Peers from DNS (a Kubernetes headless Service).
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsPeersConfig {
    /// The name whose A and AAAA records are the nodes.
    pub name: String,
    /// The port the nodes listen on.
    pub port: u16,
    /// How often the name is resolved again.
    #[serde(default = "ten_seconds")]
    pub refresh: Dur,
    /// A DNS server (`ip:port`) to ask instead of the system's resolver.
    #[serde(default)]
    pub server: Option<String>,
}

fn ten_seconds() -> Dur {
    Dur::secs(10)
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetHealthConfig {
    /// The peers' admin port, where `/readyz` answers; default: this node's admin port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The path asked.
    #[serde(default = "readyz")]
    pub path: String,
    /// Time between checks.
    #[serde(default = "two_seconds")]
    pub interval: Dur,
    /// Time allowed for one check.
    #[serde(default = "one_second")]
    pub timeout: Dur,
    /// Consecutive failures that take a peer out of the ring.
    #[serde(default = "two")]
    pub unhealthy_threshold: usize,
}

impl Default for FleetHealthConfig {
    fn default() -> Self {
        Self {
            port: None,
            path: readyz(),
            interval: two_seconds(),
            timeout: one_second(),
            unhealthy_threshold: two(),
        }
    }
}

/// A route's part in the fleet.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFleetConfig {
    /// What names the image, from the route's captures (`"{customer}/{space}/{image}"`): every
    /// request with the same key, on whichever route, goes to the same owner.
    pub key: String,
}

fn readyz() -> String {
    "/readyz".into()
}
fn two_seconds() -> Dur {
    Dur::secs(2)
}
fn one_second() -> Dur {
    Dur::secs(1)
}
fn two() -> usize {
    2
}

/// Peers are near: a connect that takes long means the peer is gone.
fn peer_timeouts() -> Timeouts {
    Timeouts {
        connect: Dur::millis(500),
        ..Timeouts::default()
    }
}
