//! `image_index:`: where JP2 header indexes are kept. The store (and what it holds in memory)
//! is kept across reloads while the section is unchanged.

use super::config::ImageIndexConfig;
use super::index_store::{Declared, IndexStore};
use std::sync::Arc;
use tessera_proxy::plugin::{BuildErrors, Resource, ResourceContext};

/// The process's store of JP2 header indexes, with the config it was made from.
pub struct ImageIndex {
    pub config: ImageIndexConfig,
    pub store: Arc<IndexStore>,
}

impl Resource for ImageIndex {}

impl ImageIndex {
    pub fn build(
        config: Option<ImageIndexConfig>,
        ctx: &ResourceContext<'_, ImageIndex>,
    ) -> Result<Self, BuildErrors> {
        let mut config = config.unwrap_or_default();
        config.dir = config.dir.map(|d| ctx.resolve_path(&d));
        if let Some(previous) = ctx.previous().filter(|p| p.config == config) {
            return Ok(Self {
                config,
                store: previous.store.clone(),
            });
        }
        let store = Arc::new(IndexStore::new(
            config.memory.0,
            config.dir.as_ref().map(Into::into),
            config.first_read.0,
            config.beside_image,
            Declared {
                max_pixels: config.max_image_pixels,
                max_components: config.max_components,
            },
        ));
        Ok(Self { config, store })
    }
}
