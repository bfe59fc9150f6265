//! How a failed upstream exchange is answered, the same for HTTP and FastCGI clusters: 504 when
//! the upstream (or connecting to it) took too long, 502 otherwise, with one log line naming
//! route, cluster and endpoint. The client gets a short reason, never the upstream's own error.

use crate::plugin::LocalResponse;
use http::StatusCode;
use std::fmt::Display;

/// Why an upstream exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made (refused, unreachable, TLS handshake).
    Connect,
    /// Connecting took longer than `timeouts.connect`.
    ConnectTimeout,
    /// The upstream did not answer (or go on answering) in time.
    Timeout,
    /// The upstream answered something that is not a usable response.
    Response,
    /// No healthy endpoint was left to try.
    NoEndpoint,
}

impl Failure {
    /// The `kind` label of `tessera_upstream_errors_total` and of the log line.
    pub fn kind(self) -> &'static str {
        match self {
            Failure::NoEndpoint => "no_endpoint",
            Failure::Connect => "connect",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Timeout => "timeout",
            Failure::Response => "response",
        }
    }

    /// Whether the failure is of one attempt at one endpoint, counted when the attempt fails
    /// (and so not again when the exchange is answered).
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Failure::Connect | Failure::ConnectTimeout | Failure::NoEndpoint
        )
    }

    pub fn status(self) -> StatusCode {
        match self {
            Failure::Timeout | Failure::ConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The answer to the client, after the log line (and the count, for failures of a response).
    pub fn answer(
        self,
        route: &str,
        cluster: &str,
        endpoint: &str,
        error: &dyn Display,
    ) -> LocalResponse {
        self.answer_with(self.status(), route, cluster, endpoint, error)
    }

    /// [`Failure::answer`] with another status: an upstream that answered 502 or 504 itself.
    pub fn answer_with(
        self,
        status: StatusCode,
        route: &str,
        cluster: &str,
        endpoint: &str,
        error: &dyn Display,
    ) -> LocalResponse {
        if !self.is_connect() {
            super::count_failed_attempt(cluster, endpoint, self.kind());
        }
        tracing::error!(
            route, cluster, endpoint, status = status.as_u16(), kind = self.kind(), error = %error,
            "upstream failed"
        );
        let reason = if status == StatusCode::GATEWAY_TIMEOUT {
            "gateway timeout: the upstream did not answer in time"
        } else {
            "bad gateway: the upstream failed"
        };
        LocalResponse::text(status, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_504_and_the_rest_502() {
        assert_eq!(Failure::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            Failure::ConnectTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        for f in [Failure::Connect, Failure::Response, Failure::NoEndpoint] {
            assert_eq!(f.status(), StatusCode::BAD_GATEWAY, "{f:?}");
        }
    }

    #[test]
    fn answers_say_little_and_carry_the_status() {
        let r = Failure::Response.answer("r", "c", "127.0.0.1:1", &"boom: /secret/path");
        assert_eq!(r.status, StatusCode::BAD_GATEWAY);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
    }
}
