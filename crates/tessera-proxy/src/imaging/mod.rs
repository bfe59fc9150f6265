//! What the IIIF image handlers (`byte_range`, `render`, `info`, `thumbs`) share: the JP2 header
//! index store, object keys and the IIIF request from captures (found together by
//! [`IndexedImages`]), how answers are written, and the decode → render pipeline.

pub mod answer;
pub mod defaults;
pub mod index_store;
pub mod indexed_images;
pub mod keys;
pub mod pipeline;
pub mod request;

pub use index_store::{IndexError, IndexStore, Indexed};
pub use indexed_images::{Found, IndexedImages};
