//! A local directory as an origin: the key is a path below the root.
//!
//! Used by the embedded default (no S3 needed) and by tests. Keys are validated before they get
//! here, so joining one to the root cannot leave it.
//!
//! Listing walks the tree below the root and reports regular files (and symlinks to them) by
//! their path relative to the root, with `/` separators: the same keys `head` and `get` accept.
//! Symlinked directories are not entered, so a link cycle cannot make a walk endless.

use crate::{io_error, validate_key, ObjectMeta, ObjectReader, Origin, OriginError};
use async_trait::async_trait;
use bytes::Bytes;
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
        // A name this filesystem cannot hold (a segment over NAME_MAX, a path over PATH_MAX)
        // names no file in it.
        ErrorKind::NotFound
        | ErrorKind::NotADirectory
        | ErrorKind::IsADirectory
        | ErrorKind::InvalidFilename => OriginError::NotFound,
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

    async fn open(&self, key: &str) -> Result<(ObjectMeta, ObjectReader), OriginError> {
        let file = tokio::fs::File::open(self.path(key)?)
            .await
            .map_err(|e| fs_error(key, e))?;
        let meta = file.metadata().await.map_err(|e| fs_error(key, e))?;
        if !meta.is_file() {
            return Err(OriginError::NotFound);
        }
        let object = ObjectMeta {
            size: meta.len(),
            etag: Some(etag(&meta)),
        };
        Ok((object, Box::new(file)))
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

    async fn put(&self, key: &str, body: Bytes) -> Result<(), OriginError> {
        let path = self.path(key)?;
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let write = async {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&tmp, &body).await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(fs_error(key, e));
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, OriginError> {
        let (root, prefix) = (self.root.clone(), prefix.to_string());
        tokio::task::spawn_blocking(move || list_files(&root, &prefix))
            .await
            .map_err(|e| OriginError::Unavailable(format!("listing: {e}")))?
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

fn list_error(dir: &Path, e: std::io::Error) -> OriginError {
    let detail = format!("listing {}: {e}", dir.display());
    match e.kind() {
        ErrorKind::PermissionDenied => OriginError::Denied(detail),
        _ => OriginError::Unavailable(detail),
    }
}

/// The keys below `root` that start with `prefix`, sorted. The walk starts at the directory part
/// of the prefix (`a/b/c` → `a/b`), so listing one folder of a large tree reads only that folder.
fn list_files(root: &Path, prefix: &str) -> Result<Vec<String>, OriginError> {
    let start = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    if !start.is_empty() && validate_key(start).is_err() {
        // No key can live below a directory no key can name.
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    let mut dirs = vec![start.to_string()];
    while let Some(rel) = dirs.pop() {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // The prefix names a folder that does not exist: nothing is below it.
            Err(e) if !rel.is_empty() && rel == start && e.kind() == ErrorKind::NotFound => {
                continue
            }
            Err(e) => return Err(list_error(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| list_error(&dir, e))?;
            // A name that is not UTF-8 is not a key anything could ask for.
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if !key.starts_with(prefix) || validate_key(&key).is_err() {
                continue;
            }
            match Entry::of(&entry) {
                Entry::Dir => dirs.push(key),
                Entry::File => keys.push(key),
                Entry::Other => {}
            }
        }
    }
    keys.sort();
    Ok(keys)
}

enum Entry {
    Dir,
    File,
    Other,
}

impl Entry {
    /// What a directory entry is, following a symlink only to see whether it names a file.
    fn of(entry: &std::fs::DirEntry) -> Entry {
        match entry.file_type() {
            Ok(t) if t.is_dir() => Entry::Dir,
            Ok(t) if t.is_file() => Entry::File,
            Ok(t) if t.is_symlink() => match std::fs::metadata(entry.path()) {
                Ok(m) if m.is_file() => Entry::File,
                _ => Entry::Other,
            },
            _ => Entry::Other,
        }
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

        let (meta, mut reader) = origin.open("a/b.jp2").await.unwrap();
        assert_eq!(meta, origin.head("a/b.jp2").await.unwrap());
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"0123456789");
        assert!(matches!(
            origin.open("a/none.jp2").await,
            Err(OriginError::NotFound)
        ));
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
        // Longer than a file name may be: no such object, not an unavailable origin.
        let long = "x".repeat(300);
        assert_eq!(origin.head(&long).await, Err(OriginError::NotFound));
        assert!(matches!(
            origin.get(&format!("a/{long}"), None, None).await,
            Err(OriginError::NotFound)
        ));
    }

    #[tokio::test]
    async fn list_walks_below_the_prefix_and_skips_what_is_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a/x.jp2", "a/deep/er/y.jp2", "ab/z.jp2", "b/w.jp2", "top"] {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"x").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("a/empty")).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("b/w.jp2"), dir.path().join("a/link"))
                .unwrap();
            // A cycle: must not be entered.
            std::os::unix::fs::symlink(dir.path(), dir.path().join("a/loop")).unwrap();
        }
        let origin = DirOrigin::new(dir.path());

        let mut below_a = vec!["a/deep/er/y.jp2", "a/x.jp2"];
        if cfg!(unix) {
            below_a.insert(1, "a/link");
        }
        assert_eq!(origin.list("a/").await.unwrap(), below_a);
        let mut a_and_ab = below_a.clone();
        a_and_ab.push("ab/z.jp2");
        assert_eq!(origin.list("a").await.unwrap(), a_and_ab);
        assert_eq!(origin.list("a/d").await.unwrap(), ["a/deep/er/y.jp2"]);
        assert_eq!(origin.list("").await.unwrap().len(), a_and_ab.len() + 2);
        assert!(origin.list("nope/").await.unwrap().is_empty());
        assert!(origin.list("../").await.unwrap().is_empty());
        for key in origin.list("").await.unwrap() {
            assert!(origin.head(&key).await.is_ok(), "{key}");
        }
    }

    #[tokio::test]
    async fn listing_a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let origin = DirOrigin::new(dir.path().join("gone"));
        assert!(matches!(
            origin.list("").await,
            Err(OriginError::Unavailable(_))
        ));
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
