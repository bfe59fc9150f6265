//! Decoded resolution levels, kept in memory: the tiles of one view share one decode.
//!
//! A viewer opening a large image asks for its small levels first — the whole image in a few
//! hundred pixels, then in a thousand, in tiles — and every one of those requests would decode
//! its region again: for a tiled file the same code-blocks a neighbour decodes too, for a file
//! in one tile the whole tile's packet headers each time. When the image is larger than
//! [`MAX_LEVEL_PIXELS`] and the level a request needs is not, the level is decoded whole, once
//! (with OpenJPEG's threads), kept by byte budget, and each request crops it: the first screen
//! then costs one decode per level, and a second viewer of the image none.
//!
//! 1. The key is the image's key and version (its ETag or size and time: a changed file is
//!    another key) and the level; each `render` route has its own levels, so its one origin.
//! 2. Requests for a level being decoded wait for that decode (moka's `try_get_with`); a failed
//!    decode is not kept, each waiter gets its error.
//! 3. Levels above the limit (the detail levels, where a request wants a small part of a large
//!    level), and small images, decode their region as before; so does a request whose level
//!    does not decode whole (a file cut short or damaged: the level is decoded strictly).

use super::pipeline::ViewError;
use crate::metrics::LEVELS;
use moka::future::Cache;
use std::future::Future;
use std::sync::Arc;
use tessera_render::Bitmap;

/// The largest level kept whole: 4 MP (12 MB of RGB), the first screen's largest level of a
/// 60 MP image (2400×1600) and about half a second of decoding on one core.
pub const MAX_LEVEL_PIXELS: u64 = 4_000_000;

/// Which level of which image version (of the route's origin).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LevelKey {
    pub key: String,
    pub version: String,
    pub reduce: u8,
}

/// Decoded levels within a byte budget, shared by the requests of one route.
pub struct DecodedLevels {
    cache: Cache<LevelKey, Arc<Bitmap>>,
}

impl DecodedLevels {
    /// A budget of `bytes`; `None` for 0 (off).
    pub fn new(bytes: u64) -> Option<Self> {
        (bytes > 0).then(|| Self {
            cache: Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, bitmap: &Arc<Bitmap>| {
                    u32::try_from(bitmap.pixels.len()).unwrap_or(u32::MAX)
                })
                .build(),
        })
    }

    /// Whether the level of `level` pixels of an image of `image` pixels is kept whole: the
    /// small levels of a large image. A small image's regions decode quickly as they are.
    pub fn keeps(level: u64, image: u64) -> bool {
        level <= MAX_LEVEL_PIXELS && image > MAX_LEVEL_PIXELS
    }

    /// The level `key`, decoded by `decode` unless kept or being decoded.
    pub async fn get<F>(&self, key: LevelKey, decode: F) -> Result<Arc<Bitmap>, ViewError>
    where
        F: Future<Output = Result<Bitmap, ViewError>>,
    {
        let mut decoded = false;
        let found = self
            .cache
            .try_get_with(key, async {
                decoded = true;
                decode.await.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone());
        LEVELS
            .with_label_values(&[if decoded { "decoded" } else { "kept" }])
            .inc();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(reduce: u8) -> LevelKey {
        LevelKey {
            key: "k".into(),
            version: "v".into(),
            reduce,
        }
    }

    fn bitmap() -> Bitmap {
        Bitmap::new(2, 2, 3, vec![7; 12]).unwrap()
    }

    #[tokio::test]
    async fn a_level_is_decoded_once_however_many_ask_at_once() {
        let levels = Arc::new(DecodedLevels::new(1 << 20).unwrap());
        let decodes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (levels, decodes) = (levels.clone(), decodes.clone());
                tokio::spawn(async move {
                    levels
                        .get(key(3), async {
                            decodes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok(bitmap())
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().pixels, vec![7; 12]);
        }
        assert_eq!(decodes.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_decode_is_not_kept() {
        let levels = DecodedLevels::new(1 << 20).unwrap();
        let failed = levels
            .get(key(1), async { Err(ViewError::Corrupt("bad".into())) })
            .await;
        assert!(matches!(failed, Err(ViewError::Corrupt(_))));
        let again = levels.get(key(1), async { Ok(bitmap()) }).await;
        assert!(again.is_ok());
    }

    #[test]
    fn only_the_small_levels_of_large_images_are_kept_and_zero_is_off() {
        let image = 9600 * 6400;
        assert!(DecodedLevels::keeps(2400 * 1600, image));
        assert!(!DecodedLevels::keeps(4800 * 3200, image));
        assert!(!DecodedLevels::keeps(1024 * 768, 2048 * 1536));
        assert!(DecodedLevels::new(0).is_none());
    }
}
