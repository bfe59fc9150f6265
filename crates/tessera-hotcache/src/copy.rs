//! Moving an object's bytes from the origin into a temporary file.
//!
//! Small objects are one streamed GET. Objects over `parallel_threshold` are split into
//! `part_size` ranges fetched `parallel_parts` at a time, each written at its offset: one S3
//! connection rarely fills the network, several do. Every byte count is checked, so a
//! connection cut mid-object is an error, never a short file.

use crate::{CopyError, Settings};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_origin::{ObjectMeta, Origin, OriginError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

/// Writes go to the file in blocks this large (each one is a trip to the blocking pool).
const WRITE_BUFFER: usize = 1 << 20;

/// A fresh temporary path for `name`.
pub(crate) fn temp_path(tmp: &Path, name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp.join(format!("{name}.{}.{n}.part", std::process::id()))
}

/// Local I/O errors: "no space" is its own kind, because it is answered with 503.
pub(crate) fn local_error(e: &std::io::Error) -> CopyError {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    if matches!(e.raw_os_error(), Some(ENOSPC) | Some(EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
    {
        CopyError::DiskFull
    } else {
        CopyError::Io(e.to_string())
    }
}

fn origin_error(e: OriginError) -> CopyError {
    match e {
        OriginError::NotFound => CopyError::NotFound,
        e => CopyError::Origin(e),
    }
}

/// Copy all of `key` (as described by `meta`) to `dest`. Every GET carries the object's ETag,
/// so an object replaced mid-copy fails the copy instead of mixing two versions.
pub(crate) async fn copy_object(
    origin: &dyn Origin,
    key: &str,
    meta: &ObjectMeta,
    dest: &Path,
    settings: &Settings,
) -> Result<(), CopyError> {
    let size = meta.size;
    let version = meta.etag.as_deref();
    let file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| local_error(&e))?;
    if size < settings.parallel_threshold.max(1) || settings.parallel_parts <= 1 {
        let reader = origin.get(key, None, version).await.map_err(origin_error)?;
        let got = write_stream(reader, file, size).await?;
        return check_length(size, got);
    }
    file.set_len(size).await.map_err(|e| local_error(&e))?;
    drop(file);
    copy_in_parts(origin, key, meta, dest, settings).await
}

fn check_length(expected: u64, got: u64) -> Result<(), CopyError> {
    if got == expected {
        Ok(())
    } else {
        Err(CopyError::Truncated { expected, got })
    }
}

/// Write everything `reader` gives to `file` (at its current position), up to `limit` bytes
/// plus one, so an origin sending too much is noticed. Returns the bytes written.
async fn write_stream(
    reader: impl AsyncRead + Unpin,
    file: tokio::fs::File,
    limit: u64,
) -> Result<u64, CopyError> {
    let mut reader = reader.take(limit + 1);
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await.map_err(|e| {
            CopyError::Origin(if e.kind() == std::io::ErrorKind::TimedOut {
                OriginError::Timeout(e.to_string())
            } else {
                OriginError::Unavailable(format!("reading the body: {e}"))
            })
        })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .await
            .map_err(|e| local_error(&e))?;
        total += n as u64;
    }
    out.flush().await.map_err(|e| local_error(&e))?;
    Ok(total)
}

async fn copy_in_parts(
    origin: &dyn Origin,
    key: &str,
    meta: &ObjectMeta,
    dest: &Path,
    settings: &Settings,
) -> Result<(), CopyError> {
    let (size, version) = (meta.size, meta.etag.as_deref());
    let part = settings.part_size.max(1);
    let ranges = (0..size.div_ceil(part)).map(|i| (i * part, ((i + 1) * part).min(size)));
    // At most `parallel_parts` ranged GETs in flight; the first error drops (cancels) the rest.
    stream::iter(ranges)
        .map(|(start, end)| async move {
            let reader = origin
                .get(key, Some(start..end), version)
                .await
                .map_err(origin_error)?;
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(dest)
                .await
                .map_err(|e| local_error(&e))?;
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| local_error(&e))?;
            let got = write_stream(reader, file, end - start).await?;
            check_length(end - start, got)
        })
        .buffer_unordered(settings.parallel_parts.max(1))
        .try_collect::<()>()
        .await
}
