//! What an image answer is about, for the response cache: the IIIF base path of the image a
//! request addresses, so that `purge?image=` drops every answer about it.

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
