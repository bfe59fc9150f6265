#![forbid(unsafe_code)]
//! IIIF Image API 2.1 and 3.0, as pure functions: parse an image request, resolve it against an
//! image, write its canonical form, and describe an image in info.json.
//!
//! Why a crate of its own, with no I/O and no async: the IIIF rules are fiddly (which size forms
//! exist in which version, when `^` is required, how percentages round, what the canonical URI
//! is) and every handler of the proxy needs the same answers. Kept pure, they can be tested
//! exhaustively, including with property tests, without a server or an image.
//!
//! The flow of an image request:
//!
//! ```
//! use tessera_iiif::{ImageLimits, ImageRequest, Version};
//!
//! // The path after the identifier.
//! let req = ImageRequest::parse(Version::V3, "pct:10,10,50,50/!256,256/0/default.jpg")?;
//! // Against the image's size and the server's limits (what info.json publishes).
//! let image = ImageLimits { max_width: Some(4000), ..ImageLimits::new(6000, 4000) };
//! let r = req.resolve(Version::V3, &image)?;
//! assert_eq!((r.region.x, r.region.y, r.region.w, r.region.h), (600, 400, 3000, 2000));
//! assert_eq!((r.width, r.height), (256, 171));
//! // One spelling per result: the cache key, and the target of a canonical redirect.
//! assert_eq!(r.canonical(Version::V3, &image), "600,400,3000,2000/256,171/0/default.jpg");
//! # Ok::<(), tessera_iiif::IiifError>(())
//! ```
//!
//! Every error is an [`IiifError`], which always means 400 Bad Request and whose message names
//! the parameter and the reason. What the crate does *not* decide: which formats, qualities,
//! rotations or upscaling a handler supports (it parses them all; the handler refuses what it
//! cannot do), and how identifiers are decoded (the caller strips the identifier off the path).
//!
//! One file per parameter ([`region`], [`size`], [`rotation`], [`quality`], [`mod@format`]), the
//! size arithmetic in [`scale`], the whole request in [`request`], info.json in [`info`].

mod error;
pub mod format;
pub mod info;
mod limits;
mod number;
pub mod quality;
pub mod region;
pub mod request;
pub mod rotation;
pub mod scale;
pub mod size;
mod stored;
mod version;

pub use error::{IiifError, Result};
pub use format::Format;
pub use info::{pyramid_levels, pyramid_sizes, scale_factors, ImageInfo, TileSpec};
pub use limits::ImageLimits;
pub use quality::Quality;
pub use region::{Rect, Region};
pub use request::{ImageRequest, Resolved};
pub use rotation::Rotation;
pub use size::{Size, SizeParam};
pub use version::Version;
