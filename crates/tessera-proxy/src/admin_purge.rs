//! `POST /cache/purge?url=…` and `?image=…` on the admin listener: drop kept answers when an
//! image changed in the origin, without waiting for them to expire.
//!
//! A URL is named the way a request for it would be (its route, then its handler's name for
//! it), so any spelling of an IIIF request drops the one answer they share. `image=` is what
//! answers are about ([`crate::plugin::CacheName::about`]; the image handlers give an image's
//! IIIF base path, `/iiif/2/1/abc`, or a whole URL whose path that is): every answer about it
//! on every route is dropped, info.json included.
//!
//! In a fleet, the node asked passes the purge on to every other node's admin listener (each
//! told `scope=node`), so an answer kept by whichever node owned the image, or owned it before
//! the ring changed, is gone; the answer lists what each node purged.

use crate::captures::Captures;
use crate::plugin::RequestInfo;
use crate::response_cache::RESPONSE_CACHE;
use crate::runtime::Runtime;
use http::{StatusCode, Uri};
use pingora::http::RequestHeader;

/// What the purge endpoint answers: a status and a one-line JSON or text body.
pub struct PurgeAnswer {
    pub status: StatusCode,
    pub body: String,
}

fn bad(reason: &str) -> PurgeAnswer {
    PurgeAnswer {
        status: StatusCode::BAD_REQUEST,
        body: format!("{reason}\n"),
    }
}

fn purged(n: usize) -> PurgeAnswer {
    RESPONSE_CACHE.purged.inc_by(n as u64);
    tracing::info!(purged = n, "response cache purged");
    PurgeAnswer {
        status: StatusCode::OK,
        body: format!("{{\"purged\":{n}}}\n"),
    }
}

/// Carry out a purge given the admin request's query string; in a fleet, on every node
/// (unless `scope=node`, which is how one node passes it on to the others).
pub async fn purge(runtime: &Runtime, query: &str) -> PurgeAnswer {
    let here = purge_here(runtime, query).await;
    let node_only =
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == "scope" && v == "node");
    let Some(fleet) = runtime
        .fleet
        .as_ref()
        .filter(|_| !node_only && here.status.is_success())
    else {
        return here;
    };
    let peers: serde_json::Map<String, serde_json::Value> = fleet
        .purge_peers(query)
        .await
        .into_iter()
        .map(|(peer, answer)| {
            let value = match answer {
                Ok(body) => serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                Err(e) => serde_json::json!({ "error": e }),
            };
            (peer, value)
        })
        .collect();
    let mine: serde_json::Value = serde_json::from_str(&here.body).unwrap_or_default();
    PurgeAnswer {
        status: here.status,
        body: format!(
            "{}\n",
            serde_json::json!({ "purged": mine["purged"], "peers": peers })
        ),
    }
}

/// The purge on this node's response cache.
async fn purge_here(runtime: &Runtime, query: &str) -> PurgeAnswer {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    match (get("url"), get("image")) {
        (Some(url), None) => purge_url(runtime, url).await,
        (None, Some(image)) => {
            let path = match image.parse::<Uri>() {
                Ok(uri) if uri.scheme().is_some() => uri.path().to_string(),
                _ => image.clone(),
            };
            let base = path.trim_end_matches('/');
            if base.is_empty() {
                return bad("image= must be an image's base path, e.g. /iiif/2/1/abc");
            }
            purged(runtime.response_cache.purge_about(base))
        }
        _ => {
            bad("give exactly one of url= (a request URL or path) or image= (an image's base path)")
        }
    }
}

async fn purge_url(runtime: &Runtime, url: &str) -> PurgeAnswer {
    let Ok(uri) = url.parse::<Uri>() else {
        return bad("url= is not a valid URL");
    };
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(mut header) = RequestHeader::build("GET", path.as_bytes(), None) else {
        return bad("url= is not a valid request path");
    };
    if let Some(authority) = uri.authority() {
        let _ = header.insert_header(http::header::HOST, authority.as_str());
    }
    let tls = uri.scheme_str() == Some("https");
    let Some((route, captures)) = runtime.routes.find(&header) else {
        return purged(0);
    };
    let Some(route_cache) = &route.cache else {
        return purged(0);
    };
    let captures: Captures = captures;
    let extensions = http::Extensions::new();
    // As the request itself was named: the route's or the configured public URL, else the
    // URL's own scheme and host.
    let public_base = runtime
        .public_urls
        .base(route.public_url.as_ref(), &header, None, tls);
    let info = RequestInfo {
        header: &header,
        client_ip: None,
        tls,
        public_base: &public_base,
        route: &route.name,
        captures: &captures,
        extensions: &extensions,
    };
    match route.handler.cache_name(&info).await {
        Some(name) => purged(
            runtime
                .response_cache
                .purge_name(&route_cache.tag, &name.name),
        ),
        None => purged(0),
    }
}
