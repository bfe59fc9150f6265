//! `proxy.yaml`: the structs are the schema.
//!
//! Every struct here denies unknown keys, and `tessera schema` prints the JSON Schema derived
//! from these same structs, so the schema cannot drift from the code. Filter and handler
//! configurations are plugin-defined: they are kept as YAML values here ([`PluginSpec`]) and
//! deserialised by the factory registered under their name, which also contributes their schema.
//! So are the top-level sections of shared resources (`origins:`, `hot_cache:` of the image
//! application): kept in [`Config::sections`], parsed by the resource factory registered under
//! the section's name; a top-level key that neither the engine nor a resource knows is an error.

mod fleet;
mod load;
mod locate;
mod plugin_spec;
mod response_cache;
mod traces;
mod units;

pub use fleet::{DnsPeersConfig, FleetConfig, FleetHealthConfig, PeersConfig, RouteFleetConfig};
pub use load::{load_file, load_str, read_file, ConfigError, ConfigErrors, Source};
pub use locate::{ConfigPath, Locator, PathSeg, Position};
pub use plugin_spec::PluginSpec;
pub use response_cache::{ResponseCacheConfig, RouteCacheConfig};
pub use traces::TracesConfig;
pub use units::{ByteSize, Dur, RatePerWindow, Share};

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration file. Unlike every struct below it, it accepts keys it does not
/// know: those are kept in `sections`, and the runtime refuses any no resource reads.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
pub struct Config {
    /// Where the proxy accepts requests. Changing listeners needs a restart.
    #[serde(default = "default_listen")]
    pub listen: Vec<ListenerConfig>,
    /// The admin listener: `/metrics`, `/healthz`, `/readyz`. Omit to run without one.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Process-wide settings. Changing them needs a restart.
    #[serde(default)]
    pub server: ServerSettings,
    /// Limits applied to every request before routing.
    #[serde(default)]
    pub limits: Limits,
    /// Write one JSON access-log line per request.
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Add an `x-proxy-destination` response header naming the route and upstream endpoint.
    #[serde(default)]
    pub debug_headers: bool,
    /// The URL clients reach this server at (`https://iiif.example.org`, perhaps with a path
    /// prefix), for the URLs answers carry: info.json ids, redirects. Default: each request's
    /// own scheme and Host (or what a trusted proxy says of them).
    #[serde(default)]
    pub public_url: Option<String>,
    /// Addresses or networks (`10.0.0.0/8`) of the proxies in front of Tessera, whose
    /// `Forwarded` / `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The memory of the response cache, which routes with `cache:` use.
    #[serde(default)]
    pub response_cache: ResponseCacheConfig,
    /// Named groups of upstream endpoints.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// The nodes this one shares images with: each image has one owner among them.
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
    /// The route table: the first route that matches a request answers it.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The other top-level sections, by name, unparsed: each is a registered resource's
    /// configuration (see [`crate::plugin::resources`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub sections: BTreeMap<String, serde_yaml_ng::Value>,
}

/// The top-level keys [`Config`] reads, in the order it declares them (for messages about a
/// key nobody reads; a test keeps the list equal to the struct's fields).
pub const ENGINE_KEYS: &[&str] = &[
    "listen",
    "admin",
    "server",
    "limits",
    "access_log",
    "debug_headers",
    "public_url",
    "trusted_proxies",
    "response_cache",
    "clusters",
    "fleet",
    "routes",
];

fn yes() -> bool {
    true
}

fn default_listen() -> Vec<ListenerConfig> {
    vec![ListenerConfig::plain("0.0.0.0:8080")]
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `ip:port` to bind.
    pub address: String,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with these PEM files.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Accept cleartext HTTP/2 (prior knowledge) as well as HTTP/1.1.
    #[serde(default)]
    pub h2c: bool,
    /// Read buffer of each accepted connection, under the HTTP parser (which has its own
    /// header buffer). `0` reads straight from the socket; Pingora's default is 64 KiB, which
    /// a flood of idle connections multiplies.
    #[serde(default = "default_read_buffer")]
    pub read_buffer: ByteSize,
}

impl ListenerConfig {
    /// Plain HTTP/1.1 on `address`, everything else at its default.
    pub fn plain(address: &str) -> Self {
        Self {
            address: address.to_string(),
            tls: None,
            h2c: false,
            read_buffer: default_read_buffer(),
        }
    }
}

