//! `cors`: Cross-Origin Resource Sharing. Answers preflight (`OPTIONS` with
//! `Access-Control-Request-Method`) itself with 204, and adds `Access-Control-Allow-Origin` to
//! responses for allowed origins, error answers included (a viewer that cannot read a 404
//! reports a CORS failure instead). IIIF viewers load images cross-origin, so most image
//! routes want this with the defaults (any origin, GET/HEAD/OPTIONS). A route with `cors`
//! takes the preflights for its paths even when its `match.methods` leave out `OPTIONS`.

use crate::config::Dur;
use crate::plugin::{
    BuildContext, BuildError, Filter, Flow, HttpError, LocalResponse, RequestContext, RequestInfo,
};
use async_trait::async_trait;
use http::{header, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins, exact (`https://viewer.example.org`), or `*` for any.
    #[serde(default = "any_origin")]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for.
    #[serde(default = "default_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for; `*` for any.
    #[serde(default = "any_origin")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may expose to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Allow cookies and credentials (the origin is then echoed, never `*`).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(default = "default_max_age")]
    pub max_age: Dur,
}

fn any_origin() -> Vec<String> {
    vec!["*".into()]
}

fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "OPTIONS".into()]
}

fn default_max_age() -> Dur {
    Dur::secs(86400)
}

pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

fn join(list: &[String], at: &str) -> Result<HeaderValue, BuildError> {
    HeaderValue::from_str(&list.join(", "))
        .map_err(|_| BuildError::new("not a valid header value").at(at))
}

impl Cors {
    pub fn build(cfg: CorsConfig, _ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let any_origin = cfg.allow_origins.iter().any(|o| o == "*");
        if any_origin && cfg.allow_credentials {
            return Err(BuildError::new(
                "allow_credentials needs an explicit allow_origins list: with \"*\" every site could read credentialed responses",
            )
            .at("allow_credentials"));
        }
        Ok(Self {
            any_origin,
            origins: cfg
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
            methods: join(&cfg.allow_methods, "allow_methods")?,
            headers: if cfg.allow_headers.iter().any(|h| h == "*") {
                None
            } else {
                Some(join(&cfg.allow_headers, "allow_headers")?)
            },
            expose: if cfg.expose_headers.is_empty() {
                None
            } else {
                Some(join(&cfg.expose_headers, "expose_headers")?)
            },
            credentials: cfg.allow_credentials,
            max_age: HeaderValue::from(cfg.max_age.0.as_secs()),
        })
    }

    /// The value of Access-Control-Allow-Origin for this request's Origin, if it is allowed.
    fn allow_origin(&self, origin: Option<&str>) -> Option<HeaderValue> {
        let origin = origin?;
        if self.any_origin {
            return Some(HeaderValue::from_static("*"));
        }
        if self.origins.iter().any(|o| o == origin) {
            return HeaderValue::from_str(origin).ok();
        }
        None
    }

    fn origin_headers(&self, allow: HeaderValue) -> Vec<(header::HeaderName, HeaderValue)> {
        let echoed = allow != "*";
        let mut out = vec![(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow)];
        if self.credentials {
            out.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if echoed {
            out.push((header::VARY, HeaderValue::from_static("Origin")));
        }
        out
    }
}

#[async_trait]
impl Filter for Cors {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        if !crate::route::is_preflight(req.header) {
            return Ok(Flow::Continue);
        }
        let Some(allow) = self.allow_origin(req.header_str("origin")) else {
            return Ok(Flow::Respond(LocalResponse::text(
                StatusCode::FORBIDDEN,
                "origin not allowed",
            )));
        };
        let mut resp = LocalResponse::new(StatusCode::NO_CONTENT);
        for (k, v) in self.origin_headers(allow) {
            resp = resp.with_header(k, v);
        }
        resp = resp
            .with_header(header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone())
            .with_header(header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        let asked = req
            .header
            .headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        match (&self.headers, asked) {
            (Some(list), _) => {
                resp = resp.with_header(header::ACCESS_CONTROL_ALLOW_HEADERS, list.clone())
            }
            (None, Some(asked)) => {
                resp = resp.with_header(header::ACCESS_CONTROL_ALLOW_HEADERS, asked)
            }
            (None, None) => {}
        }
        Ok(Flow::Respond(resp))
    }

    fn answers_preflights(&self) -> bool {
        true
    }

    fn response(&self, req: &RequestInfo<'_>, resp: &mut ResponseHeader) {
        if resp
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            return; // a preflight answer of ours, or the upstream decided
        }
        match self.allow_origin(req.header_str("origin")) {
            Some(allow) => {
                for (k, v) in self.origin_headers(allow) {
                    let _ = resp.append_header(k, v);
                }
                if let Some(expose) = &self.expose {
                    let _ =
                        resp.insert_header(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
                }
            }
            // The answer depends on Origin even when it is absent or refused: say so to caches.
            None if !self.any_origin => {
                let _ = resp.append_header(header::VARY, "Origin");
            }
            None => {}
        }
    }
}
