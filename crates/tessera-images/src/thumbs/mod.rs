//! Pre-made thumbnails: the sizes an image has (`s.json`), which one answers a IIIF request,
//! and a cache of the size listings. The `thumbs` handler ([`crate::handlers::thumbs`]) puts
//! them together.

pub mod choice;
pub mod listing;
pub mod sizes;

pub use choice::{choose, Choice};
pub use listing::{ListingError, Listings};
pub use sizes::{Thumb, ThumbSizes};