fn default_read_buffer() -> ByteSize {
    ByteSize(0)
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: String,
    /// Private key, PEM.
    pub key: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `ip:port` of the admin listener. Keep it private.
    pub address: String,
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Worker threads of the proxy service; default: the number of CPUs.
    #[serde(default)]
    pub threads: Option<usize>,
    /// On SIGTERM, how long in-flight requests may run before the process exits.
    #[serde(default = "default_grace")]
    pub shutdown_grace: Dur,
    /// Idle upstream connections kept for reuse, per process.
    #[serde(default = "default_pool")]
    pub upstream_keepalive_pool: usize,
    /// Also reload when the config file's content changes, checking at this interval.
    #[serde(default)]
    pub watch_config: Option<Dur>,
    /// The Unix socket over which a new process (`tessera run --upgrade`) takes the listening
    /// sockets from this one when it gets SIGQUIT; one per instance on a machine.
    #[serde(default = "default_upgrade_sock")]
    pub upgrade_sock: String,
    /// Export OpenTelemetry traces: a span per request and per phase of its work. Off without it.
    #[serde(default)]
    pub traces: Option<TracesConfig>,
}

fn default_upgrade_sock() -> String {
    "/tmp/tessera-upgrade.sock".into()
}

fn default_grace() -> Dur {
    Dur::secs(5)
}

fn default_pool() -> usize {
    128
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            threads: None,
            shutdown_grace: default_grace(),
            upstream_keepalive_pool: default_pool(),
            watch_config: None,
            upgrade_sock: default_upgrade_sock(),
            traces: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request line plus headers, in bytes; larger requests get 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_request_header_bytes: usize,
    /// How long a request's header may take to arrive, whole: from the connection's start, or
    /// from the previous answer on a kept-alive connection. Then the connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: Dur,
    /// Client connections served at once. At the limit, the connection that has waited longest
    /// for a request header is closed to make room; if none is waiting, the new one gets a
    /// short 503. Read at start.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Client connections served at once from one address. Default: no limit (behind a load
    /// balancer every connection comes from its address). Read at start.
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
}

fn default_max_header_bytes() -> usize {
    32 * 1024
}

fn default_header_timeout() -> Dur {
    Dur::secs(20)
}

fn default_max_connections() -> usize {
    5_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_header_bytes: default_max_header_bytes(),
            header_timeout: default_header_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: None,
        }
    }
}

/// HTTPS to upstream endpoints (or to the fleet's peers).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// CA certificates (a PEM file) the endpoints' certificates must chain to; default: the
    /// system's roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// The name sent (SNI) and checked against the certificate; default: the endpoint's host
    /// (an IP address is checked against the certificate's IP addresses).
    #[serde(default)]
    pub sni: Option<String>,
    /// A client certificate chain (PEM), for endpoints that ask for one; with `key`.
    #[serde(default)]
    pub cert: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default)]
    pub key: Option<String>,
}

/// A group of upstream endpoints with one balancing policy.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `host:port` of each endpoint; names are resolved when the config is loaded.
    pub endpoints: Vec<String>,
    /// How a request picks an endpoint.
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    /// Active health checking; without it every endpoint counts as healthy.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// When connecting to an endpoint fails, try this many other endpoints.
    #[serde(default = "default_retries")]
    pub retries: usize,
    /// How to talk to the endpoints: `http`, or `fastcgi` (straight to iipsrv, no web server
    /// in between).
    #[serde(default)]
    pub protocol: Protocol,
    /// Speak HTTPS to the endpoints (rustls).
    #[serde(default)]
    pub tls: Option<UpstreamTlsConfig>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 through Pingora's proxy, with connection reuse.
    #[default]
    Http,
    /// FastCGI, one connection per request (iipsrv serves one connection at a time).
    Fastcgi,
}

fn default_retries() -> usize {
    1
}

/// Written `round_robin`, `random`, or `{ consistent_hash: "{template}" }`.
#[derive(Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancing {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// A random endpoint.
    Random,
    /// Ketama consistent hashing on a key rendered from the route's captures, e.g. `"{image}"`:
    /// the same key goes to the same endpoint while it is healthy.
    ConsistentHash(String),
}

