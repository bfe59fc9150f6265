//! The one place where what went wrong serving an image becomes the client's answer: 404 for
//! an image that does not exist, 501 for what Tessera cannot produce, 503 when the local cache
//! cannot take it, 504 when the origin or the decoder took too long, 502 for the rest — each
//! server-side failure with one log line naming the origin and the key.
//!
//! The layers below return their own errors (the index store [`IndexError`], the hot cache
//! [`LeaseError`], the decode pipeline [`ViewError`], the thumbnail listings
//! [`ListingError`]); handlers wrap them in a [`Failure`] and call [`Failure::answer`].

use super::pipeline::ViewError;
use crate::resources::{IndexError, LeaseError};
use crate::thumbs::ListingError;
use http::StatusCode;
use tessera_hotcache::CopyError;
use tessera_origin::OriginError;
use tessera_proxy::plugin::HttpError;

/// Why a thumbnail could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("origin: {0}")]
    Origin(#[from] OriginError),
    #[error("larger than max_thumbnail_bytes ({0} bytes)")]
    TooLarge(u64),
}

/// What failed, and while doing what.
#[derive(Debug)]
pub enum Failure {
    /// Reading the image's header (building its index).
    Header(IndexError),
    /// Copying the image into the hot cache. The copy has logged its failure already.
    Copy(LeaseError),
    /// Fetching, decoding or rendering the image.
    View(ViewError),
    /// Reading a thumbnail.
    Thumbnail(ThumbnailError),
    /// Decoding and resizing a thumbnail.
    Resize(ViewError),
    /// Reading a thumbnail size listing.
    Listing(ListingError),
}

fn answer(status: StatusCode, message: &str) -> HttpError {
    HttpError::new(status, message)
}

fn image_store_timed_out() -> HttpError {
    answer(
        StatusCode::GATEWAY_TIMEOUT,
        "the image store did not answer in time",
    )
}

fn no_such_image() -> HttpError {
    answer(StatusCode::NOT_FOUND, "no such image")
}

impl Failure {
    /// The answer for this failure of `key` in `origin`, after its log line.
    pub fn answer(self, origin: &str, key: &str) -> HttpError {
        match self {
            Failure::Header(IndexError::NotFound) => no_such_image(),
            Failure::Header(IndexError::Refused(why)) => {
                tracing::warn!(origin, key, "image refused: {why}");
                answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, &why)
            }
            Failure::Header(e @ IndexError::Raster(_)) => {
                answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, &e.to_string())
            }
            Failure::Header(IndexError::Unsupported(why)) => {
                tracing::warn!(origin, key, "image not served: {why}");
                answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, &why)
            }
            Failure::Header(e @ IndexError::Origin(OriginError::Timeout(_))) => {
                tracing::error!(origin, key, error = %e, "origin timed out reading the image header");
                image_store_timed_out()
            }
            Failure::Header(e) => {
                tracing::error!(origin, key, error = %e, "cannot read the image header");
                answer(StatusCode::BAD_GATEWAY, "the image cannot be read")
            }
            Failure::Copy(e) => copy_failed(&e),
            Failure::View(e)
            | Failure::Resize(e @ (ViewError::TimedOut(_) | ViewError::Closed)) => {
                view_failed(e, origin, key)
            }
            Failure::Resize(e) => {
                tracing::error!(origin, key, error = %e, "cannot resize a thumbnail");
                answer(StatusCode::BAD_GATEWAY, "the thumbnail cannot be read")
            }
            Failure::Thumbnail(e) => thumbnail_unreadable(e, origin, key),
            Failure::Listing(ListingError::Origin(e)) => thumbnail_unreadable(e, origin, key),
            Failure::Listing(ListingError::Missing) => {
                answer(StatusCode::NOT_FOUND, "no thumbnails for this image")
            }
            Failure::Listing(e @ ListingError::Malformed(_)) => {
                tracing::error!(origin, key, error = %e, "cannot read a thumbnail size listing");
                answer(
                    StatusCode::BAD_GATEWAY,
                    "the thumbnail sizes cannot be read",
                )
            }
        }
    }
}

