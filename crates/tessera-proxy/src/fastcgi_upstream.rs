//! Clusters with `protocol: fastcgi`: Tessera is the web server and speaks FastCGI to iipsrv
//! itself, so no nginx is needed in between.
//!
//! iipsrv serves one connection at a time, so every request gets its own connection (see
//! `tessera-fastcgi`); with several iipsrv processes behind one cluster the balancer spreads
//! them. A failed connect moves to another endpoint, like the HTTP path. The response is read
//! whole (tiles are small; a limit bounds it) and answered as a local response, and an image
//! server's error body is replaced: iipsrv's messages name local file paths.

use crate::cluster::Cluster;
use crate::metrics::METRICS;
use crate::plugin::LocalResponse;
use http::{HeaderValue, StatusCode};
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

fn count(cluster: &str, endpoint: &str, kind: &str) {
    METRICS
        .upstream_errors
        .with_label_values(&[cluster, endpoint, kind])
        .inc();
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
        let (kind, status) = match &failure {
            FastCgiError::Connect(_) => ("connect", None),
            FastCgiError::Timeout("connect") => ("connect_timeout", None),
            FastCgiError::Timeout(_) => ("timeout", Some(StatusCode::GATEWAY_TIMEOUT)),
            _ => ("response", Some(StatusCode::BAD_GATEWAY)),
        };
        count(cluster.name(), &endpoint, kind);
        tracing::error!(route = %at.route, cluster = %cluster.name(), endpoint = %endpoint, kind, error = %failure, "fastcgi upstream failed");
        match status {
            Some(status) => return upstream_failed(status),
            None => at.failed.push(backend),
        }
    }
    tracing::error!(route = %at.route, cluster = %cluster.name(), "no healthy fastcgi endpoint left to try");
    upstream_failed(StatusCode::BAD_GATEWAY)
}

fn upstream_failed(status: StatusCode) -> LocalResponse {
    let reason = if status == StatusCode::GATEWAY_TIMEOUT {
        "gateway timeout: the image server did not answer in time"
    } else {
        "bad gateway: the image server failed"
    };
    LocalResponse::text(status, reason)
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
