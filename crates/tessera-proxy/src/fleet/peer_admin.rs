//! Asking a peer's admin listener for something (a purge), with Pingora's own HTTP client: one
//! short request, a bounded answer, a deadline.

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::time::Duration;

/// The most of a peer's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;

/// `POST path_and_query` to the admin listener at `addr`: the status and body, or why not.
pub async fn post(
    addr: SocketAddr,
    path_and_query: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    tokio::time::timeout(timeout, exchange(addr, path_and_query, timeout))
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

async fn exchange(
    addr: SocketAddr,
    path_and_query: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let connector = Connector::new(None);
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.connection_timeout = Some(timeout);
    peer.options.read_timeout = Some(timeout);
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| e.to_string())?;
    let mut req =
        RequestHeader::build("POST", path_and_query.as_bytes(), None).map_err(|e| e.to_string())?;
    let _ = req.insert_header("Host", addr.to_string());
    let _ = req.insert_header("Content-Length", "0");
    let _ = req.insert_header("User-Agent", "tessera-fleet");
    session
        .write_request_header(Box::new(req))
        .await
        .map_err(|e| e.to_string())?;
    session
        .finish_request_body()
        .await
        .map_err(|e| e.to_string())?;
    session
        .read_response_header()
        .await
        .map_err(|e| e.to_string())?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| e.to_string())?
    {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER - body.len())]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
