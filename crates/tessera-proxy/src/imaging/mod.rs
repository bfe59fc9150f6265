//! What the IIIF image handlers (`byte_range`, `info`) share: the JP2 header index store, object
//! keys from captures, the IIIF request from captures, and the decode → render pipeline.

pub mod answer;
pub mod defaults;
pub mod index_store;
pub mod keys;
pub mod pipeline;
pub mod request;

pub use index_store::{IndexError, IndexStore};
