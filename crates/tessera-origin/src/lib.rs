#![forbid(unsafe_code)]
//! Object stores behind one small trait.
//!
//! Tessera reads images from an *origin*: S3 (or any S3-compatible server) in production, a local
//! directory for the embedded default and for tests. Everything above this crate — the hot cache,
//! the byte-range reader — sees only [`Origin`]: the size of an object, its bytes as a stream
//! (whole or one range), and ranges read into memory. Keeping the trait this small is what lets
//! the hot cache be tested against a directory and run against S3 unchanged.
//!
//! Listing ([`Origin::list`]) is there for offline tools (building indexes ahead of traffic);
//! it has a default that refuses, so an origin that only serves reads need not implement it.
//!
//! Keys are built from request captures, so [`key`] validates them before any I/O: a key that
//! could escape the key space (`..`, an absolute path, NUL, percent-encoded traversal) is refused.

pub mod dir;
pub mod key;
pub mod pace;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The `tracing` target of this crate's `fetch` spans (one per request to S3), which Tessera
/// exports as a phase of a request's trace when `server.traces` is set. The same string as
/// `tessera_proxy::traces::PHASE` (this crate does not depend on the engine).
pub const TRACE_PHASE: &str = "tessera::phase";

pub use dir::DirOrigin;
pub use key::{decode_key_part, validate_key, KeyError};
pub use pace::{Pace, Paced};
pub use s3::{S3Origin, S3Settings, S3SetupError};

/// What an origin knows about an object without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Length in bytes.
    pub size: u64,
    /// A tag that changes when the object changes (S3's ETag; size and mtime for a directory).
    pub etag: Option<String>,
}

/// An object's bytes, read as they arrive.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// Why an origin could not answer.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("no such object")]
    NotFound,
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("origin unavailable: {0}")]
    Unavailable(String),
    #[error("the object changed while it was being read")]
    Changed,
}

impl OriginError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            OriginError::NotFound => "not_found",
            OriginError::Timeout(_) => "timeout",
            OriginError::Denied(_) => "denied",
            OriginError::Unavailable(_) => "unavailable",
            OriginError::Changed => "changed",
        }
    }
}

/// An object store.
#[async_trait]
pub trait Origin: Send + Sync + 'static {
    /// The size (and version tag) of the object at `key`.
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError>;

    /// The object's bytes: all of them, or the half-open byte range `range`. With `version`
    /// (an ETag from [`Origin::head`]), fails with [`OriginError::Changed`] if the object is no
    /// longer that version.
    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        version: Option<&str>,
    ) -> Result<ObjectReader, OriginError>;

    /// The whole object as it arrives, with its size and tag: one request where the origin can
    /// (S3's GET answers both), so an answer can be streamed with its length and ETag. The
    /// default asks [`Origin::head`], then reads that version.
    async fn open(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), OriginError> {
        let meta = self.head(key).await?;
        let reader = self.get(key, None, meta.etag.as_deref()).await?;
        Ok((meta, reader))
    }

    /// Read the half-open byte range `range` into memory. A range running past the end of the
    /// object is cut at the end.
    async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, OriginError> {
        let capacity = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
        let mut reader = self.get(key, Some(range), None).await?;
        let mut buf = Vec::with_capacity(capacity.min(64 << 20));
        reader
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io_error("reading a range", &e))?;
        Ok(Bytes::from(buf))
    }

    /// Every object key starting with `prefix` (a plain string prefix, as in S3: `a/` lists
    /// what is below `a/`, `a` also lists `ab/c`), sorted. Used by batch tools such as
    /// `tessera index`, never on a request path. Origins that cannot list answer
    /// [`OriginError::Unavailable`]; the default does, so test doubles need not implement it.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, OriginError> {
        let _ = prefix;
        Err(OriginError::Unavailable(
            "listing is not supported by this origin".into(),
        ))
    }

    /// Store a small object (e.g. an image's header index beside it). Origins that cannot
    /// write answer [`OriginError::Unavailable`]; the default does.
    async fn put(&self, key: &str, body: Bytes) -> Result<(), OriginError> {
        let _ = (key, body);
        Err(OriginError::Unavailable(
            "writing is not supported by this origin".into(),
        ))
    }

    /// Where this origin reads from, for logs: `s3://bucket`, `dir:/srv/images`.
    fn describe(&self) -> String;

    /// The folder on this machine whose files are the objects, each at its key, for an origin
    /// that is one (`dir`): a reader may then open a file in place instead of copying it (see
    /// [`local_path`]). `None`, the default, for remote stores.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
}

/// The file of `key` on this machine, if `origin` is a local folder and `key` is a valid key.
pub fn local_path(origin: &dyn Origin, key: &str) -> Option<std::path::PathBuf> {
    let root = origin.local_root()?;
    validate_key(key).ok()?;
    Some(root.join(key))
}

/// Map an I/O error while reading an object's body.
pub(crate) fn io_error(what: &str, e: &std::io::Error) -> OriginError {
    if e.kind() == std::io::ErrorKind::TimedOut {
        OriginError::Timeout(format!("{what}: {e}"))
    } else {
        OriginError::Unavailable(format!("{what}: {e}"))
    }
}
