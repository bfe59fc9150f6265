//! JP2 header indexes: parsed once per image, kept in memory (moka, bounded by bytes) and on
//! disk, so neither a second request nor a restart reads the header from the origin again.
//!
//! Building one reads the first `first_read` bytes (16 KiB holds most main headers), more only
//! if the header is longer, and — for files without TLM markers — walks the SOT markers with
//! small ranged reads. Concurrent requests for the same image share one build (moka's
//! `try_get_with`). The files on disk are JSON named by a hash of the origin's location and the
//! key; they are written to a temporary name and renamed, so a reader never sees half of one.
//! With `beside_image`, each index is also an object `{key}.tessera-index.json` in the origin,
//! looked for before the header is read, so a fleet of Tesseras builds each index once.

use crate::format::Format as RasterFormat;
use crate::metrics::INDEX;
use moka::future::Cache;
use std::path::PathBuf;
use std::sync::Arc;
use tessera_jp2::{Header, Jp2Error, Jp2Index, ParseError, SotWalker, INDEX_VERSION};
use tessera_origin::{Origin, OriginError};

/// Tile-parts a SOT walk may find before the file is refused (bounds the reads per image).
const MAX_WALKED_TILE_PARTS: usize = 200_000;
/// Bytes read per step of a SOT walk. A ranged GET costs its latency whether it returns 12
/// bytes or 16 KiB, and every SOT header inside the window is consumed at once, so the small
/// tile-parts of low resolutions are found several per read.
const WALK_WINDOW: u64 = 16 << 10;
/// The most bytes read to find a header; boxes or headers larger than this are refused.
const MAX_HEADER_BYTES: u64 = 8 << 20;

#[derive(Clone, Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no such object")]
    NotFound,
    #[error("origin: {0}")]
    Origin(OriginError),
    #[error("not a readable JPEG 2000 file: {0}")]
    Corrupt(String),
    /// The image declares more than this server decodes (see [`Declared`]).
    #[error("{0}")]
    Refused(String),
    /// The object is not a JPEG 2000 file: what it is, and what to do.
    #[error("{0}")]
    Unsupported(String),
    /// The object is a JPEG, PNG or TIFF master: no header index, but `info` and `render`
    /// read it from its local copy (see [`crate::imaging::raster`]).
    #[error("the image is a {0} master: info and render routes serve it, not byte ranges")]
    Raster(RasterFormat),
}

/// What an image may declare, checked from its index before anything is decoded: a file of a
/// few kilobytes can declare a size whose decode would take gigabytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    /// Width × height.
    pub max_pixels: u64,
    pub max_components: usize,
}

impl Declared {
    /// `Ok` if `index` stays within these limits, else why not.
    pub fn admit(&self, index: &Jp2Index) -> Result<(), IndexError> {
        let pixels = u64::from(index.width) * u64::from(index.height);
        if pixels > self.max_pixels {
            return Err(IndexError::Refused(format!(
                "the image declares {}×{} = {pixels} pixels; this server decodes images of at most {} (image_index.max_image_pixels)",
                index.width, index.height, self.max_pixels
            )));
        }
        let n = index.components.len();
        if n == 0 || n > self.max_components {
            return Err(IndexError::Refused(format!(
                "the image declares {n} components; this server decodes images of 1 to {} (image_index.max_components)",
                self.max_components
            )));
        }
        Ok(())
    }
}

/// One image's persisted entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    etag: Option<String>,
    size: u64,
    index: Jp2Index,
}

/// An index and the object it describes.
#[derive(Clone, Debug)]
pub struct Indexed {
    pub index: Arc<Jp2Index>,
    /// The object's size in bytes and version tag when the index was built.
    pub size: u64,
    pub etag: Option<String>,
}

pub struct IndexStore {
    memory: Cache<String, Indexed>,
    declared: Declared,
    dir: Option<PathBuf>,
    first_read: u64,
    /// Also keep indexes as objects beside their images in the origin.
    beside_image: bool,
    /// Indexes found stale: their objects beside the image are rebuilt, not read.
    stale: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The key of an image's index object in its origin.
pub fn beside_key(key: &str) -> String {
    format!("{key}.tessera-index.json")
}

fn origin_error(e: OriginError) -> IndexError {
    match e {
        OriginError::NotFound => IndexError::NotFound,
        e => IndexError::Origin(e),
    }
}

impl IndexStore {
    /// `memory` bytes of indexes in memory; `dir` to persist them; `beside_image` to keep them
    /// in the origin too.
    pub fn new(
        memory: u64,
        dir: Option<PathBuf>,
        first_read: u64,
        beside_image: bool,
        declared: Declared,
    ) -> Self {
        let memory = Cache::builder()
            .weigher(|_k: &String, v: &Indexed| {
                // Roughly what an index holds: fixed fields plus each tile-part.
                u32::try_from(256 + 32 * v.index.tile_parts.len()).unwrap_or(u32::MAX)
            })
            .max_capacity(memory)
            .build();
        Self {
            memory,
            declared,
            dir,
            first_read: first_read.max(1024),
            beside_image,
            stale: Default::default(),
        }
    }

