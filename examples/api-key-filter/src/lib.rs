#![forbid(unsafe_code)]
//! An example Tessera plugin: the `api_key` filter, and the shared key list it may use.
//!
//! Requests must carry one of the configured keys in a header (default `x-api-key`), or they
//! are answered with 401 before the handler runs. Responses get an `x-api-key-checked` header.
//! The keys are the filter's own (`{ api_key: { keys: [...] } }`), or, for a filter written
//! without any, the list every route shares: the top-level section `api_keys: { keys: [...] }`,
//! a shared **resource** ([`ApiKeys`]) built once per config.
//! Everything a plugin needs comes from `tessera_proxy`: the [`Filter`] trait and [`Resource`],
//! the config types (serde + JsonSchema), and the `Builder` that registers the factories.

use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use tessera_proxy::pingora::http::ResponseHeader;
use tessera_proxy::plugin::{
    BuildContext, BuildError, BuildErrors, Filter, Flow, HttpError, LocalResponse, RequestContext,
    RequestInfo, Resource, ResourceContext,
};

/// The top-level section `api_keys: { keys: [...] }`: keys every `api_key` filter without keys
/// of its own accepts.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    pub keys: Vec<String>,
}

/// The shared key list, built once per config (empty when the section is absent).
#[derive(Default)]
pub struct ApiKeys {
    keys: HashSet<String>,
}

impl Resource for ApiKeys {}

impl ApiKeys {
    pub fn build(
        cfg: Option<ApiKeysConfig>,
        _ctx: &ResourceContext<'_, ApiKeys>,
    ) -> Result<Self, BuildErrors> {
        let Some(cfg) = cfg else {
            return Ok(Self::default());
        };
        if cfg.keys.is_empty() {
            return Err(BuildError::new("give at least one key").at("keys").into());
        }
        Ok(Self {
            keys: cfg.keys.into_iter().collect(),
        })
    }
}

/// The filter's YAML: `{ api_key: { keys: [...], header: x-api-key } }`, or `api_key` alone
/// for the shared keys.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Accepted keys; default: the top-level `api_keys:`.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// The request header that carries the key.
    #[serde(default = "default_header")]
    pub header: String,
}

fn default_header() -> String {
    "x-api-key".into()
}

pub struct ApiKey {
    keys: Keys,
    header: HeaderName,
}

/// The filter's own keys, or the shared ones.
enum Keys {
    Own(HashSet<String>),
    Shared(Arc<ApiKeys>),
}

impl Keys {
    fn contains(&self, key: &str) -> bool {
        match self {
            Keys::Own(keys) => keys.contains(key),
            Keys::Shared(shared) => shared.keys.contains(key),
        }
    }
}

impl ApiKey {
    /// The factory: check the config once, when it is loaded.
    pub fn build(cfg: ApiKeyConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let keys = match cfg.keys {
            Some(own) if own.is_empty() => {
                return Err(BuildError::new("give at least one key").at("keys"))
            }
            Some(own) => Keys::Own(own.into_iter().collect()),
            None => {
                let shared = ctx.resource::<ApiKeys>()?;
                if shared.keys.is_empty() {
                    return Err(BuildError::new(
                        "give at least one key, here or in a top-level `api_keys:`",
                    ));
                }
                Keys::Shared(shared)
            }
        };
        let header = HeaderName::from_bytes(cfg.header.as_bytes()).map_err(|_| {
            BuildError::new(format!("{:?} is not a header name", cfg.header)).at("header")
        })?;
        Ok(Self { keys, header })
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

/// Tessera's built-ins and image handlers, plus this crate's resource and filter.
pub fn builder() -> tessera_proxy::Builder {
    tessera::builder()
        .resource("api_keys", ApiKeys::build)
        .filter("api_key", ApiKey::build)
}
