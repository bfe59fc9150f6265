//! `redirect`: answer with a redirect to a location built from the route's captures.

use crate::plugin::{
    BuildContext, BuildError, Handler, HandlerAction, HttpError, LocalResponse, RequestContext,
};
use crate::template::Template;
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// Where to send the client; a template over the route's captures.
    pub location: String,
    /// 301, 302, 303, 307 or 308; default 302.
    #[serde(default = "default_status")]
    pub status: u16,
}

fn default_status() -> u16 {
    302
}

pub struct Redirect {
    location: Template,
    status: StatusCode,
}

impl Redirect {
    pub fn build(cfg: RedirectConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        if ![301, 302, 303, 307, 308].contains(&cfg.status) {
            return Err(BuildError::new(format!(
                "{} is not a redirect status (301, 302, 303, 307, 308)",
                cfg.status
            ))
            .at("status"));
        }
        let location = ctx.template(&cfg.location).map_err(|e| e.at("location"))?;
        let status = StatusCode::from_u16(cfg.status)
            .map_err(|e| BuildError::new(e.to_string()).at("status"))?;
        Ok(Self { location, status })
    }
}

#[async_trait]
impl Handler for Redirect {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let mut location = self.location.render(req.captures);
        let source = self.location.source();
        if source.starts_with('/') && !source.starts_with("//") {
            // A local redirect must stay local: `//evil.example` (or `/\evil.example`) would
            // send the browser to another host.
            let rest = location.trim_start_matches(['/', '\\']).to_string();
            location = format!("/{rest}");
        }
        let value = HeaderValue::from_str(&location).map_err(|_| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "the redirect location would not be a valid header",
            )
        })?;
        Ok(HandlerAction::Respond(
            LocalResponse::text(self.status, &location).with_header(http::header::LOCATION, value),
        ))
    }
}