impl<'de> Deserialize<'de> for LoadBalancing {
    // serde_yaml would want `!consistent_hash` tags for enum variants; we accept the plain
    // one-key-map form that the rest of the file uses.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let expected = "expected round_robin, random or { consistent_hash: \"{capture}\" }";
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(s) if s == "round_robin" => Ok(Self::RoundRobin),
            serde_yaml_ng::Value::String(s) if s == "random" => Ok(Self::Random),
            serde_yaml_ng::Value::Mapping(m) if m.len() == 1 => match m.into_iter().next() {
                Some((serde_yaml_ng::Value::String(k), serde_yaml_ng::Value::String(v)))
                    if k == "consistent_hash" =>
                {
                    Ok(Self::ConsistentHash(v))
                }
                _ => Err(D::Error::custom(expected)),
            },
            _ => Err(D::Error::custom(expected)),
        }
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// Time between checks.
    #[serde(default = "default_hc_interval")]
    pub interval: Dur,
    /// HTTP check: GET this path and expect a 2xx. Without it the check is a TCP connect.
    #[serde(default)]
    pub path: Option<String>,
    /// Check this port of each endpoint instead of the one it serves on (a separate health
    /// or admin port).
    #[serde(default)]
    pub port: Option<u16>,
    /// Host header of the HTTP check; default: `localhost`.
    #[serde(default)]
    pub host: Option<String>,
    /// Time allowed for one check.
    #[serde(default = "default_hc_timeout")]
    pub timeout: Dur,
    /// Consecutive successes that bring an endpoint back.
    #[serde(default = "one")]
    pub healthy_threshold: usize,
    /// Consecutive failures that take an endpoint out.
    #[serde(default = "one")]
    pub unhealthy_threshold: usize,
}

fn default_hc_interval() -> Dur {
    Dur::secs(5)
}

fn default_hc_timeout() -> Dur {
    Dur::secs(1)
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    #[serde(default = "default_connect")]
    pub connect: Dur,
    /// Waiting for each read from the upstream (the response header, then each body chunk).
    #[serde(default = "default_read")]
    pub read: Dur,
    /// Waiting for each write to the upstream.
    #[serde(default = "default_read")]
    pub write: Dur,
    /// The whole upstream exchange, from choosing the endpoint to the last body byte.
    #[serde(default)]
    pub total: Option<Dur>,
    /// How long an idle upstream connection is kept for reuse. Keep it below the upstream's own
    /// keep-alive timeout.
    #[serde(default = "default_idle")]
    pub idle: Dur,
}

fn default_idle() -> Dur {
    Dur::secs(30)
}

fn default_connect() -> Dur {
    Dur::secs(2)
}

fn default_read() -> Dur {
    Dur::secs(30)
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            read: default_read(),
            write: default_read(),
            total: None,
            idle: default_idle(),
        }
    }
}

/// One entry of the route table.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// What a request must look like to take this route; every condition must hold.
    #[serde(rename = "match")]
    pub match_: MatchConfig,
    /// Filters applied in order: a name (`cors`) or a one-key map (`{ rate_limit: {...} }`).
    #[serde(default)]
    #[schemars(with = "Vec<plugin_spec::FilterSpecSchema>")]
    pub filters: Vec<PluginSpec>,
    /// What answers the request: a one-key map such as `{ proxy: { cluster: web } }`.
    #[schemars(with = "plugin_spec::HandlerSpecSchema")]
    pub handler: PluginSpec,
    /// Keep this route's answers in the response cache (`cache: {}` for the defaults).
    #[serde(default)]
    pub cache: Option<RouteCacheConfig>,
    /// This route's own public URL, instead of the top-level `public_url`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// In a fleet, send each request to the owner of its image (see `fleet:`).
    #[serde(default)]
    pub fleet: Option<RouteFleetConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Path pattern with `{name}` captures and an optional final `{name*}`; default: any path.
    #[serde(default)]
    pub path: Option<String>,
    /// Host names: exact (`iiif.example.org`) or a wildcard for subdomains (`*.example.org`).
    #[serde(default)]
    pub host: Vec<String>,
    /// Allowed methods, e.g. `[GET, HEAD]`; default: any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions by name: a string (equals) or `{ present: true|false }`.
    #[serde(default)]
    pub headers: BTreeMap<String, ValueCondition>,
    /// Query parameter conditions by name, as for headers.
    #[serde(default)]
    pub query: BTreeMap<String, ValueCondition>,
}

/// A condition on a header or query parameter.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum ValueCondition {
    /// The value equals this text.
    Equals(String),
    /// Presence or absence.
    Present { present: bool },
}

#[cfg(test)]
mod tests {
    #[test]
    fn engine_keys_are_the_fields_of_config() {
        let schema = schemars::schema_for!(super::Config).to_value();
        let mut fields: Vec<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = super::ENGINE_KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }
}
