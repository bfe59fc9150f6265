//! [`deliver`]: the one place that writes an answer Tessera makes itself — a filter's, the
//! response cache's, a handler's (whole or streamed), a FastCGI upstream's, an error — after the
//! route's filters have seen its header.

use super::state::ServiceState;
use crate::plugin::{LocalResponse, StreamedResponse};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes of a streamed body read and sent at a time.
const STREAM_CHUNK: u64 = 64 << 10;

/// An answer made here.
pub(super) enum Local {
    Whole(LocalResponse),
    Streamed(StreamedResponse),
}

/// Write `answer` to the client. A streamed body is kept for the response cache as it goes
/// when this request fetches for it (and when the client already holds it, read whole for the
/// cache and answered 304). A body that fails or ends before its length closes the connection
/// (the status is already sent), with a log line.
pub(super) async fn deliver(
    session: &mut Session,
    state: &mut ServiceState,
    answer: Local,
) -> Result<()> {
    match answer {
        Local::Whole(r) => whole(session, state, r).await,
        Local::Streamed(s) => streamed(session, state, s).await,
    }
}

async fn whole(session: &mut Session, state: &ServiceState, r: LocalResponse) -> Result<()> {
    if write_head(session, state, r.header(), r.body.len() as u64).await? {
        session.write_response_body(Some(r.body), true).await?;
    }
    Ok(())
}

async fn streamed(
    session: &mut Session,
    state: &mut ServiceState,
    s: StreamedResponse,
) -> Result<()> {
    let StreamedResponse {
        head,
        length,
        mut body,
    } = s;
    let mut header = head.header();
    header.insert_header(http::header::CONTENT_LENGTH, length)?;
    if let Some(not_modified) = state.exchange.cache.streamed_local(&header, &head) {
        if state.exchange.cache.is_keeping() {
            // A failure is logged and ends the fill; the client's copy is still good.
            let _ = stream_body(state, &mut body, length, None).await;
        }
        return whole(session, state, not_modified).await;
    }
    if write_head(session, state, header, length).await? {
        stream_body(state, &mut body, length, Some(session)).await?;
    }
    Ok(())
}

/// Send the header after the route's filters have seen it. Returns whether its `body_len`
/// bytes of body should follow (not for HEAD or an empty body).
async fn write_head(
    session: &mut Session,
    state: &ServiceState,
    mut header: ResponseHeader,
    body_len: u64,
) -> Result<bool> {
    if request_has_body(session.req_header()) {
        // The body was never read: do not let the client stream it into a kept-alive
        // connection that we would have to drain.
        session.set_keepalive(None);
    }
    state.finish_response_header(session.req_header(), &mut header);
    let head_only = session.req_header().method == http::Method::HEAD || body_len == 0;
    session
        .write_response_header(Box::new(header), head_only)
        .await?;
    Ok(!head_only)
}

/// Read `length` bytes of `body` in chunks, each to the response cache (if this request fills
/// it) and to the client (if `session` is given).
async fn stream_body(
    state: &mut ServiceState,
    body: &mut (dyn AsyncRead + Send + Unpin),
    length: u64,
    mut session: Option<&mut Session>,
) -> Result<()> {
    let mut sent = 0u64;
    while sent < length {
        let want = (length - sent).min(STREAM_CHUNK);
        let mut buf = bytes::BytesMut::with_capacity(want as usize);
        let n = match body.take(want).read_buf(&mut buf).await {
            Ok(n) if n > 0 => n as u64,
            read => {
                let why = read
                    .err()
                    .map_or_else(|| "it ended early".to_string(), |e| e.to_string());
                tracing::error!(route = %state.route_name(), sent, length, "a streamed answer was cut: {why}");
                state.exchange.cache.failed();
                return Error::e_explain(ErrorType::ReadError, "the streamed body was cut");
            }
        };
        sent += n;
        let chunk = buf.freeze();
        let end = sent >= length;
        state.exchange.cache.body(Some(&chunk), end);
        if let Some(session) = session.as_mut() {
            session.write_response_body(Some(chunk), end).await?;
        }
    }
    Ok(())
}

fn request_has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}
