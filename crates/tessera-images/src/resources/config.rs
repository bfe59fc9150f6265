//! The image application's sections of `proxy.yaml`: `origins` (where images are read from),
//! `hot_cache` (the local working set IIPImage reads) and `image_index` (JP2 header indexes).

use schemars::JsonSchema;
use serde::Deserialize;
use tessera_proxy::config::{ByteSize, Dur, Share};

/// One origin: exactly one of `s3` or `dir`.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// An S3 bucket, or a bucket on an S3-compatible server.
    #[serde(default)]
    pub s3: Option<S3OriginConfig>,
    /// A local directory; keys are paths below it.
    #[serde(default)]
    pub dir: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3OriginConfig {
    pub bucket: String,
    /// Default: `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// URL of an S3-compatible server, e.g. `http://127.0.0.1:9000`. Default: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`endpoint/bucket/key`), as most S3-compatible servers
    /// need.
    #[serde(default)]
    pub path_style: bool,
    #[serde(default)]
    pub timeouts: S3Timeouts,
    /// Attempts per request, the first included (the SDK's standard retry strategy).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    3
}

#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct S3Timeouts {
    #[serde(default = "default_s3_connect")]
    pub connect: Dur,
    /// Longest wait for the next bytes of an answer: for its headers, and for every read of
    /// its body (a stall mid-body is a timeout too).
    #[serde(default = "default_s3_read")]
    pub read: Dur,
    /// The lowest average rate of a body, per second, once `min_rate_after` has passed since
    /// it began (`0` turns it off): an origin that trickles is a timeout, not a wait without
    /// end.
    #[serde(default = "default_min_rate")]
    pub min_rate: ByteSize,
    #[serde(default = "default_min_rate_after")]
    pub min_rate_after: Dur,
    /// Longest time for one whole request, retries included. Default: no limit, since copying
    /// a large image can take minutes.
    #[serde(default)]
    pub operation: Option<Dur>,
}

fn default_s3_connect() -> Dur {
    Dur::secs(3)
}

fn default_s3_read() -> Dur {
    Dur::secs(30)
}

fn default_min_rate() -> ByteSize {
    ByteSize(64 << 10)
}

fn default_min_rate_after() -> Dur {
    Dur::secs(10)
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            connect: default_s3_connect(),
            read: default_s3_read(),
            min_rate: default_min_rate(),
            min_rate_after: default_min_rate_after(),
            operation: None,
        }
    }
}

/// The hot cache. Changing it needs a restart.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HotCacheConfig {
    /// The cache's directory (`objects/` and `tmp/` are made inside). Use a local disk; it
    /// must be on one filesystem.
    pub dir: String,
    /// The disk budget, e.g. `50GiB`.
    pub capacity: ByteSize,
    /// Eviction starts when a copy would take use over this share of the capacity.
    #[serde(default = "default_high")]
    pub high_watermark: Share,
    /// Eviction stops at this share.
    #[serde(default = "default_low")]
    pub low_watermark: Share,
    /// Copies from origins running at once; further ones wait…
    #[serde(default = "default_copies")]
    pub max_concurrent_copies: usize,
    /// …at most this long for their turn; then every request waiting for that image gets 503.
    #[serde(default = "default_copy_wait")]
    pub max_copy_wait: Dur,
    #[serde(default)]
    pub parallel_copy: ParallelCopy,
    /// How long "no such object" is remembered for an identifier.
    #[serde(default = "default_not_found_ttl")]
    pub not_found_ttl: Dur,
    /// Uses of one image closer together than this count as one view when ranking images
    /// for eviction.
    #[serde(default = "default_reuse_gap")]
    pub reuse_gap: Dur,
    /// Largest share of the capacity kept for images viewed more than once.
    #[serde(default = "default_protected")]
    pub protected_share: Share,
}

/// Copy large objects as several ranged GETs at once.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ParallelCopy {
    /// Objects at least this large are copied in parts.
    #[serde(default = "default_threshold")]
    pub threshold: ByteSize,
    #[serde(default = "default_part")]
    pub part_size: ByteSize,
    /// Parts in flight at once for one object (1: never split).
    #[serde(default = "default_parts")]
    pub parts: usize,
}

impl Default for ParallelCopy {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            part_size: default_part(),
            parts: default_parts(),
        }
    }
}

fn default_high() -> Share {
    Share(0.9)
}
fn default_low() -> Share {
    Share(0.8)
}
fn default_copies() -> usize {
    16
}
fn default_copy_wait() -> Dur {
    Dur::secs(30)
}
fn default_not_found_ttl() -> Dur {
    Dur::secs(5)
}
fn default_reuse_gap() -> Dur {
    Dur::secs(60)
}
fn default_protected() -> Share {
    Share(0.8)
}
fn default_threshold() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_part() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_parts() -> usize {
    4
}

/// Where JP2 header indexes are kept (`byte_range` and `info` handlers).
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageIndexConfig {
    /// A directory to persist indexes in, so a restart does not read headers again. Default:
    /// memory only.
    #[serde(default)]
    pub dir: Option<String>,
    /// Memory for indexes.
    #[serde(default = "default_index_memory")]
    pub memory: ByteSize,
    /// Bytes read from the start of a file to find its header (more are read if needed).
    #[serde(default = "default_first_read")]
    pub first_read: ByteSize,
    /// Also keep each index as an object beside its image in the origin
    /// (`{key}.tessera-index.json`), so every Tessera of a fleet, and every restart, finds it.
    /// Needs write access to the origin.
    #[serde(default)]
    pub beside_image: bool,
    /// The largest image (width × height) whose header is admitted: larger ones answer 415
    /// before anything is fetched or decoded. A few kilobytes can declare 100000×100000.
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
    /// The most components (colour channels) an image may declare.
    #[serde(default = "default_max_components")]
    pub max_components: usize,
}

fn default_max_image_pixels() -> u64 {
    2_000_000_000
}
fn default_max_components() -> usize {
    4
}

fn default_index_memory() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_first_read() -> ByteSize {
    ByteSize(16 << 10)
}

impl Default for ImageIndexConfig {
    fn default() -> Self {
        Self {
            dir: None,
            memory: default_index_memory(),
            first_read: default_first_read(),
            beside_image: false,
            max_image_pixels: default_max_image_pixels(),
            max_components: default_max_components(),
        }
    }
}
