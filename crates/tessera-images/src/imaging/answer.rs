//! How the image handlers answer: ETags and `If-None-Match`, the image response with its IIIF
//! headers, and info.json. (Failures are answered by [`super::failure`].)

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use tessera_iiif::{Format, ImageInfo, Version};
use tessera_proxy::plugin::{HttpError, LocalResponse, RequestContext};

/// A strong ETag from the parts that decide the bytes of an answer.
pub fn etag(parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    etag_of(&bytes)
}

/// [`etag`] of raw parts, e.g. the bytes of the object an answer is made from.
pub fn etag_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
        h.update([0]);
    }
    let hex: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("\"{hex}\"")
}

/// The IIIF id of the image a request addresses: the public base the client reaches this
/// server at (see `tessera_proxy::public_url`) and the path without `/info.json`.
pub fn image_id(req: &RequestContext<'_>) -> String {
    let path = req.header.uri.path();
    let base = path.strip_suffix("/info.json").unwrap_or(path);
    format!("{}{base}", req.public_base)
}

/// Whether the client already holds `etag` (`If-None-Match`).
pub fn matches_etag(req: &RequestContext<'_>, etag: &str) -> bool {
    req.header_str("if-none-match").is_some_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    })
}

fn with_etag(resp: LocalResponse, etag: &str) -> LocalResponse {
    match HeaderValue::from_str(etag) {
        Ok(v) => resp.with_header(header::ETAG, v),
        Err(_) => resp,
    }
}

/// 304 Not Modified, with the ETag.
pub fn not_modified(etag: &str) -> LocalResponse {
    with_etag(LocalResponse::new(StatusCode::NOT_MODIFIED), etag)
}

/// 200 with an encoded image and its IIIF headers (a level 2 service).
pub fn image(
    body: Vec<u8>,
    format: Format,
    version: Version,
    cache_control: &HeaderValue,
    etag: &str,
) -> LocalResponse {
    image_at_level(body.into(), format, version, 2, cache_control, etag)
}

/// [`image`] for a service of compliance `level` (0–2).
pub fn image_at_level(
    body: Bytes,
    format: Format,
    version: Version,
    level: u8,
    cache_control: &HeaderValue,
    etag: &str,
) -> LocalResponse {
    let link = format!("<{}>;rel=\"profile\"", version.level_uri(level));
    let mut resp = LocalResponse::new(StatusCode::OK)
        .with_body(format.mime_type(), body)
        .with_header(header::CACHE_CONTROL, cache_control.clone());
    if let Ok(v) = HeaderValue::from_str(&link) {
        resp = resp.with_header(header::LINK, v);
    }
    with_etag(resp, etag)
}

/// 200 with an info.json document, its content type for `version` (and for IIIF 2, what the
/// client accepts) and CORS.
pub fn info_json(
    info: &ImageInfo,
    version: Version,
    req: &RequestContext<'_>,
    cache_control: &HeaderValue,
) -> Result<LocalResponse, HttpError> {
    let body = serde_json::to_vec_pretty(&info.to_json(version))
        .map_err(|_| HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, "info.json"))?;
    let content_type = match version {
        Version::V3 => "application/ld+json;profile=\"http://iiif.io/api/image/3/context.json\"",
        Version::V2
            if req
                .header_str("accept")
                .is_some_and(|a| a.contains("application/ld+json")) =>
        {
            "application/ld+json"
        }
        Version::V2 => "application/json",
    };
    let resp = LocalResponse::new(StatusCode::OK)
        .with_body(content_type, body.into())
        .with_header(header::CACHE_CONTROL, cache_control.clone())
        .with_header(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    // The IIIF 2 content type follows Accept: caches must keep one answer per Accept.
    Ok(match version {
        Version::V2 => resp.with_header(header::VARY, HeaderValue::from_static("Accept")),
        Version::V3 => resp,
    })
}
