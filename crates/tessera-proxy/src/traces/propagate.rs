//! W3C trace context (`traceparent`, `tracestate`) read from a request and written on the
//! requests Tessera sends on.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pingora::http::RequestHeader;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Make `span` a child of the caller's span, if `headers` carry a `traceparent`.
pub fn continue_trace(span: &Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let caller = TraceContextPropagator::new().extract(&Read(headers));
    // Fails only for a span already started, which this one, just made, is not.
    let _ = span.set_parent(caller);
}

/// Write `span`'s context into `request`, replacing what the client sent.
pub fn inject(span: &Span, request: &mut RequestHeader) {
    if span.is_disabled() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut Write(request));
}

struct Read<'a>(&'a http::HeaderMap);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct Write<'a>(&'a mut RequestHeader);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagator writes only its own two well-formed headers.
        let _ = self.0.insert_header(key.to_string(), value);
    }
}
