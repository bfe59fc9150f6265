//! `response_cache:` (the process's store of answers) and a route's `cache:` (whether and how
//! that route's answers are kept).

use super::units::{ByteSize, Dur};
use schemars::JsonSchema;
use serde::Deserialize;

/// The memory every cached route shares. Changing it empties the cache.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseCacheConfig {
    /// Memory for cached answers (bodies and headers); the least recently used go first.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Answers larger than this are served but not kept.
    #[serde(default = "default_max_object")]
    pub max_object_bytes: ByteSize,
    /// How long requests wait for another request fetching the same answer before they
    /// fetch it themselves.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: Dur,
}

fn default_memory() -> ByteSize {
    ByteSize(256 << 20)
}

fn default_max_object() -> ByteSize {
    ByteSize(8 << 20)
}

fn default_lock_timeout() -> Dur {
    Dur::secs(10)
}

impl Default for ResponseCacheConfig {
    fn default() -> Self {
        Self {
            memory: default_memory(),
            max_object_bytes: default_max_object(),
            lock_timeout: default_lock_timeout(),
        }
    }
}

/// A route's `cache:`: its answers are kept in the response cache.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// How long an answer stays fresh when its `Cache-Control` (or `Expires`) does not say.
    #[serde(default = "default_ttl")]
    pub default_ttl: Dur,
    /// How long after it goes stale an answer is kept to be served when fetching it again
    /// fails (unless its `Cache-Control` has `stale-if-error`).
    #[serde(default = "default_stale_if_error")]
    pub stale_if_error: Dur,
}

fn default_ttl() -> Dur {
    Dur::secs(3600)
}

fn default_stale_if_error() -> Dur {
    Dur::secs(300)
}
