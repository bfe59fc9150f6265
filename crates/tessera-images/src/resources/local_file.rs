//! An image as a file on this machine, for the handlers that decode it in process (`render`,
//! and `info` for masters that are not JPEG 2000).
//!
//! An image in a `dir` origin already is a local file: it is read in place, and nothing is
//! copied (so `tessera serve DIR` serves a folder without a second copy of it on disk). An
//! image anywhere else is copied into the hot cache first, once, and read from there while a
//! lease keeps the copy.

use super::{HotCacheSlot, LeaseError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_hotcache::{CopyError, Lease};
use tessera_origin::{Origin, OriginError};

/// The file an image is read from; keep it while reading.
pub enum LocalFile {
    /// The origin's own file, and its version tag when it was looked at.
    InPlace(PathBuf, Option<String>),
    /// The hot cache's copy, pinned by its lease.
    Copy(Lease),
}

impl LocalFile {
    /// The image's file: `key` in place if `origin` is a local folder, else the hot cache's
    /// copy (made first if needed). Without a hot cache, only images in place can be read.
    pub async fn of(
        cache: Option<&HotCacheSlot>,
        origin: &Arc<dyn Origin>,
        key: &str,
        suffix: &str,
    ) -> Result<LocalFile, LeaseError> {
        if let Some(path) = tessera_origin::local_path(origin.as_ref(), key) {
            // A missing file answers as a missing object would when copied.
            return match origin.head(key).await {
                Ok(meta) => Ok(LocalFile::InPlace(path, meta.etag)),
                Err(OriginError::NotFound) => Err(CopyError::NotFound.into()),
                Err(e) => Err(CopyError::Origin(e).into()),
            };
        }
        let cache = cache.ok_or(LeaseError::NotOpen)?;
        cache.lease(origin, key, suffix).await.map(LocalFile::Copy)
    }

    pub fn path(&self) -> &Path {
        match self {
            LocalFile::InPlace(path, _) => path,
            LocalFile::Copy(lease) => lease.path(),
        }
    }

    /// The version of a file read in place, as it is now (a copy is of the version its image
    /// index names).
    pub fn version(&self) -> Option<&str> {
        match self {
            LocalFile::InPlace(_, etag) => etag.as_deref(),
            LocalFile::Copy(_) => None,
        }
    }
}
