#![forbid(unsafe_code)]
//! A FastCGI responder client, so Tessera can ask iipsrv for tiles without an nginx in between.
//!
//! Hand-written: `fastcgi-client` streams take a connection cut before END_REQUEST for success.
//!
//! One request per connection: BEGIN_REQUEST without keep-conn, the CGI variables as PARAMS, an
//! empty STDIN, then STDOUT/STDERR records until END_REQUEST. iipsrv serves one connection at a
//! time, so a connection is never kept open.

mod cgi;
mod record;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// What to ask the FastCGI application; a GET without a body.
#[derive(Debug, Clone, Copy)]
pub struct FastCgiRequest<'a> {
    pub method: &'a str,
    /// The path part, e.g. `/fcgi-bin/iipsrv.fcgi`.
    pub script_name: &'a str,
    pub query_string: &'a str,
    pub server_name: &'a str,
    pub server_port: u16,
    pub remote_addr: Option<IpAddr>,
    /// Forwarded as `HTTP_*` variables, minus hop-by-hop and `Content-*` headers.
    pub headers: &'a HeaderMap,
}

/// The application's answer. `headers` never holds framing headers (`Content-Length`,
/// `Transfer-Encoding`, ...): the caller frames `body` itself.
#[derive(Debug, Clone)]
pub struct FastCgiResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// For each read, and for writing the request.
    pub read: Duration,
    /// For the whole exchange, connect included.
    pub total: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum FastCgiError {
    #[error("cannot connect to the FastCGI server: {0}")]
    Connect(io::Error),
    /// The phase: "connect", "write", "read" or "total".
    #[error("FastCGI {0} timed out")]
    Timeout(&'static str),
    #[error("FastCGI I/O error: {0}")]
    Io(io::Error),
    #[error("FastCGI protocol error: {0}")]
    Protocol(String),
    #[error("FastCGI response body is larger than the limit")]
    TooLarge,
    #[error("bad CGI response head: {0}")]
    BadHeaders(String),
}

/// Sends `req` to the FastCGI server at `addr` on a new connection and reads the whole response.
/// A body longer than `max_body` bytes fails with [`FastCgiError::TooLarge`].
pub async fn request(
    addr: SocketAddr,
    req: &FastCgiRequest<'_>,
    timeouts: &Timeouts,
    max_body: usize,
) -> Result<FastCgiResponse, FastCgiError> {
    let exchange = exchange(addr, req, timeouts, max_body);
    match timeouts.total {
        Some(total) => timeout(total, exchange)
            .await
            .map_err(|_| FastCgiError::Timeout("total"))?,
        None => exchange.await,
    }
}

async fn exchange(
    addr: SocketAddr,
    req: &FastCgiRequest<'_>,
    timeouts: &Timeouts,
    max_body: usize,
) -> Result<FastCgiResponse, FastCgiError> {
    let mut stream = timeout(timeouts.connect, TcpStream::connect(addr))
        .await
        .map_err(|_| FastCgiError::Timeout("connect"))?
        .map_err(FastCgiError::Connect)?;
    let wire = record::encode_request(&cgi::encode_params(req));
    timeout(timeouts.read, stream.write_all(&wire))
        .await
        .map_err(|_| FastCgiError::Timeout("write"))?
        .map_err(FastCgiError::Io)?;
    let mut reader = RecordReader {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
        read_timeout: timeouts.read,
    };
    let mut stderr = StderrLog::default();
    let response = read_response(&mut reader, max_body, &mut stderr).await;
    stderr.log(addr);
    response
}

/// Reads records until END_REQUEST, then splits STDOUT into head and body.
async fn read_response(
    reader: &mut RecordReader,
    max_body: usize,
    stderr: &mut StderrLog,
) -> Result<FastCgiResponse, FastCgiError> {
    let mut stdout = BytesMut::new();
    let mut head_end = None;
    loop {
        let (header, content) = reader.next_record().await?;
        if header.request_id == 0 {
            tracing::debug!(kind = header.kind, "ignoring FastCGI management record");
            continue;
        }
        if header.request_id != record::REQUEST_ID {
            let msg = format!("record for request id {}", header.request_id);
            return Err(FastCgiError::Protocol(msg));
        }
        match header.kind {
            record::STDOUT => {
                stdout.extend_from_slice(&content);
                if head_end.is_none() {
                    head_end = cgi::find_head_end(&stdout);
                }
                match head_end {
                    Some((_, body_start)) if stdout.len() - body_start > max_body => {
                        return Err(FastCgiError::TooLarge)
                    }
                    None if stdout.len() > cgi::MAX_HEAD => {
                        let msg = format!("no blank line in the first {} bytes", cgi::MAX_HEAD);
                        return Err(FastCgiError::BadHeaders(msg));
                    }
                    _ => {}
                }
            }
            record::STDERR => stderr.push(&content),
            record::END_REQUEST => {
                let (app_status, protocol_status) =
                    record::parse_end_request(&content).map_err(FastCgiError::Protocol)?;
                if protocol_status != 0 {
                    let msg = format!("request rejected, protocolStatus {protocol_status}");
                    return Err(FastCgiError::Protocol(msg));
                }
                tracing::trace!(app_status, "FastCGI request complete");
                break;
            }
            kind => {
                let msg = format!("unexpected record type {kind}");
                return Err(FastCgiError::Protocol(msg));
            }
        }
    }
    let Some((head_len, body_start)) = head_end else {
        let msg = "output ended before the blank line after the head".to_owned();
        return Err(FastCgiError::BadHeaders(msg));
    };
    let (status, headers) =
        cgi::parse_head(&stdout[..head_len]).map_err(FastCgiError::BadHeaders)?;
    let body = stdout.split_off(body_start).freeze();
    Ok(FastCgiResponse {
        status,
        headers,
        body,
    })
}

struct RecordReader {
    stream: TcpStream,
    buf: BytesMut,
    read_timeout: Duration,
}

impl RecordReader {
    async fn next_record(&mut self) -> Result<(record::RecordHeader, Bytes), FastCgiError> {
        self.fill(record::HEADER_LEN).await?;
        let header_bytes = self.buf[..record::HEADER_LEN].try_into().expect("8 bytes");
        let header = record::parse_header(header_bytes).map_err(FastCgiError::Protocol)?;
        self.fill(record::HEADER_LEN + header.content_len + header.padding_len)
            .await?;
        let _ = self.buf.split_to(record::HEADER_LEN);
        let content = self.buf.split_to(header.content_len).freeze();
        let _ = self.buf.split_to(header.padding_len);
        Ok((header, content))
    }

    /// Reads until `len` bytes are buffered; each read has its own timeout.
    async fn fill(&mut self, len: usize) -> Result<(), FastCgiError> {
        while self.buf.len() < len {
            self.buf.reserve((len - self.buf.len()).max(16 * 1024));
            let read = timeout(self.read_timeout, self.stream.read_buf(&mut self.buf))
                .await
                .map_err(|_| FastCgiError::Timeout("read"))?
                .map_err(FastCgiError::Io)?;
            if read == 0 {
                let msg = "connection closed before END_REQUEST".to_owned();
                return Err(FastCgiError::Protocol(msg));
            }
        }
        Ok(())
    }
}

/// Keeps the start of STDERR for one warning per request.
#[derive(Default)]
struct StderrLog {
    kept: Vec<u8>,
    total: usize,
}

impl StderrLog {
    const KEEP: usize = 1024;

    fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        let room = Self::KEEP.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn log(&self, addr: SocketAddr) {
        if self.total > 0 {
            let text = String::from_utf8_lossy(&self.kept);
            tracing::warn!(%addr, bytes = self.total, stderr = %text.trim_end(), "FastCGI stderr");
        }
    }
}
