//! Start-up: sweep temporaries a crash left behind and rebuild the index from the files on disk.
//!
//! File modification times give the order of recency: a file's mtime is when it was copied, so
//! after a restart the oldest copies are evicted first.

use crate::policy::Policy;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// What start-up found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub files: u64,
    pub bytes: u64,
    /// Temporary files removed.
    pub swept: u64,
}

pub(crate) fn recover(
    objects: &Path,
    tmp: &Path,
    policy: &mut Policy,
) -> std::io::Result<Recovered> {
    std::fs::create_dir_all(objects)?;
    std::fs::create_dir_all(tmp)?;
    let mut report = Recovered::default();
    for entry in std::fs::read_dir(tmp)? {
        let entry = entry?;
        let path = entry.path();
        let removed = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => report.swept += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), "hot cache: cannot sweep temporary: {e}")
            }
        }
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(objects)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        if meta.len() == 0 {
            // No image is empty: a copy whose data never reached the disk (a power cut after
            // the rename). Copied again on the next request.
            std::fs::remove_file(entry.path())?;
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        found.push((mtime, name, meta.len()));
    }
    found.sort();
    for (_, name, size) in found {
        policy.insert(&name, size, 0);
        report.files += 1;
        report.bytes += size;
    }
    Ok(report)
}
