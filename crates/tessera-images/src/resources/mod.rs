//! What the image handlers share, each built once per config from a top-level section of
//! `proxy.yaml` and registered with [`tessera_proxy::Builder::resource`]:
//!
//! - `origins:` → [`Origins`], the object stores images are read from, by name;
//! - `hot_cache:` → [`HotCacheSection`], the local working set IIPImage (and `render`) reads,
//!   and [`LocalFile`], an image's file: in place for a `dir` origin, else the hot cache's copy;
//! - `image_index:` → [`ImageIndex`], the JP2 header indexes.

pub mod config;
mod hot_cache;
mod image_index;
mod index_store;
mod local_file;
mod origins;
mod prefetch;

pub(crate) fn init_metrics() {
    hot_cache::init_metrics();
    prefetch::init_metrics();
}
pub use hot_cache::{HotCacheSection, HotCacheSlot, LeaseError};
pub use image_index::ImageIndex;
pub use index_store::{beside_key, Declared, IndexError, IndexStore, Indexed};
pub use local_file::LocalFile;
pub use origins::Origins;
