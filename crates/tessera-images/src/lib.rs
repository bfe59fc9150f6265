#![forbid(unsafe_code)]
//! Tessera's image application: IIIF image delivery, written as a plugin of the engine
//! (`tessera-proxy`) and registered through the same public API a third-party plugin uses.
//!
//! 1. **Resources**, built once per config from top-level sections ([`resources`]):
//!    `origins:` (S3 buckets and directories), `hot_cache:` (the local working set IIPImage
//!    reads) and `image_index:` (JP2 header indexes).
//! 2. **Handlers** ([`handlers`]): `orchestrate` (copy to the hot cache once, then IIPImage),
//!    `byte_range` (small views from a few byte ranges), `info` (info.json from the index),
//!    `render` (any IIIF request decoded in process) and `thumbs` (pre-made derivatives).
//! 3. **A filter**, [`auth`]: a bearer-token or cookie check whose [`auth::Authorised`] mark
//!    the `thumbs` handler's auth-only sizes need.
//!
//! The engine knows none of this: [`register`] adds it to a [`Builder`], and the `tessera`
//! binary calls it. Why a separate crate: if these handlers could not be written as plugins,
//! neither could anyone else's; keeping them apart keeps the plugin API honest.
//!
//! ```
//! let builder = tessera_images::register(tessera_proxy::Builder::with_builtins());
//! assert!(builder.registry().handler_names().contains(&"orchestrate"));
//! assert!(builder.registry().resource_sections().contains(&"hot_cache"));
//! ```

pub mod auth;
pub mod format;
pub mod handlers;
pub mod imaging;
pub mod metrics;
pub mod names;
pub mod resources;
pub mod thumbs;

use handlers::{byte_range, info, orchestrate, render, thumbs as thumbs_handler, viewer};
use resources::{HotCacheSection, ImageIndex, Origins};
use tessera_proxy::Builder;

/// Add the image application to `builder`: its resources (`origins`, `hot_cache`,
/// `image_index`, built in that order), the `auth` filter and the five image handlers.
pub fn register(builder: Builder) -> Builder {
    resources::init_metrics();
    metrics::init_metrics();
    builder
        .resource("origins", Origins::build)
        .resource("hot_cache", HotCacheSection::build)
        .resource("image_index", ImageIndex::build)
        .filter("auth", auth::Auth::build)
        .handler("orchestrate", orchestrate::Orchestrate::build)
        .handler("byte_range", byte_range::ByteRange::build)
        .handler("info", info::Info::build)
        .handler("render", render::Render::build)
        .handler("thumbs", thumbs_handler::Thumbs::build)
        .handler("viewer", viewer::Viewer::build)
}

#[cfg(test)]
mod trace_phase_tests {
    /// The origins' `fetch` spans are exported with the engine's phases only if both say the
    /// same target.
    #[test]
    fn origins_fetch_spans_have_the_engines_phase_target() {
        assert_eq!(tessera_origin::TRACE_PHASE, tessera_proxy::traces::PHASE);
    }
}
