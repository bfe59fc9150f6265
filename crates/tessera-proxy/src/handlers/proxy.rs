//! `proxy`: send the request to a cluster, optionally rewriting its path and Host header.

use crate::captures::Captures;
use crate::cluster::Cluster;
use crate::plugin::{
    BuildContext, BuildError, Handler, HandlerAction, HttpError, RequestContext, UpstreamTarget,
};
use crate::safety::has_dot_segment;
use crate::template::Template;
use async_trait::async_trait;
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The cluster to send requests to.
    pub cluster: String,
    /// Replace the path and query sent upstream with this template, e.g.
    /// `/fcgi-bin/iipsrv.fcgi?IIIF={image}/{iiif}`. Default: forward them unchanged.
    #[serde(default)]
    pub path: Option<String>,
    /// Replace the Host header sent upstream.
    #[serde(default)]
    pub host: Option<String>,
}

pub struct Proxy {
    cluster: Arc<Cluster>,
    path: Option<Template>,
    host: Option<String>,
}

impl Proxy {
    pub fn build(cfg: ProxyConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let cluster = ctx.cluster(&cfg.cluster).map_err(|e| e.at("cluster"))?;
        let path = match &cfg.path {
            Some(p) => {
                let t = ctx.template(p).map_err(|e| e.at("path"))?;
                if !t.source().starts_with('/') {
                    return Err(
                        BuildError::new("the rewritten path must start with '/'").at("path")
                    );
                }
                let mut sample = Captures::default();
                for name in t.captures() {
                    sample.push(name, "x");
                }
                if t.render(&sample).parse::<http::Uri>().is_err() {
                    return Err(
                        BuildError::new(format!("{p:?} does not make a valid path")).at("path")
                    );
                }
                Some(t)
            }
            None => None,
        };
        if let Some(h) = &cfg.host {
            http::HeaderValue::from_str(h).map_err(|_| {
                BuildError::new(format!("{h:?} is not a valid Host header")).at("host")
            })?;
        }
        Ok(Self {
            cluster,
            path,
            host: cfg.host,
        })
    }
}

#[async_trait]
impl Handler for Proxy {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        if let Some(t) = &self.path {
            // A rewrite moves the request into a path space of our choosing; `..` in a capture
            // would let the client walk out of it.
            if t.captures()
                .any(|name| req.captures.get(name).is_some_and(has_dot_segment))
            {
                return Err(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    "'.' and '..' path segments are not allowed here",
                ));
            }
        }
        Ok(HandlerAction::Upstream(UpstreamTarget {
            cluster: self.cluster.clone(),
            path_and_query: self.path.as_ref().map(|t| t.render(req.captures)),
            host: self.host.clone(),
        }))
    }
}
