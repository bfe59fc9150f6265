#![forbid(unsafe_code)]
//! An example Tessera plugin: the `api_key` filter.
//!
//! Requests must carry one of the configured keys in a header (default `x-api-key`), or they
//! are answered with 401 before the handler runs. Responses get an `x-api-key-checked` header.
//! Everything a plugin needs comes from `tessera_proxy`: the [`Filter`] trait, the config
//! types (serde + JsonSchema), and the `Builder` that registers the factory.

use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashSet;
use tessera_proxy::pingora::http::ResponseHeader;
use tessera_proxy::plugin::{
    BuildContext, BuildError, Filter, Flow, HttpError, LocalResponse, RequestContext, RequestInfo,
};

/// The filter's YAML: `{ api_key: { keys: [...], header: x-api-key } }`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Accepted keys.
    pub keys: Vec<String>,
    /// The request header that carries the key.
    #[serde(default = "default_header")]
    pub header: String,
}

fn default_header() -> String {
    "x-api-key".into()
}

pub struct ApiKey {
    keys: HashSet<String>,
    header: HeaderName,
}

impl ApiKey {
    /// The factory: check the config once, when it is loaded.
    pub fn build(cfg: ApiKeyConfig, _ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        if cfg.keys.is_empty() {
            return Err(BuildError::new("give at least one key").at("keys"));
        }
        let header = HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
            BuildError::new(format!("{:?} is not a header name", cfg.header)).at("header")
        })?;
        Ok(Self {
            keys: cfg.keys.into_iter().collect(),
            header,
        })
    }
}

#[tessera_proxy::async_trait]
impl Filter for ApiKey {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        let given = req
            .header
            .headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok());
        match given {
            Some(key) if self.keys.contains(key) => {
                // Do not forward the secret upstream.
                req.header.remove_header(&self.header);
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Respond(
                LocalResponse::text(StatusCode::UNAUTHORIZED, "a valid API key is required")
                    .with_header(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("ApiKey"),
                    ),
            )),
        }
    }

    fn response(&self, _req: &RequestInfo<'_>, resp: &mut ResponseHeader) {
        let _ = resp.insert_header("x-api-key-checked", "1");
    }
}

/// Tessera's built-ins and image handlers, plus this crate's filter.
pub fn builder() -> tessera_proxy::Builder {
    tessera::builder().filter("api_key", ApiKey::build)
}
