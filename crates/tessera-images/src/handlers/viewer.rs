//! `viewer`: a page to look at the images, built into the binary. Three routes share it:
//!
//! 1. `show: gallery` (at `/`): every image of `origin` with a thumbnail, each a link to
//! 2. `show: image` (at `/view/{image}`): the image in OpenSeadragon, which asks the IIIF
//!    routes under `iiif` for info.json and tiles like any viewer would;
//! 3. `show: assets` (at `/viewer/{file*}`): OpenSeadragon itself, its button images and its
//!    licence, embedded in the binary so that the page needs no CDN and works offline.
//!
//! OpenSeadragon 5.0.1 (BSD-3-Clause, `assets/openseadragon/LICENSE.txt`) is pinned: the files
//! are those of its npm package, unchanged. The gallery lists the origin on each request,
//! which suits a folder (`tessera serve DIR`), not a bucket of millions of masters.

use crate::resources::Origins;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use include_dir::{include_dir, Dir};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use schemars::JsonSchema;
use serde::Deserialize;
use std::sync::Arc;
use tessera_origin::Origin;
use tessera_proxy::plugin::{
    BuildContext, BuildError, Handler, HandlerAction, HttpError, LocalResponse, RequestContext,
};

static ASSETS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/assets/openseadragon");
const GALLERY: &str = include_str!("../viewer/gallery.html");
const IMAGE: &str = include_str!("../viewer/image.html");

