//! OpenTelemetry traces: one span per request and one per phase of its work — `route` (the
//! route's filters), `cache` (the response cache), `copy` (the hot cache), `fetch` (an origin
//! read), `decode`, `upstream` — exported with OTLP over HTTP when `server.traces` is set.
//!
//! Why it is built this way:
//!
//! 1. The spans are ordinary `tracing` spans with the target [`PHASE`], made where the work is
//!    (the image handlers and the origins make theirs), and turned into OpenTelemetry spans by
//!    `tracing-opentelemetry`'s layer. The log subscriber is installed before the config is read,
//!    so [`layer`] is part of it from the start, and [`start`] switches it on once `server.traces`
//!    is known.
//! 2. Off, every phase span is disabled where it is written (the callsite's interest is "never"):
//!    no allocation, no clock read, nothing on the request path. The JSON log never sees them.
//! 3. On, spans go to a batch processor with a bounded queue (spans beyond it are dropped, never
//!    queued without end) that exports from its own thread with a blocking HTTP client:
//!    nothing of the export runs on the proxy's threads. OTLP over HTTP rather than gRPC: every
//!    collector accepts it, and it needs no second HTTP stack (tonic).
//! 4. A request that arrives with a W3C `traceparent` continues that trace, and requests to
//!    HTTP upstreams (and to a fleet's owner, whose spans then join the same trace) carry one.

mod propagate;
mod slot;

pub use propagate::{continue_trace, inject};

use crate::config::TracesConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use pingora::http::RequestHeader;
use slot::{Slot, SlotSampler, Switch};
use std::sync::OnceLock;
use tracing::field::Empty;
use tracing::{Span, Subscriber};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `tracing` target of every span that is exported. Spans of other targets never are.
pub const PHASE: &str = "tessera::phase";

/// Why traces could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {reason}")]
pub struct TracesError {
    endpoint: String,
    reason: String,
}

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer that turns phase spans into OpenTelemetry spans; add it to the log subscriber.
/// It does nothing until [`start`].
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let provider = PROVIDER.get_or_init(|| {
        SdkTracerProvider::builder()
            .with_span_processor(Slot)
            .with_sampler(SlotSampler)
            .build()
    });
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("tessera"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(Switch)
}

/// Start exporting as `config` says. Once per process: a second call (a reload cannot change
/// `server`) keeps the first.
pub fn start(config: &TracesConfig) -> Result<(), TracesError> {
    slot::fill(config).map_err(|reason| TracesError {
        endpoint: config.endpoint.clone(),
        reason,
    })?;
    tracing::info!(endpoint = %config.endpoint, sample_ratio = config.sample_ratio, "exporting traces");
    Ok(())
}

/// Send what is still queued, waiting at most a few seconds; at exit.
pub fn shutdown() {
    slot::drain();
}

/// The span of one request, continuing the caller's trace (a disabled span while off).
pub fn request_span(req: &RequestHeader) -> Span {
    let span = tracing::info_span!(
        target: PHASE,
        "request",
        otel.kind = "server",
        http.request.method = %req.method,
        url.path = req.uri.path(),
        http.route = Empty,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    continue_trace(&span, &req.headers);
    span
}

/// Record how the request of `span` ended; a server error marks the span as failed.
pub fn finish_request(span: &Span, route: &str, status: u16) {
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    if status >= 500 || status == 0 {
        span.record("otel.status_code", "ERROR");
    }
}