    /// The index of `key` at `origin`: from memory, from disk, or built from the object; an
    /// image that declares more than [`Declared`] allows is refused (its index is still kept,
    /// so the refusal costs no read the next time).
    pub async fn get(&self, origin: &Arc<dyn Origin>, key: &str) -> Result<Indexed, IndexError> {
        let indexed = self.lookup(origin, key).await?;
        self.declared.admit(&indexed.index)?;
        Ok(indexed)
    }

    async fn lookup(&self, origin: &Arc<dyn Origin>, key: &str) -> Result<Indexed, IndexError> {
        let name = tessera_hotcache::file_name(&origin.describe(), key, ".json");
        let loaded = std::sync::atomic::AtomicBool::new(false);
        let found = self
            .memory
            .try_get_with(name.clone(), async {
                loaded.store(true, std::sync::atomic::Ordering::Relaxed);
                let counted = |source: &str| INDEX.lookups.with_label_values(&[source]).inc();
                if let Some(found) = self.load(&name).await {
                    counted("disk");
                    return Ok(found);
                }
                let stale = self.stale.lock().is_ok_and(|s| s.contains(&name));
                if !stale {
                    if let Some(found) = self.load_beside(origin.as_ref(), key).await {
                        self.save(&name, &found).await;
                        counted("beside");
                        return Ok(found);
                    }
                }
                let built = build(origin.as_ref(), key, self.first_read).await;
                counted(if built.is_ok() { "built" } else { "failed" });
                let built = built?;
                self.save(&name, &built).await;
                self.save_beside(origin.as_ref(), key, &built).await;
                if let Ok(mut s) = self.stale.lock() {
                    s.remove(&name);
                }
                Ok(built)
            })
            .await
            .map_err(|e: Arc<IndexError>| (*e).clone());
        if !loaded.load(std::sync::atomic::Ordering::Relaxed) {
            // In memory, or being loaded by another request, which counted the load.
            INDEX.lookups.with_label_values(&["memory"]).inc();
        }
        found
    }

    /// Forget an index (the object changed under it); the next request rebuilds it.
    pub async fn forget(&self, origin: &Arc<dyn Origin>, key: &str) {
        let name = tessera_hotcache::file_name(&origin.describe(), key, ".json");
        self.memory.invalidate(&name).await;
        if let Some(dir) = &self.dir {
            let _ = tokio::fs::remove_file(dir.join(&name)).await;
        }
        if self.beside_image {
            if let Ok(mut s) = self.stale.lock() {
                s.insert(name);
            }
        }
    }

    async fn load(&self, name: &str) -> Option<Indexed> {
        let path = self.dir.as_ref()?.join(name);
        let text = tokio::fs::read(&path).await.ok()?;
        decode_stored(&text)
    }

    async fn save(&self, name: &str, indexed: &Indexed) {
        let Some(dir) = &self.dir else { return };
        let Some(json) = encode_stored(indexed) else {
            return;
        };
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let result = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&tmp, &json).await?;
            tokio::fs::rename(&tmp, dir.join(name)).await
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            tracing::warn!(dir = %dir.display(), "cannot store a JP2 index: {e}");
        }
    }

    /// The index object beside the image, when configured and present.
    async fn load_beside(&self, origin: &dyn Origin, key: &str) -> Option<Indexed> {
        if !self.beside_image {
            return None;
        }
        let index_key = beside_key(key);
        let meta = origin.head(&index_key).await.ok()?;
        if meta.size > MAX_HEADER_BYTES * 4 {
            return None;
        }
        let text = origin.read_range(&index_key, 0..meta.size).await.ok()?;
        decode_stored(&text)
    }

    async fn save_beside(&self, origin: &dyn Origin, key: &str, indexed: &Indexed) {
        if !self.beside_image {
            return;
        }
        let Some(json) = encode_stored(indexed) else {
            return;
        };
        if let Err(e) = origin.put(&beside_key(key), json.into()).await {
            tracing::warn!(origin = %origin.describe(), key, "cannot store a JP2 index beside the image: {e}");
        }
    }
}

