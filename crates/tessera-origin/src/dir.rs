//! A local directory as an origin: the key is a path below the root.
//!
//! Used by the embedded default (no S3 needed) and by tests. Keys are validated before they get
//! here, so joining one to the root cannot leave it.

use crate::{io_error, validate_key, ObjectMeta, ObjectReader, Origin, OriginError};
use async_trait::async_trait;
use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

#[derive(Debug)]
pub struct DirOrigin {
    root: PathBuf,
}

impl DirOrigin {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, OriginError> {
        // An invalid key names no object; callers validate first, this is the last guard.
        validate_key(key).map_err(|_| OriginError::NotFound)?;
        Ok(self.root.join(key))
    }
}

/// A version tag for a file: its size and modification time.
fn etag(meta: &std::fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", meta.len(), mtime)
}

fn fs_error(key: &str, e: std::io::Error) -> OriginError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory => {
            OriginError::NotFound
        }
        ErrorKind::PermissionDenied => OriginError::Denied(format!("{key}: {e}")),
        _ => io_error(key, &e),
    }
}

#[async_trait]
impl Origin for DirOrigin {
    async fn head(&self, key: &str) -> Result<ObjectMeta, OriginError> {
        let meta = tokio::fs::metadata(self.path(key)?)
            .await
            .map_err(|e| fs_error(key, e))?;
        if !meta.is_file() {
            return Err(OriginError::NotFound);
        }
        Ok(ObjectMeta {
            size: meta.len(),
            etag: Some(etag(&meta)),
        })
    }

    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
        version: Option<&str>,
    ) -> Result<ObjectReader, OriginError> {
        let path = self.path(key)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| fs_error(key, e))?;
        let meta = file.metadata().await.map_err(|e| fs_error(key, e))?;
        if !meta.is_file() {
            return Err(OriginError::NotFound);
        }
        if version.is_some_and(|v| v != etag(&meta)) {
            return Err(OriginError::Changed);
        }
        match range {
            None => Ok(Box::new(file)),
            Some(r) => {
                file.seek(SeekFrom::Start(r.start))
                    .await
                    .map_err(|e| fs_error(key, e))?;
                Ok(Box::new(file.take(r.end.saturating_sub(r.start))))
            }
        }
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn head_get_and_ranges() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b.jp2"), b"0123456789").unwrap();
        let origin = DirOrigin::new(dir.path());

        assert_eq!(origin.head("a/b.jp2").await.unwrap().size, 10);
        assert_eq!(
            &origin.read_range("a/b.jp2", 2..5).await.unwrap()[..],
            b"234"
        );
        assert_eq!(
            &origin.read_range("a/b.jp2", 8..50).await.unwrap()[..],
            b"89"
        );
        let mut all = Vec::new();
        origin
            .get("a/b.jp2", None, None)
            .await
            .unwrap()
            .read_to_end(&mut all)
            .await
            .unwrap();
        assert_eq!(all, b"0123456789");
    }

    #[tokio::test]
    async fn missing_objects_directories_and_escapes_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let origin = DirOrigin::new(dir.path().join("sub"));
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        assert_eq!(origin.head("nope").await, Err(OriginError::NotFound));
        assert_eq!(origin.head("../secret").await, Err(OriginError::NotFound));
        assert!(matches!(
            origin.get("../secret", None, None).await,
            Err(OriginError::NotFound)
        ));
        std::fs::create_dir_all(dir.path().join("sub/d")).unwrap();
        assert_eq!(origin.head("d").await, Err(OriginError::NotFound));
    }

    #[tokio::test]
    async fn a_changed_file_fails_a_versioned_get() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"one").unwrap();
        let origin = DirOrigin::new(dir.path());
        let v = origin.head("x").await.unwrap().etag.unwrap();
        assert!(origin.get("x", None, Some(&v)).await.is_ok());
        std::fs::write(dir.path().join("x"), b"three").unwrap();
        assert!(matches!(
            origin.get("x", None, Some(&v)).await,
            Err(OriginError::Changed)
        ));
    }
}