fn view_failed(e: ViewError, origin: &str, key: &str) -> HttpError {
    match e {
        ViewError::Origin(OriginError::Timeout(_)) => {
            tracing::error!(origin, key, error = %e, "origin timed out reading the image");
            image_store_timed_out()
        }
        ViewError::Origin(OriginError::NotFound) => no_such_image(),
        ViewError::NotSupported(m) => answer(StatusCode::NOT_IMPLEMENTED, &m),
        ViewError::Unsupported(m) => answer(StatusCode::UNSUPPORTED_MEDIA_TYPE, &m),
        ViewError::Limit(m) => answer(StatusCode::BAD_REQUEST, &m),
        ViewError::TimedOut(_) => {
            tracing::error!(origin, key, error = %e, "decoding the image timed out");
            answer(
                StatusCode::GATEWAY_TIMEOUT,
                "the image took too long to decode",
            )
        }
        ViewError::Closed => answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        e => {
            tracing::error!(origin, key, error = %e, "cannot serve the image");
            answer(StatusCode::BAD_GATEWAY, "the image cannot be read")
        }
    }
}

fn thumbnail_unreadable(e: impl Into<ThumbnailError>, origin: &str, key: &str) -> HttpError {
    let e = e.into();
    if let ThumbnailError::Origin(OriginError::Timeout(_)) = e {
        tracing::error!(origin, key, error = %e, "origin timed out reading a thumbnail");
        return answer(
            StatusCode::GATEWAY_TIMEOUT,
            "the thumbnail store did not answer in time",
        );
    }
    tracing::error!(origin, key, error = %e, "cannot read a thumbnail");
    answer(StatusCode::BAD_GATEWAY, "the thumbnail cannot be read")
}

/// A failed copy into the hot cache. The copy task has already logged it, naming origin and
/// key, once for all the requests that waited for it.
fn copy_failed(e: &LeaseError) -> HttpError {
    let copy = match e {
        LeaseError::NotOpen => {
            return answer(StatusCode::SERVICE_UNAVAILABLE, "the hot cache is not open")
        }
        LeaseError::Copy(copy) => copy,
    };
    match copy {
        CopyError::NotFound => no_such_image(),
        CopyError::Origin(OriginError::Timeout(_)) => image_store_timed_out(),
        CopyError::Origin(_) | CopyError::Truncated { .. } => {
            answer(StatusCode::BAD_GATEWAY, "the image store failed")
        }
        CopyError::DiskFull | CopyError::TooLarge { .. } | CopyError::Io(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the image cannot be cached locally right now",
        ),
        CopyError::Aborted => answer(StatusCode::BAD_GATEWAY, "the copy of the image failed"),
        CopyError::Busy(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many images are being copied right now; try again",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(f: Failure) -> u16 {
        f.answer("o", "k").status.as_u16()
    }

    #[test]
    fn each_layer_maps_to_its_status() {
        let timeout = || OriginError::Timeout("read".into());
        assert_eq!(status(Failure::Header(IndexError::NotFound)), 404);
        assert_eq!(
            status(Failure::Header(IndexError::Unsupported("a JPEG".into()))),
            415
        );
        assert_eq!(
            status(Failure::Header(IndexError::Refused("x".into()))),
            415
        );
        assert_eq!(status(Failure::Header(IndexError::Origin(timeout()))), 504);
        assert_eq!(
            status(Failure::Header(IndexError::Corrupt("x".into()))),
            502
        );
        assert_eq!(status(Failure::Copy(LeaseError::NotOpen)), 503);
        assert_eq!(status(Failure::Copy(CopyError::NotFound.into())), 404);
        assert_eq!(status(Failure::Copy(CopyError::DiskFull.into())), 503);
        assert_eq!(
            status(Failure::View(ViewError::Origin(OriginError::NotFound))),
            404
        );
        assert_eq!(
            status(Failure::View(ViewError::NotSupported("x".into()))),
            501
        );
        assert_eq!(
            status(Failure::View(ViewError::TimedOut(Duration::ZERO))),
            504
        );
        assert_eq!(status(Failure::View(ViewError::Corrupt("x".into()))), 502);
        assert_eq!(
            status(Failure::Resize(ViewError::TimedOut(Duration::ZERO))),
            504
        );
        assert_eq!(status(Failure::Resize(ViewError::Corrupt("x".into()))), 502);
        assert_eq!(status(Failure::Thumbnail(ThumbnailError::TooLarge(1))), 502);
        assert_eq!(status(Failure::Thumbnail(timeout().into())), 504);
        assert_eq!(
            status(Failure::Listing(ListingError::Malformed("x".into()))),
            502
        );
    }
}