/// What an identifier keeps unescaped in a URL path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// More images than this are not listed on one page.
const MAX_LISTED: usize = 2000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewerConfig {
    /// What this route shows: `gallery`, `image` (needs an `{image}` capture) or `assets`
    /// (needs a `{file*}` capture).
    pub show: Show,
    /// The origin whose images the gallery lists.
    #[serde(default)]
    pub origin: Option<String>,
    /// The gallery lists the keys that end with one of these (case-insensitive).
    #[serde(default = "default_suffixes")]
    pub suffixes: Vec<String>,
    /// The IIIF identifier is the key without its suffix (the routes' `key` adds it back);
    /// `false` keeps the whole key (`photo.jpg`), for routes whose `key` is `{image}`.
    #[serde(default = "yes")]
    pub strip_suffix: bool,
    /// Where the IIIF routes are: an image's info.json is `{iiif}/{identifier}/info.json`.
    #[serde(default = "default_iiif")]
    pub iiif: String,
    /// Where the `image` pages are: `{pages}/{identifier}`.
    #[serde(default = "default_pages")]
    pub pages: String,
    /// Where the `assets` route is.
    #[serde(default = "default_assets")]
    pub assets: String,
    /// The page title.
    #[serde(default = "default_title")]
    pub title: String,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Show {
    Gallery,
    Image,
    Assets,
}

fn default_suffixes() -> Vec<String> {
    vec![".jp2".into()]
}
fn yes() -> bool {
    true
}
fn default_iiif() -> String {
    "/iiif".into()
}
fn default_pages() -> String {
    "/view".into()
}
fn default_assets() -> String {
    "/viewer".into()
}
fn default_title() -> String {
    "Tessera".into()
}

pub struct Viewer {
    show: Show,
    origin: Option<Arc<dyn Origin>>,
    suffixes: Vec<String>,
    strip_suffix: bool,
    iiif: String,
    pages: String,
    assets: String,
    title: String,
}

impl Viewer {
    pub fn build(cfg: ViewerConfig, ctx: &BuildContext<'_>) -> Result<Self, BuildError> {
        let origin = match (&cfg.origin, cfg.show) {
            (Some(name), _) => Some(
                ctx.resource::<Origins>()?
                    .get(name)
                    .map_err(|e| e.at("origin"))?,
            ),
            (None, Show::Gallery) => {
                return Err(BuildError::new("a gallery needs the `origin` it lists").at("origin"))
            }
            (None, _) => None,
        };
        let needs = match cfg.show {
            Show::Image => Some("image"),
            Show::Assets => Some("file"),
            Show::Gallery => None,
        };
        if let Some(capture) = needs {
            if !ctx.captures.contains(capture) {
                return Err(BuildError::new(format!(
                    "`show: {:?}` needs a `{{{capture}}}` capture in the route's path",
                    cfg.show
                ))
                .at("show"));
            }
        }
        let path = |text: &str, at: &str| {
            if text.starts_with('/') && !text.contains(['"', '<', '>', '\'', ' ']) {
                Ok(text.trim_end_matches('/').to_string())
            } else {
                Err(BuildError::new("must be a path starting with /").at(at))
            }
        };
        Ok(Self {
            show: cfg.show,
            origin,
            suffixes: cfg
                .suffixes
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            strip_suffix: cfg.strip_suffix,
            iiif: path(&cfg.iiif, "iiif")?,
            pages: path(&cfg.pages, "pages")?,
            assets: path(&cfg.assets, "assets")?,
            title: cfg.title,
        })
    }
}

#[async_trait]
impl Handler for Viewer {
    async fn handle(&self, req: &mut RequestContext<'_>) -> Result<HandlerAction, HttpError> {
        let answer = match self.show {
            Show::Gallery => self.gallery().await?,
            Show::Image => self.image_page(req.captures.get("image").unwrap_or_default()),
            Show::Assets => asset(req.captures.get("file").unwrap_or_default())?,
        };
        Ok(HandlerAction::Respond(answer))
    }
}

impl Viewer {
    async fn gallery(&self) -> Result<LocalResponse, HttpError> {
        let Some(origin) = &self.origin else {
            return Err(HttpError::new(StatusCode::NOT_FOUND, "no gallery here"));
        };
        let keys = origin.list("").await.map_err(|e| {
            tracing::warn!(origin = %origin.describe(), error = %e, "viewer: cannot list the images");
            HttpError::new(StatusCode::BAD_GATEWAY, "the images cannot be listed")
        })?;
        let mut images = Vec::new();
        let mut others = 0usize;
        for key in keys.iter().filter(|k| !k.contains('/')) {
            match self.suffix_of(key) {
                Some(len) => images.push((key, len)),
                None => others += 1,
            }
        }
        let items: String = images
            .iter()
            .take(MAX_LISTED)
            .map(|(key, suffix_len)| {
                let id = match self.strip_suffix {
                    true => &key[..key.len() - suffix_len],
                    false => key.as_str(),
                };
                let url_id = utf8_percent_encode(id, SEGMENT).to_string();
                format!(
                    "<li><a href=\"{pages}/{url_id}\"><img loading=\"lazy\" alt=\"\" src=\"{iiif}/{url_id}/full/!200,200/0/default.jpg\"><span>{name}</span></a></li>\n",
                    pages = self.pages,
                    iiif = self.iiif,
                    name = html_escape(id),
                )
            })
            .collect();
        let kinds = self.suffixes.join(", ");
        let mut summary = match images.len() {
            0 => format!("No images here: put image files ({kinds}) in the folder."),
            1 => "1 image.".to_string(),
            n if n > MAX_LISTED => format!("{n} images; the first {MAX_LISTED} are listed."),
            n => format!("{n} images."),
        };
        if others > 0 {
            summary.push_str(&format!(
                " {others} other files are not shown: only images ({kinds}) at the top of the folder are served."
            ));
        }
        let page = GALLERY
            .replace("{title}", &html_escape(&self.title))
            .replace("{summary}", &html_escape(&summary))
            .replace("{items}", &items);
        Ok(html(page))
    }

    /// The length of the listed suffix `key` ends with, if any.
    fn suffix_of(&self, key: &str) -> Option<usize> {
        let lower = key.to_ascii_lowercase();
        self.suffixes
            .iter()
            .find(|s| lower.ends_with(s.as_str()) && lower.len() > s.len())
            .map(String::len)
    }

    fn image_page(&self, raw_id: &str) -> LocalResponse {
        // The capture is as the client sent it (percent-encoded): decode for the title, encode
        // again for URLs, so that nothing in the page comes from the request unescaped.
        let id = percent_encoding::percent_decode_str(raw_id).decode_utf8_lossy();
        let url_id = utf8_percent_encode(&id, SEGMENT).to_string();
        let page = IMAGE
            .replace("{title}", &html_escape(&id))
            .replace("{info}", &format!("{}/{url_id}/info.json", self.iiif))
            .replace("{assets}", &self.assets);
        html(page)
    }
}

fn html(page: String) -> LocalResponse {
    LocalResponse::new(StatusCode::OK)
        .with_body("text/html; charset=utf-8", Bytes::from(page))
        .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
}

/// One of OpenSeadragon's files, by its path under the assets route.
fn asset(path: &str) -> Result<LocalResponse, HttpError> {
    let file = ASSETS
        .get_file(path)
        .filter(|_| !path.contains(".."))
        .ok_or_else(|| HttpError::new(StatusCode::NOT_FOUND, "no such viewer file"))?;
    let content_type = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    };
    Ok(LocalResponse::new(StatusCode::OK)
        .with_body(content_type, Bytes::from_static(file.contents()))
        .with_header(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        ))
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_files_are_embedded() {
        assert!(asset("openseadragon.min.js").is_ok());
        assert!(asset("images/zoomin_rest.png").is_ok());
        assert!(asset("LICENSE.txt").is_ok());
        assert!(asset("../Cargo.toml").is_err());
        assert!(asset("nothing.js").is_err());
    }

    #[test]
    fn names_from_requests_are_escaped() {
        assert_eq!(
            html_escape("<script>\"a\" & 'b'"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;"
        );
        let viewer = Viewer {
            show: Show::Image,
            origin: None,
            suffixes: vec![".jp2".into()],
            strip_suffix: true,
            iiif: "/iiif".into(),
            pages: "/view".into(),
            assets: "/viewer".into(),
            title: "t".into(),
        };
        let page = viewer.image_page("a%22%3E%3Cscript%3E");
        let body = String::from_utf8_lossy(&page.body).into_owned();
        assert!(!body.contains("\"><script>"), "{body}");
        assert!(
            body.contains("/iiif/a%22%3E%3Cscript%3E/info.json"),
            "{body}"
        );
    }
}
