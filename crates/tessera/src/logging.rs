//! Where the server's log lines go, and which of Pingora's are not ours to raise.
//!
//! Logs of the server go to stdout at `info`, through a writer of batches on its own thread
//! ([`crate::log_writer`]) so a slow terminal or pipe never stalls a request; a batch command
//! keeps stdout for its result and logs only warnings, straight to stderr (nothing is lost when
//! it exits). `TESSERA_LOG` overrides the level. The JSON access log's lines are written by
//! [`crate::access_json`] straight from each request's entry, the same lines for less.
//!
//! Pingora logs at ERROR every connection that goes away in the middle of its request header
//! ("Fail to proxy: Downstream … while reading request headers"): a client that hung up, or one
//! that the header deadline or the connection limit closed. That is the client's doing, not a
//! fault of the server, and in a slowloris flood it is thousands of ERROR lines a second.
//! [`QuietClientFaults`] drops those lines unless debug logging is on; the metrics
//! (`tessera_connections_shed_total`, `tessera_header_timeouts_total`) count them instead.

use crate::access_json::JsonAccessLog;
use crate::json_lines::JsonLines;
use crate::log_writer::{BatchWriter, Flush};
use tessera_proxy::{access_log, traces};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata};
use tracing_log::NormalizeEvent;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// Install the global subscriber. Keep what it returns until the process ends: dropping it
/// writes the lines still waiting.
pub fn init(format: LogFormat, level: &str, to_stderr: bool) -> Option<Flush> {
    let filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let (writer, batch, flush) = match to_stderr {
        true => (BoxMakeWriter::new(std::io::stderr), None, None),
        false => match BatchWriter::spawn(std::io::stdout()) {
            Ok((writer, flush)) => (
                BoxMakeWriter::new(writer.clone()),
                Some(writer),
                Some(flush),
            ),
            // No thread to spare: write from the caller, as a batch command does.
            Err(_) => (BoxMakeWriter::new(std::io::stdout), None, None),
        },
    };
    // Colours only for a terminal: a file or a pipe gets plain text.
    let terminal = if to_stderr {
        std::io::IsTerminal::is_terminal(&std::io::stderr())
    } else {
        std::io::IsTerminal::is_terminal(&std::io::stdout())
    };
    // The log never shows the spans of traces (`server.traces`), which their own layer exports.
    // A directive rather than a filter of our own: the filter's level stays the subscriber's
    // maximum level, which keeps `debug!` free when it is off and `QuietClientFaults` right.
    let filter = match format!("{}=off", traces::PHASE).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // Every layer has its own filter, so a span no layer wants is never created: with traces
    // off, a request's spans cost nothing.
    let filter = filter.and(QuietClientFaults);
    let subscriber = tracing_subscriber::registry().with(traces::layer());
    match format {
        LogFormat::Json => subscriber
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines::default())
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Text => subscriber
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(terminal)
                    .with_writer(writer)
                    .with_filter(filter),
            )
            .init(),
    }
    // The JSON access log writes its lines itself, the same lines, when its level is on.
    let access_on = tracing::enabled!(target: access_log::TARGET, Level::INFO);
    if let (LogFormat::Json, Some(batch), true) = (format, batch, access_on) {
        access_log::install(Box::new(JsonAccessLog::new(batch)));
    }
    flush
}

/// Drops Pingora's ERROR line for a connection lost while its request header was read: a
/// filter of the log, beside its levels.
pub struct QuietClientFaults;

impl<S> Filter<S> for QuietClientFaults {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    /// It selects no level of its own (only events, below), and says so: combined with the
    /// log's levels, the most restrictive hint wins, and "no hint" would raise the subscriber's
    /// maximum level to TRACE (and `LevelFilter::current()` below would be wrong).
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        if *event.metadata().level() != Level::ERROR || LevelFilter::current() >= Level::DEBUG {
            return true;
        }
        let from_proxy = event
            .normalized_metadata()
            .is_some_and(|meta| meta.target() == "pingora_proxy");
        !(from_proxy && is_lost_request_header(&message(event)))
    }
}

/// Pingora's wording when reading a request header failed on the client's side.
fn is_lost_request_header(message: &str) -> bool {
    message.starts_with("Fail to proxy: Downstream ")
        && message.contains(", downstream session type: ")
}

fn message(event: &Event<'_>) -> String {
    struct Message(String);
    impl tracing::field::Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }
    let mut visitor = Message(String::new());
    event.record(&mut visitor);
    visitor.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_request_header_is_quiet() {
        assert!(is_lost_request_header(
            "Fail to proxy: Downstream ConnectionClosed context: while reading request headers, \
             bytes already read: 41, downstream session type: h1"
        ));
        assert!(is_lost_request_header(
            "Fail to proxy: Downstream ReadError context: while reading request headers cause: \
             timed out, downstream session type: h1"
        ));
        // An upstream failure is logged by the proxy with a status: it stays an error.
        assert!(!is_lost_request_header(
            "Fail to proxy: Upstream ConnectRefused, status: 502, tries: 1, retry: false, GET /"
        ));
    }
}
