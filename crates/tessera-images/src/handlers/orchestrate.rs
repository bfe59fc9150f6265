//! `orchestrate`: make sure the image is in the hot cache, then send the request to the image
//! server with the path rewritten to the local file.
//!
//! The request's life: the key is built from the route's captures (percent-decoded, checked, so
//! no spelling of an identifier can leave the key space) → the hot cache copies the object once,
//! however many requests wait for it → the lease goes into the request's extensions, so the file
//! stays pinned until the response is finished → the cluster answers at `upstream_path`, with
//! `{local_path}` standing for the file.

use crate::imaging::keys::KeyTemplate;
use crate::imaging::Failure;
use crate::names::{image_base, info_base};
use crate::resources::{HotCacheSection, HotCacheSlot, Origins};
use async_trait::async_trait;
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use tessera_hotcache::Lease;
use tessera_origin::Origin;
use tessera_proxy::cluster::Cluster;
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheName, Handler, HandlerAction, HttpError, RequestContext,
    RequestInfo, UpstreamTarget,
};
use tessera_proxy::safety::has_dot_segment;
use tessera_proxy::template::Template;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrchestrateConfig {
    /// The origin (under `origins:`) the images are copied from.
    pub origin: String,
    /// The object key, from the route's captures, e.g. `{customer}/{space}/{image}`. Captures
    /// are percent-decoded; one that could leave the key space (`..`, a leading `/`, NUL) is
    /// refused with 400 before any I/O.
    pub key: String,
    /// The image server cluster.
    pub cluster: String,
    /// The path and query sent to the image server. `{local_path}` is the absolute path of the
    /// file in the hot cache, e.g. `/fcgi-bin/iipsrv.fcgi?IIIF={local_path}/{iiif}`.
    pub upstream_path: String,
    /// The local file's suffix, which tells IIPImage the format.
    #[serde(default = "default_suffix")]
    pub local_suffix: String,
}

fn default_suffix() -> String {
    ".jp2".into()
}

/// Held in the request's extensions until the request is over: the file stays pinned.
#[derive(Clone)]
pub struct HotCacheLease(pub Lease);

pub struct Orchestrate {
    origin: Arc<dyn Origin>,
    key: KeyTemplate,
    cache: Arc<HotCacheSlot>,
    cluster: Arc<Cluster>,
    upstream_path: Template,
    suffix: String,
}

impl Orchestrate {
    pub fn build(cfg: OrchestrateConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let origin = ctx
            .resource::<Origins>()?
            .get(&cfg.origin)
            .map_err(|e| e.at("origin"))?;
        let cache = ctx.resource::<HotCacheSection>()?.slot()?;
        let cluster = ctx.cluster(&cfg.cluster).map_err(|e| e.at("cluster"))?;
        let key = KeyTemplate::build(&cfg.key, ctx).map_err(|e| e.at("key"))?;
        let upstream_path = Template::parse(&cfg.upstream_path)
            .map_err(|e| BuildError::new(e).at("upstream_path"))?;
        if ctx.captures.contains("local_path") {
            return Err(BuildError::new(
                "the route captures {local_path}, the name orchestrate gives the cached file's path; rename the capture",
            ));
        }
        let mut names = ctx.captures.clone();
        names.insert("local_path".into());
        upstream_path
            .check(&names)
            .map_err(|e| BuildError::new(e).at("upstream_path"))?;
        if !cfg.upstream_path.starts_with('/') {
            return Err(BuildError::new("upstream_path must start with '/'").at("upstream_path"));
        }
        if !upstream_path.captures().any(|c| c == "local_path") {
            return Err(BuildError::new(
                "upstream_path must use {local_path}, or the image server never sees the cached file",
            )
            .at("upstream_path"));
        }
        if cfg.local_suffix.contains(['/', '?', '&', '%', '#']) {
            return Err(
                BuildError::new("local_suffix must be a plain file suffix such as .jp2")
                    .at("local_suffix"),
            );
        }
        Ok(Self {
            origin,
            key,
            cache,
            cluster,
            upstream_path,
            suffix: cfg.local_suffix,
        })
    }
}

#[async_trait]
impl Handler for Orchestrate {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        // Captures that land in the image server's path must not walk out of the cached file.
        if self
            .upstream_path
            .captures()
            .filter(|c| *c != "local_path")
            .any(|name| req.captures.get(name).is_some_and(has_dot_segment))
        {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                "'.' and '..' path segments are not allowed here",
            ));
        }
        let key = self.key.key(req.captures)?;
        let lease = self
            .cache
            .lease(&self.origin, &key, &self.suffix)
            .await
            .map_err(|e| Failure::Copy(e).answer(&self.origin.describe(), &key))?;

        let mut captures = req.captures.clone();
        captures.push("local_path", &lease.path().to_string_lossy());
        let path_and_query = self.upstream_path.render(&captures);
        req.extensions.insert(HotCacheLease(lease));

        // IIPImage names the image in info.json after the URL it was asked; tell it the public
        // one, not the local file's.
        let path = req.header.uri.path().to_string();
        if let Some(base) = path.strip_suffix("/info.json") {
            let id = format!("{}{base}", req.public_base);
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                req.header.insert_header("x-iiif-id", v).ok();
            }
        }
        Ok(HandlerAction::Upstream(UpstreamTarget {
            cluster: self.cluster.clone(),
            path_and_query: Some(path_and_query),
            host: None,
        }))
    }

    /// The request as sent (IIPImage's info.json `id` depends on the host), about its image.
    async fn cache_name(&self, req: &RequestInfo<'_>) -> Option<CacheName> {
        let path = req.header.uri.path();
        let base = if path.ends_with("/info.json") {
            Some(info_base(path))
        } else {
            image_base(path)
        };
        Some(CacheName::of_request_about(req, base))
    }
}
