//! What the IIIF image handlers (`byte_range`, `render`, `info`, `thumbs`) share: object keys
//! and the IIIF request from captures, found with the image's header index by
//! [`IndexedImages`]; how answers are written ([`answer`]) and failures answered ([`Failure`]);
//! and the decode → render pipeline.

pub mod answer;
pub mod bands;
pub mod defaults;
pub mod failure;
pub mod indexed_images;
pub mod keys;
pub mod levels;
pub mod pipeline;
pub mod raster;
pub mod request;
pub mod spare_cores;

pub use failure::Failure;
pub use indexed_images::{Found, IndexedImages, Lookup};
