//! `rate_limit`: refuse requests over a rate with 429, counting per client IP or per key built
//! from the route's captures (e.g. per image). Counting uses pingora-limits' `Rate`, a lock-free
//! estimator over fixed windows: cheap per request, approximate at window edges.
//! Counters belong to the filter instance, so a config reload starts them afresh.

use crate::config::RatePerWindow;
use crate::plugin::{
    BuildContext, BuildError, Filter, Flow, HttpError, LocalResponse, RequestContext,
};
use crate::template::Template;
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use pingora_limits::rate::Rate;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Limit per client IP address, e.g. `200/s`.
    #[serde(default)]
    pub per_ip: Option<RatePerWindow>,
    /// Limit per key: `{ key: "{image}", limit: 50/s }`.
    #[serde(default)]
    pub per_key: Option<PerKey>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PerKey {
    /// A template over the route's captures.
    pub key: String,
    pub limit: RatePerWindow,
}

enum Key {
    ClientIp,
    Template(Template),
}

pub struct RateLimit {
    key: Key,
    limit: u64,
    rate: Rate,
    retry_after: HeaderValue,
}

impl RateLimit {
    pub fn build(cfg: RateLimitConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let (key, limit) = match (cfg.per_ip, cfg.per_key) {
            (Some(rate), None) => (Key::ClientIp, rate),
            (None, Some(pk)) => (
                Key::Template(
                    ctx.template(&pk.key)
                        .map_err(|e| e.at("key").at("per_key"))?,
                ),
                pk.limit,
            ),
            _ => return Err(BuildError::new("give exactly one of per_ip or per_key")),
        };
        Ok(Self {
            key,
            limit: limit.limit,
            rate: Rate::new(limit.window),
            retry_after: HeaderValue::from(limit.window.as_secs().max(1)),
        })
    }
}

#[async_trait]
impl Filter for RateLimit {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        let key = match &self.key {
            Key::ClientIp => req.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            Key::Template(t) => t.render(req.captures),
        };
        let seen = self.rate.observe(&key, 1);
        if seen > self.limit as isize {
            return Ok(Flow::Respond(
                LocalResponse::text(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
                    .with_header(http::header::RETRY_AFTER, self.retry_after.clone()),
            ));
        }
        Ok(Flow::Continue)
    }
}