fn encode_stored(indexed: &Indexed) -> Option<Vec<u8>> {
    serde_json::to_vec(&Stored {
        etag: indexed.etag.clone(),
        size: indexed.size,
        index: (*indexed.index).clone(),
    })
    .ok()
}

/// A stored index, unless it was written by another version or is damaged (then it is rebuilt).
fn decode_stored(text: &[u8]) -> Option<Indexed> {
    match serde_json::from_slice::<Stored>(text) {
        Ok(s) if s.index.version == INDEX_VERSION => Some(Indexed {
            index: Arc::new(s.index),
            size: s.size,
            etag: s.etag,
        }),
        _ => None,
    }
}

/// Why an object that is not a JP2 (or J2K), JPEG, PNG or TIFF cannot be served, named by its
/// first bytes so that the answer says what the file is.
fn not_jp2(prefix: &[u8]) -> String {
    let what = crate::format::describe_other(prefix);
    format!("the image is {what}: JPEG 2000, JPEG, PNG and TIFF masters are served")
}

/// Read the header (and, without TLM, walk the SOTs) of `key`.
async fn build(origin: &dyn Origin, key: &str, first_read: u64) -> Result<Indexed, IndexError> {
    let meta = origin.head(key).await.map_err(origin_error)?;
    let limit = meta.size.min(MAX_HEADER_BYTES);
    let mut want = first_read.min(limit);
    let header = loop {
        let prefix = origin
            .read_range(key, 0..want)
            .await
            .map_err(origin_error)?;
        INDEX.read_bytes.inc_by(prefix.len() as u64);
        match Header::parse(&prefix) {
            Ok(h) => break h,
            Err(ParseError::NeedMore { total_needed }) if total_needed <= limit && want < limit => {
                want = total_needed.max(want.saturating_mul(2)).min(limit);
            }
            Err(ParseError::NeedMore { total_needed }) if total_needed > meta.size => {
                return Err(IndexError::Corrupt("the header is truncated".into()))
            }
            Err(ParseError::NeedMore { .. }) => {
                return Err(IndexError::Corrupt(format!(
                    "the header is longer than {MAX_HEADER_BYTES} bytes"
                )))
            }
            Err(ParseError::Invalid(Jp2Error::NotJp2)) => {
                return Err(match RasterFormat::sniff(&prefix) {
                    Some(format) => IndexError::Raster(format),
                    None => IndexError::Unsupported(not_jp2(&prefix)),
                })
            }
            Err(ParseError::Invalid(e)) => return Err(IndexError::Corrupt(e.to_string())),
        }
    };
    let index = match Jp2Index::from_header(&header) {
        Ok(i) => i,
        Err(Jp2Error::NoTlm) => walk(origin, key, &header, meta.size).await?,
        Err(e) => return Err(IndexError::Corrupt(e.to_string())),
    };
    // A file cut short after a header with TLM still indexes cleanly; its tile-parts say where
    // it should end.
    if let Some(end) = index
        .tile_parts
        .iter()
        .map(|tp| tp.offset.saturating_add(tp.length))
        .max()
        .filter(|&end| end > meta.size)
    {
        return Err(IndexError::Corrupt(format!(
            "truncated: the tile-parts run to byte {end} but the object has {} bytes",
            meta.size
        )));
    }
    Ok(Indexed {
        index: Arc::new(index),
        size: meta.size,
        etag: meta.etag,
    })
}

/// Hop from SOT to SOT with small ranged reads.
async fn walk(
    origin: &dyn Origin,
    key: &str,
    header: &Header,
    size: u64,
) -> Result<Jp2Index, IndexError> {
    let corrupt = |e: Jp2Error| IndexError::Corrupt(e.to_string());
    let mut walker = SotWalker::new(header, size);
    let end = header.codestream_end.map_or(size, |e| e.min(size));
    while let Some(range) = walker.next_read() {
        if walker.tile_parts().len() > MAX_WALKED_TILE_PARTS {
            return Err(IndexError::Corrupt("too many tile-parts".into()));
        }
        let window = range.start..range.end.max(range.start + WALK_WINDOW).min(end);
        let bytes = origin
            .read_range(key, window.clone())
            .await
            .map_err(origin_error)?;
        INDEX.read_bytes.inc_by(bytes.len() as u64);
        walker.feed(window.start, &bytes).map_err(corrupt)?;
    }
    let parts = walker.finish().map_err(corrupt)?;
    Jp2Index::from_tile_parts(header, parts).map_err(corrupt)
}
