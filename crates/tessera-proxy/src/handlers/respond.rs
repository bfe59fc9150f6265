//! `respond`: a fixed answer (maintenance pages, robots.txt, blocking a path).

use crate::plugin::{
    BuildContext, BuildError, Handler, HandlerAction, HttpError, LocalResponse, RequestContext,
};
use crate::safety::is_framing_header;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondConfig {
    /// Status code; default 200.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response body.
    #[serde(default)]
    pub body: String,
    /// Content-Type of the body.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_status() -> u16 {
    200
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}

pub struct Respond {
    response: LocalResponse,
}

impl Respond {
    pub fn build(cfg: RespondConfig, _ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let status = StatusCode::from_u16(cfg.status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| {
                BuildError::new(format!("{} is not a final HTTP status", cfg.status)).at("status")
            })?;
        HeaderValue::from_str(&cfg.content_type)
            .map_err(|_| BuildError::new("not a valid header value").at("content_type"))?;
        if !cfg.body.is_empty()
            && (status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED)
        {
            return Err(BuildError::new(format!("a {status} response has no body")).at("body"));
        }
        let mut response =
            LocalResponse::new(status).with_body(&cfg.content_type, Bytes::from(cfg.body));
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .ok()
                .filter(|n| !is_framing_header(n))
                .ok_or_else(|| {
                    BuildError::new(format!("{k:?} is not a header name this handler may set"))
                        .at(k)
                        .at("headers")
                })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                BuildError::new(format!("{v:?} is not a valid header value")).at("headers")
            })?;
            response = response.with_header(name, value);
        }
        Ok(Self { response })
    }
}

#[async_trait]
impl Handler for Respond {
    async fn handle(&self, _req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        Ok(HandlerAction::Respond(self.response.clone()))
    }
}
