//! The exporting half of the tracer, empty until `server.traces` is read: a span processor and a
//! sampler that stand in for the real ones, and the filter that keeps phase spans off until then.

use super::PHASE;
use crate::config::TracesConfig;
use opentelemetry::trace::{Link, SpanKind, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult,
    ShouldSample, Span, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::layer::{Context as LayerContext, Filter};

/// Spans waiting for export at most; more are dropped (the SDK's default is 2048).
const MAX_QUEUED_SPANS: usize = 8192;
/// How long the last export at exit may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

struct Export {
    processor: BatchSpanProcessor,
    sampler: Sampler,
}

static EXPORT: OnceLock<Export> = OnceLock::new();
static ON: AtomicBool = AtomicBool::new(false);

pub(super) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Build the exporter for `config` and switch phase spans on.
pub(super) fn fill(config: &TracesConfig) -> Result<(), String> {
    if EXPORT.get().is_none() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.timeout.0)
            .with_headers(config.headers.clone().into_iter().collect())
            .build()
            .map_err(|e| e.to_string())?;
        let mut processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(MAX_QUEUED_SPANS)
                    .build(),
            )
            .build();
        processor.set_resource(
            &Resource::builder_empty()
                .with_service_name(config.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        );
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        // Two starts racing in one process (tests): the first one's exporter is kept.
        let _ = EXPORT.set(Export { processor, sampler });
    }
    ON.store(true, Ordering::Relaxed);
    // Callsites seen while off were told "never"; ask them again.
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

pub(super) fn drain() {
    if let Some(export) = EXPORT.get() {
        ON.store(false, Ordering::Relaxed);
        if let Err(e) = export.processor.shutdown_with_timeout(DRAIN_TIMEOUT) {
            tracing::warn!("traces: the last spans could not be sent: {e}");
        }
    }
}

/// Lets only phase spans through, and only once exporting is on.
pub(super) struct Switch;

impl Switch {
    fn wanted(meta: &Metadata<'_>) -> bool {
        meta.is_span() && meta.target() == PHASE && on()
    }
}

impl<S> Filter<S> for Switch {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &LayerContext<'_, S>) -> bool {
        Self::wanted(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Self::wanted(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    /// Phase spans are at INFO; off, nothing: the subscriber's level stays the log's.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if on() {
            LevelFilter::INFO
        } else {
            LevelFilter::OFF
        })
    }
}

/// The provider's span processor: hands finished spans to the batch processor, if there is one.
#[derive(Debug)]
pub(super) struct Slot;

impl SpanProcessor for Slot {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if let Some(export) = EXPORT.get() {
            export.processor.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        EXPORT.get().map_or(Ok(()), |e| e.processor.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        EXPORT
            .get()
            .map_or(Ok(()), |e| e.processor.shutdown_with_timeout(timeout))
    }
}

/// The provider's sampler: `server.traces.sample_ratio`, following the caller's decision when a
/// request says it is traced; nothing is recorded before [`fill`].
#[derive(Clone, Debug)]
pub(super) struct SlotSampler;

impl ShouldSample for SlotSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        match EXPORT.get() {
            Some(export) => export.sampler.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
            None => SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            },
        }
    }
}
