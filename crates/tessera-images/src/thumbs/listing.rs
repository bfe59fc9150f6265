//! Size listings (`s.json`), read once per image and kept for a while: every thumbnail request
//! needs one, and concurrent requests for an image share one read (moka's `try_get_with`). A
//! listing that does not exist is remembered too, so requests for images without thumbnails do
//! not each ask the origin; failures to read one are not, so the next request tries again.

use super::ThumbSizes;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;
use tessera_origin::{Origin, OriginError};

/// The largest `s.json` read.
const MAX_LISTING_BYTES: u64 = 64 << 10;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ListingError {
    #[error("no size listing")]
    Missing,
    #[error("origin: {0}")]
    Origin(OriginError),
    #[error("malformed size listing: {0}")]
    Malformed(String),
}

#[derive(Clone)]
enum Entry {
    Found(Arc<ThumbSizes>),
    Missing,
}

pub struct Listings {
    cache: Cache<String, Entry>,
}

impl Listings {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The listing at `key` in `origin` (cached by `key`: one handler, one origin).
    pub async fn get(
        &self,
        origin: &Arc<dyn Origin>,
        key: &str,
    ) -> Result<Arc<ThumbSizes>, ListingError> {
        let entry = self
            .cache
            .try_get_with(key.to_string(), read(origin.as_ref(), key))
            .await
            .map_err(|e: Arc<ListingError>| (*e).clone())?;
        match entry {
            Entry::Found(sizes) => Ok(sizes),
            Entry::Missing => Err(ListingError::Missing),
        }
    }
}

async fn read(origin: &dyn Origin, key: &str) -> Result<Entry, ListingError> {
    match origin.read_range(key, 0..MAX_LISTING_BYTES + 1).await {
        Ok(bytes) if bytes.len() as u64 > MAX_LISTING_BYTES => Err(ListingError::Malformed(
            format!("larger than {MAX_LISTING_BYTES} bytes"),
        )),
        Ok(bytes) => ThumbSizes::parse(&bytes)
            .map(|s| Entry::Found(Arc::new(s)))
            .map_err(ListingError::Malformed),
        Err(OriginError::NotFound) => Ok(Entry::Missing),
        Err(e) => Err(ListingError::Origin(e)),
    }
}
