//! What a cached answer is called: the name a handler gives a request, and the image it is about.

use crate::plugin::RequestInfo;

/// How the response cache names a request's answer. Requests of one route with equal names
/// get equal answers, so one stored answer serves them all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheName {
    /// What identifies the answer, e.g. `/iiif/2/1/abc/full/200,/0/default.jpg`.
    pub name: String,
    /// The IIIF base path of the image the answer shows (`/iiif/2/1/abc`), so that
    /// `purge?image=` drops every answer about it.
    pub image: Option<String>,
}

impl CacheName {
    /// The request as sent: scheme, host, path and query. Right for answers that depend on
    /// nothing else (an info.json's `id` depends on the host, for example).
    pub fn of_request(req: &RequestInfo<'_>) -> Self {
        let scheme = if req.tls { "https" } else { "http" };
        let host = crate::plugin::authority(req.header).unwrap_or("");
        let path = req
            .header
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        Self {
            name: format!("{scheme}://{host}{path}"),
            image: None,
        }
    }

    /// [`CacheName::of_request`], about the image at `base`.
    pub fn of_request_about(req: &RequestInfo<'_>, base: Option<&str>) -> Self {
        Self {
            image: base.map(str::to_string),
            ..Self::of_request(req)
        }
    }

    /// An answer about the image at IIIF base path `base`, named `answer` (e.g. its canonical
    /// IIIF request, whatever the spelling asked).
    pub fn about_image(base: &str, answer: &str) -> Self {
        Self {
            name: format!("{base}/{answer}"),
            image: Some(base.to_string()),
        }
    }
}

/// The IIIF base path of an image request's path: without its four image-request segments
/// (`region/size/rotation/quality.format`).
pub fn image_base(path: &str) -> Option<&str> {
    let mut end = path.len();
    for _ in 0..4 {
        end = path[..end].rfind('/')?;
    }
    (end > 0).then(|| &path[..end])
}

/// The IIIF base path of an info request's path: without `/info.json`, or the path itself
/// (a base URI, which is redirected to its info.json).
pub fn info_base(path: &str) -> &str {
    let base = path.strip_suffix("/info.json").unwrap_or(path);
    base.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_base_drops_the_four_request_segments() {
        assert_eq!(
            image_base("/iiif/2/1/abc/full/200,/0/default.jpg"),
            Some("/iiif/2/1/abc")
        );
        assert_eq!(image_base("/abc/full/max/0/default.jpg"), Some("/abc"));
        assert_eq!(image_base("/full/max/0/default.jpg"), None);
        assert_eq!(image_base("/max/0/default.jpg"), None);
    }

    #[test]
    fn info_base_drops_info_json() {
        assert_eq!(info_base("/iiif/abc/info.json"), "/iiif/abc");
        assert_eq!(info_base("/iiif/abc/"), "/iiif/abc");
        assert_eq!(info_base("/iiif/abc"), "/iiif/abc");
    }
}
