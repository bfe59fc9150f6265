//! `headers`: set, append or remove request headers (before the upstream sees them) and response
//! headers (before the client does). Values are templates over the route's captures.

use crate::captures::Captures;
use crate::plugin::{
    BuildContext, BuildError, Filter, Flow, HttpError, RequestContext, RequestInfo,
};
use crate::safety::is_framing_header;
use crate::template::Template;
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Set (replace) these headers.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Add these values, keeping existing ones.
    #[serde(default)]
    pub append: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// Edits to the request, applied before the handler runs.
    #[serde(default)]
    pub request: HeaderEdits,
    /// Edits to the response, applied before it goes to the client.
    #[serde(default)]
    pub response: HeaderEdits,
}

struct CompiledEdits {
    set: Vec<(HeaderName, Template)>,
    append: Vec<(HeaderName, Template)>,
    remove: Vec<HeaderName>,
}

fn header_name(name: &str, at: &str) -> Result<HeaderName, BuildError> {
    let h = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| BuildError::new(format!("{name:?} is not a header name")).at(at))?;
    if is_framing_header(&h) {
        return Err(
            BuildError::new(format!("{name:?} frames the message; it cannot be edited")).at(at),
        );
    }
    Ok(h)
}

impl CompiledEdits {
    fn build(e: &HeaderEdits, ctx: &BuildContext<'_>, phase: &str) -> Result<Self, BuildError> {
        let pairs = |map: &BTreeMap<String, String>,
                     key: &str|
         -> Result<Vec<(HeaderName, Template)>, BuildError> {
            map.iter()
                .map(|(k, v)| {
                    let t = ctx.template(v).map_err(|e| e.at(k).at(key).at(phase))?;
                    Ok((header_name(k, k).map_err(|e| e.at(key).at(phase))?, t))
                })
                .collect()
        };
        Ok(Self {
            set: pairs(&e.set, "set")?,
            append: pairs(&e.append, "append")?,
            remove: e
                .remove
                .iter()
                .map(|k| header_name(k, "remove").map_err(|e| e.at(phase)))
                .collect::<Result<_, _>>()?,
        })
    }

    fn values<'a>(
        list: &'a [(HeaderName, Template)],
        captures: &'a Captures,
    ) -> impl Iterator<Item = (HeaderName, HeaderValue)> + 'a {
        list.iter().filter_map(move |(k, t)| {
            HeaderValue::from_str(&t.render(captures))
                .ok()
                .map(|v| (k.clone(), v))
        })
    }
}

pub struct Headers {
    request: CompiledEdits,
    response: CompiledEdits,
}

impl Headers {
    pub fn build(cfg: HeadersConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        Ok(Self {
            request: CompiledEdits::build(&cfg.request, ctx, "request")?,
            response: CompiledEdits::build(&cfg.response, ctx, "response")?,
        })
    }
}

#[async_trait]
impl Filter for Headers {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        let e = &self.request;
        for name in &e.remove {
            req.header.remove_header(name);
        }
        for (k, v) in CompiledEdits::values(&e.set, req.captures) {
            let _ = req.header.insert_header(k, v);
        }
        for (k, v) in CompiledEdits::values(&e.append, req.captures) {
            let _ = req.header.append_header(k, v);
        }
        Ok(Flow::Continue)
    }

    fn response(&self, req: &RequestInfo<'_>, resp: &mut ResponseHeader) {
        let e = &self.response;
        for name in &e.remove {
            resp.remove_header(name);
        }
        for (k, v) in CompiledEdits::values(&e.set, req.captures) {
            let _ = resp.insert_header(k, v);
        }
        for (k, v) in CompiledEdits::values(&e.append, req.captures) {
            let _ = resp.append_header(k, v);
        }
    }
}
