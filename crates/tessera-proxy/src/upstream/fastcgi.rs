//! Clusters with `protocol: fastcgi`: Tessera is the web server and speaks FastCGI to iipsrv
//! itself, so no nginx is needed in between.
//!
//! iipsrv serves one connection at a time, so every request gets its own connection (see
//! `tessera-fastcgi`); with several iipsrv processes behind one cluster the balancer spreads
//! them. A failed connect moves to another endpoint, like the HTTP path. The request is the one
//! [`super::prepare`] made, as for HTTP; failures are answered by [`Failure`], as for HTTP. The
//! response is read whole (tiles are small; a limit bounds it) and answered as a local
//! response, and an image server's error body is replaced: iipsrv's messages name local file
//! paths.

use super::{count_failed_attempt, Failure};
use crate::cluster::Cluster;
use crate::plugin::LocalResponse;
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora_load_balancing::Backend;
use std::net::IpAddr;
use tessera_fastcgi::{FastCgiError, FastCgiRequest, Timeouts};

/// Largest response body accepted from a FastCGI upstream.
pub(crate) const MAX_BODY: usize = 64 << 20;

/// Where one exchange went, for the access log.
pub(crate) struct Attempts<'a> {
    pub route: &'a str,
    pub failed: &'a mut Vec<Backend>,
    pub endpoint: &'a mut Option<Backend>,
}

/// Send `upstream` (path already rewritten, filters applied) to one of the cluster's endpoints.
pub(crate) async fn exchange(
    cluster: &Cluster,
    hash_key: &[u8],
    upstream: &RequestHeader,
    client_ip: Option<IpAddr>,
    tls: bool,
    at: Attempts<'_>,
) -> LocalResponse {
    let t = cluster.timeouts();
    let timeouts = Timeouts {
        connect: t.connect.0,
        read: t.read.0,
        total: t.total.map(|d| d.0),
    };
    let host = crate::plugin::authority(upstream).unwrap_or("localhost");
    let server_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let req = FastCgiRequest {
        method: upstream.method.as_str(),
        script_name: upstream.uri.path(),
        query_string: upstream.uri.query().unwrap_or(""),
        server_name,
        server_port: if tls { 443 } else { 80 },
        remote_addr: client_ip,
        headers: &upstream.headers,
    };
    let mut last = None;
    for _ in 0..=cluster.retries() {
        let Some(backend) = cluster.select(hash_key, at.failed) else {
            break;
        };
        *at.endpoint = Some(backend.clone());
        let endpoint = backend.addr.to_string();
        let Some(addr) = backend.addr.as_inet().copied() else {
            at.failed.push(backend);
            continue;
        };
        let failure = match tessera_fastcgi::request(addr, &req, &timeouts, MAX_BODY).await {
            Ok(resp) => return answer(resp),
            Err(e) => e,
        };
        let kind = match &failure {
            FastCgiError::Connect(_) => Failure::Connect,
            FastCgiError::Timeout("connect") => Failure::ConnectTimeout,
            FastCgiError::Timeout(_) => Failure::Timeout,
            _ => Failure::Response,
        };
        if kind.is_connect() {
            count_failed_attempt(cluster.name(), &endpoint, kind.kind());
            at.failed.push(backend);
            let retrying = at.failed.len() <= cluster.retries()
                && cluster.select(hash_key, at.failed).is_some();
            tracing::warn!(route = %at.route, cluster = %cluster.name(), endpoint = %endpoint, error = %failure, retrying, "cannot connect to upstream endpoint");
            last = Some((kind, endpoint, failure.to_string()));
            continue;
        }
        return kind.answer(at.route, cluster.name(), &endpoint, &failure);
    }
    match last {
        Some((kind, endpoint, error)) => kind.answer(at.route, cluster.name(), &endpoint, &error),
        None => Failure::NoEndpoint.answer(
            at.route,
            cluster.name(),
            "-",
            &"no healthy endpoint left to try",
        ),
    }
}

fn answer(resp: tessera_fastcgi::FastCgiResponse) -> LocalResponse {
    if resp.status.is_client_error() || resp.status.is_server_error() {
        tracing::debug!(status = resp.status.as_u16(), body = %String::from_utf8_lossy(&resp.body[..resp.body.len().min(512)]), "image server error body replaced");
        let reason = resp.status.canonical_reason().unwrap_or("error");
        return LocalResponse::text(
            resp.status,
            &format!(
                "the image server answered {} {reason}",
                resp.status.as_u16()
            ),
        );
    }
    let mut local = LocalResponse::new(resp.status);
    local.headers = resp.headers;
    local.body = resp.body;
    if !local
        .headers
        .iter()
        .any(|(k, _)| k == http::header::CONTENT_TYPE)
    {
        local.headers.push((
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ));
    }
    local
}
