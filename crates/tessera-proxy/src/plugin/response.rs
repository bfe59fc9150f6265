//! Responses that Tessera writes itself (handler answers, early filter answers, errors).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;

/// A complete response held in memory.
#[derive(Clone, Debug)]
pub struct LocalResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl LocalResponse {
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `text/plain` response; a newline is added to the message.
    pub fn text(status: StatusCode, message: &str) -> Self {
        Self::new(status).with_body(
            "text/plain; charset=utf-8",
            Bytes::from(format!("{message}\n")),
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with_body(mut self, content_type: &str, body: Bytes) -> Self {
        if let Ok(v) = HeaderValue::from_str(content_type) {
            self.headers.push((http::header::CONTENT_TYPE, v));
        }
        self.body = body;
        self
    }

    /// The response header, with Content-Length set from the body.
    pub fn header(&self) -> ResponseHeader {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 2))
            .expect("a StatusCode is always a valid status");
        for (k, v) in &self.headers {
            let _ = resp.append_header(k.clone(), v.clone());
        }
        // 1xx, 204 and 304 responses have no body and must not carry Content-Length.
        let bodiless = self.status.is_informational()
            || self.status == StatusCode::NO_CONTENT
            || self.status == StatusCode::NOT_MODIFIED;
        if !bodiless {
            let _ = resp.insert_header(http::header::CONTENT_LENGTH, self.body.len());
        }
        resp
    }
}

/// An error a filter or handler answers with: the status and a reason for the client.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn to_response(&self) -> LocalResponse {
        LocalResponse::text(self.status, &self.message)
    }
}

/// A response whose body is sent as it is read (an object streamed from an origin), with its
/// length known before the first byte.
pub struct StreamedResponse {
    /// Status and headers; its `body` is not used.
    pub head: LocalResponse,
    /// The body's length, sent as `Content-Length`. A body that ends sooner is an error: the
    /// connection is closed, so the client sees a cut answer, not a short one.
    pub length: u64,
    pub body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
}
