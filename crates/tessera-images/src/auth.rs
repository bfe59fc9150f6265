//! `auth`: a simple bearer-token or cookie check that marks the request as [`Authorised`], for
//! content that only some clients may see, such as the `thumbs` handler's auth-only sizes.
//! With `required: true` it also refuses unauthorised requests with 401; otherwise it only
//! marks, and handlers decide. A marked request is also a [`CacheVariant`] of its own, so the
//! response cache never gives its answers to a request that is not.
//!
//! Tokens are compared as SHA-256 digests, in constant time, so neither timing nor the token's
//! length leaks through the comparison.

use async_trait::async_trait;
use http::{header, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tessera_proxy::plugin::{
    BuildContext, BuildError, CacheVariant, Filter, Flow, HttpError, LocalResponse, RequestContext,
};

/// The mark a filter leaves in [`RequestContext::extensions`] when it has authenticated the
/// request. Handlers that hold access-controlled content (the `thumbs` handler's auth-only
/// sizes) serve it only when the mark is there. The `auth` filter sets it; a plugin's own
/// filter (OAuth, signed cookies, IIIF Auth) sets it the same way — with a [`CacheVariant`]
/// beside it, as [`Authorised::mark`] does.
#[derive(Clone, Debug)]
pub struct Authorised {
    /// Who or what vouched for the request, for logs (e.g. `bearer`, `cookie`).
    pub by: String,
}

impl Authorised {
    /// Mark `req` as authorised by `by`, and keep its cached answers apart.
    pub fn mark(req: &mut RequestContext<'_>, by: &str) {
        req.extensions.insert(Authorised { by: by.into() });
        req.extensions
            .insert(CacheVariant("authorised".to_string()));
    }

    /// Whether `extensions` carry the mark.
    pub fn is_on(extensions: &http::Extensions) -> bool {
        extensions.get::<Authorised>().is_some()
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens that authorise a request.
    pub tokens: Vec<String>,
    /// Also accept a token as the value of this cookie (besides `Authorization: Bearer`).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Refuse requests without a valid token (401) instead of only marking those with one.
    #[serde(default)]
    pub required: bool,
}

pub struct Auth {
    digests: Vec<[u8; 32]>,
    cookie: Option<String>,
    required: bool,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    pub fn build(cfg: AuthConfig, _ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        if cfg.tokens.is_empty() {
            return Err(BuildError::new("give at least one token").at("tokens"));
        }
        if let Some(i) = cfg.tokens.iter().position(|t| t.len() < 16) {
            return Err(BuildError::new("tokens must be at least 16 characters")
                .at(&i.to_string())
                .at("tokens"));
        }
        if cfg.cookie.as_deref() == Some("") {
            return Err(BuildError::new("an empty cookie name").at("cookie"));
        }
        Ok(Self {
            digests: cfg.tokens.iter().map(|t| digest(t)).collect(),
            cookie: cfg.cookie,
            required: cfg.required,
        })
    }

    fn accepts(&self, token: &str) -> bool {
        let d = digest(token);
        // Every digest is compared in full, whichever matches.
        self.digests.iter().fold(false, |found, known| {
            found
                | (known
                    .iter()
                    .zip(d.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0)
        })
    }

    /// How the request proved itself, if it did.
    fn check(&self, req: &RequestContext<'_>) -> Option<&'static str> {
        let bearer = req
            .header_str("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if bearer.is_some_and(|t| self.accepts(t)) {
            return Some("bearer");
        }
        let name = self.cookie.as_deref()?;
        let cookies = req.header.headers.get_all(header::COOKIE);
        let found = cookies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == name && self.accepts(v));
        found.then_some("cookie")
    }
}

#[async_trait]
impl Filter for Auth {
    async fn request(&self, req: &mut RequestContext<'_>) -> Result<Flow, HttpError> {
        match self.check(req) {
            Some(by) => {
                Authorised::mark(req, by);
                Ok(Flow::Continue)
            }
            None if self.required => Ok(Flow::Respond(
                LocalResponse::text(StatusCode::UNAUTHORIZED, "authorisation required")
                    .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            )),
            None => Ok(Flow::Continue),
        }
    }
}
