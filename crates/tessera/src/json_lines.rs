//! The JSON log line: the lines of `tracing-subscriber`'s JSON format (flattened event, no
//! current span), written straight into the line's buffer.
//!
//! Why not that format itself: it serializes through `serde_json` into an adaptor that checks
//! each fragment for UTF-8 again, and formats every `Display` field into a `String` of its own
//! first. When the access log went through it, a line per request, that cost took 15 % of the
//! proxy's throughput (`bench/proxy_overhead.sh`); the access log's line is now written by
//! [`crate::access_json`] straight from the request's entry (the same line), and this formats
//! every other line, and the access log's when it is an event (text logs, tests). The line
//! here is the same JSON object with its keys in the same order; numbers with a fraction are
//! written as Rust's `Display` writes them (never an exponent; `serde_json`'s `ryu` gives the
//! same digits but where it writes an exponent or breaks a tie between two shortest decimals
//! the other way), non-finite ones as `null`, as `serde_json` does.
//!
//! ```text
//! {"timestamp":"…","level":"INFO",<the event's fields in order>,"target":"…"}
//! ```
//!
//! Events from the `log` crate (Pingora's) carry their own target and level, as in the
//! `tracing-subscriber` format; a span list (`"spans":[{…,"name":…}]`) follows the target when
//! the event is inside spans this layer records (none, today: the trace spans are not logged,
//! which is also why [`crate::access_json`] never writes one).

use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the JSON log.
pub struct JsonLines<T = Utc> {
    timer: T,
}

impl Default for JsonLines {
    fn default() -> Self {
        Self { timer: Utc }
    }
}

/// The time as `tracing-subscriber`'s `SystemTime` writes it (RFC 3339, UTC, microseconds), with
/// the date and time of day worked out once a second per thread rather than at every line.
pub struct Utc;

thread_local! {
    /// The last second written on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: std::cell::RefCell<(u64, String)> = const {
        std::cell::RefCell::new((u64::MAX, String::new()))
    };
}

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let since = now
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != since.as_secs() {
                let whole = humantime::format_rfc3339_seconds(now).to_string();
                *text = whole.trim_end_matches('Z').to_string();
                *second = since.as_secs();
            }
            w.write_str(text)?;
            write_micros(w, since.subsec_micros())
        })
    }
}

/// `.uuuuuuZ`, the fraction of the second as `{:06}` writes it, without `core::fmt`.
fn write_micros(w: &mut impl Write, micros: u32) -> fmt::Result {
    let mut text = *b".000000Z";
    let mut rest = micros;
    for digit in text[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

impl<T> JsonLines<T> {
    #[cfg(test)]
    pub(crate) fn with_timer(timer: T) -> Self {
        Self { timer }
    }
}

impl<S, N, T> FormatEvent<S, N> for JsonLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        w.write_str("{\"timestamp\":\"")?;
        self.timer.format_time(&mut w)?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_char('"')?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        w.write_str(",\"target\":")?;
        json_string(&mut w, meta.target())?;
        if let Some(scope) = ctx.event_scope() {
            w.write_str(",\"spans\":[")?;
            for (i, span) in scope.from_root().enumerate() {
                w.write_str(if i == 0 { "{" } else { ",{" })?;
                let extensions = span.extensions();
                // The JSON field formatter stores a span's fields as one object: its members.
                let stored = extensions.get::<FormattedFields<N>>();
                let object = stored.map(|f| f.fields.trim());
                let members = object.and_then(|o| o.strip_prefix('{')?.strip_suffix('}'));
                if let Some(members) = members.filter(|m| !m.is_empty()) {
                    w.write_str(members)?;
                    w.write_char(',')?;
                }
                w.write_str("\"name\":")?;
                json_string(&mut w, span.name())?;
                w.write_char('}')?;
            }
            w.write_char(']')?;
        }
        w.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        // Written in as few pieces as it can be: each goes through the writer's `dyn Write`.
        self.result = (|| {
            self.w.write_str(",\"")?;
            Escaped(&mut *self.w).write_str(field.name())?;
            self.w.write_str("\":")?;
            value(self.w)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| json_string(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.entry(field, |w| number_with_fraction(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value}")?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A number with a fraction as Rust's `Display` writes it (the shortest digits that read back
/// the same, never an exponent), `null` when it is not finite (as `serde_json` writes those).
/// `ryu` finds the same shortest digits several times faster; it writes an exponent for very
/// large or small magnitudes, and it breaks a tie between two shortest candidates the other
/// way (2189745492579392.25: `ryu` "…392.2", `Display` "…392.3"): both are left to
/// `core::fmt`.
pub(crate) fn number_with_fraction(w: &mut impl Write, value: f64) -> fmt::Result {
    if !value.is_finite() {
        return w.write_str("null");
    }
    if !may_tie(value) {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(value);
        if !text.contains('e') {
            return w.write_str(text.strip_suffix(".0").unwrap_or(text));
        }
    }
    write!(w, "{value}")
}

/// Whether two shortest decimals can lie equally close to `value` (or one exactly on the edge
/// of the values that read back as it): only when its exact decimal expansion is at most 18
/// significant digits, one more than a shortest decimal has. `value` is `m · 2^-k` with `m`
/// odd, whose exact expansion is the digits of `m · 5^k`; a duration's double almost never is
/// (115 in 2 million), so `ryu` stays the rule.
fn may_tie(value: f64) -> bool {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (mut m, mut e) = match exponent {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), exponent - 1075),
    };
    if m == 0 {
        return false;
    }
    let zeros = m.trailing_zeros();
    m >>= zeros;
    e += zeros as i32;
    // An integer's exact digits are at most 16 below 2^53, where `ryu` writes them all; above,
    // its neighbours are 2 or more apart and no shorter decimal is as close as a tie needs.
    if e >= 0 {
        return false;
    }
    let k = e.unsigned_abs();
    k <= 27 && u128::from(m) * 5u128.pow(k) < 10u128.pow(18)
}

/// `value` as a JSON string.
pub(crate) fn json_string(w: &mut impl Write, value: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(value)?;
    w.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string, as `serde_json` does: quote,
/// backslash and control characters; everything else as it is.
pub(crate) struct Escaped<'a, W: Write>(pub &'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        let mut clean = 0;
        let mut i = clean_run(bytes);
        while i < bytes.len() {
            let b = bytes[i];
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => {
                    i += 1;
                    continue;
                }
            };
            // Escaped bytes are ASCII, so `clean..i` lies on character boundaries.
            self.0.write_str(&s[clean..i])?;
            match escape {
                "" => write!(self.0, "\\u{b:04x}")?,
                e => self.0.write_str(e)?,
            }
            clean = i + 1;
            i = clean + clean_run(&bytes[clean..]);
        }
        self.0.write_str(&s[clean..])
    }
}

/// How many of `bytes`' first bytes need no escaping, give or take the last eight: a
/// lower bound, found eight bytes at a time (most strings in a log line have nothing to
/// escape, and a browser's User-Agent is a hundred bytes and more).
fn clean_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether any byte of `word` is below `n` (≤ 0x80): the classic bit trick, exact as a yes/no.
    fn any_below(word: u64, n: u8) -> bool {
        word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS != 0
    }
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        if any_below(word, 0x20) || any_below(quote, 1) || any_below(backslash, 1) {
            break;
        }
        clean += 8;
    }
    clean
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    /// The same instant for both formats.
    pub(crate) struct Fixed;
    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-11-30T12:00:00.000001Z")
        }
    }

    /// What a layer wrote.
    #[derive(Clone, Default)]
    pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }
    impl Lines {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What each format writes for the events `emit` sends.
    fn both(emit: impl Fn()) -> (String, String) {
        let (ours, theirs) = (Lines::default(), Lines::default());
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(JsonLines::with_timer(Fixed))
                    .with_writer(ours.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_timer(Fixed)
                    .with_writer(theirs.clone()),
            );
        tracing::subscriber::with_default(subscriber, emit);
        (ours.text(), theirs.text())
    }

    #[test]
    fn lines_are_those_of_the_tracing_subscriber_format() {
        let (ours, theirs) = both(|| {
            let ip = std::net::Ipv4Addr::new(192, 0, 2, 7);
            tracing::info!(
                target: "tessera::access",
                request_id = "abc",
                method = %http::Method::GET,
                path = "/iiif/a \"quoted\"\\ päth\n\t\u{1}/full",
                status = 200u16,
                bytes = 1024u64,
                delta = -3i64,
                big = u128::MAX,
                ok = true,
                client = %ip,
                http = ?http::Version::HTTP_11,
            );
            tracing::warn!(reason = "x", "a message with {} and \"quotes\"", 42);
            tracing::error!(
                error = &std::io::Error::other("gone\u{7f}") as &(dyn std::error::Error + 'static)
            );
            let span = tracing::info_span!("outer", id = 7);
            let _in = span.enter();
            tracing::debug!(inside = 1u8, "in a span");
        });
        assert_eq!(ours, theirs);
        assert_eq!(ours.lines().count(), 4);
        for line in ours.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn the_time_is_written_as_tracing_subscriber_writes_it() {
        let mut ours = String::new();
        let mut theirs = String::new();
        for _ in 0..3 {
            ours.clear();
            theirs.clear();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            Utc.format_time(&mut Writer::new(&mut ours)).unwrap();
            // The same second (unless one passed between the two): the same form, and a time
            // at most a second apart.
            if ours[..19] == theirs[..19] {
                break;
            }
        }
        assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
        assert_eq!(ours[..19], theirs[..19], "{ours} {theirs}");
        assert!(ours.ends_with('Z') && ours.as_bytes()[19] == b'.', "{ours}");
    }

    #[test]
    fn numbers_with_a_fraction_read_back_the_same() {
        let (ours, _) = both(|| {
            tracing::info!(
                a = 0.802_631_999_999_999_9f64,
                b = 1.0e-7f64,
                c = 3.0f64,
                d = f64::NAN
            );
        });
        let v: serde_json::Value = serde_json::from_str(ours.trim()).unwrap();
        assert_eq!(v["a"].as_f64(), Some(0.802_631_999_999_999_9));
        assert_eq!(v["b"].as_f64(), Some(1.0e-7));
        assert_eq!(v["c"].as_f64(), Some(3.0));
        assert!(v["d"].is_null());
    }

    proptest::proptest! {
        #[test]
        fn a_fraction_is_written_as_display_writes_it(
            value in proptest::prop_oneof![
                proptest::num::f64::ANY,
                0.0..100_000.0f64,
                -1e-3..1e-3f64,
            ]
        ) {
            let mut ours = String::new();
            number_with_fraction(&mut ours, value).unwrap();
            let expected = if value.is_finite() { format!("{value}") } else { "null".into() };
            proptest::prop_assert_eq!(ours, expected);
        }
    }

    proptest::proptest! {
        /// Doubles with few binary digits after the point: where two shortest decimals can tie.
        #[test]
        fn a_fraction_of_few_binary_digits_is_written_as_display_writes_it(
            m in 1u64..(1 << 53),
            shift in 0u32..53,
            k in 0i32..60,
            negative in proptest::bool::ANY,
        ) {
            let m = (m >> shift).max(1);
            let value = m as f64 / 2f64.powi(k) * if negative { -1.0 } else { 1.0 };
            let mut ours = String::new();
            number_with_fraction(&mut ours, value).unwrap();
            proptest::prop_assert_eq!(ours, format!("{value}"));
        }
    }

    #[test]
    fn the_fractions_edges_are_written_as_display_writes_them() {
        for value in [
            2_189_745_492_579_392.2,
            73_040_939_584.0 + 61.0 / 64.0,
            201.0 / 2_097_152.0,
            0.0,
            -0.0,
            1.0,
            3.0,
            1e15,
            1e16,
            1e17,
            1e-5,
            1e-7,
            1e300,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            0.1 + 0.2,
        ] {
            let mut ours = String::new();
            number_with_fraction(&mut ours, value).unwrap();
            assert_eq!(ours, format!("{value}"));
        }
    }

    /// Escaping byte by byte, the plain way: what `Escaped` must write.
    fn escaped_plainly(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn escaping_is_the_plain_ways(
            s in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[ -~]{0,80}",
                "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é]{0,40}",
            ]
        ) {
            let mut ours = String::new();
            Escaped(&mut ours).write_str(&s).unwrap();
            proptest::prop_assert_eq!(ours, escaped_plainly(&s));
        }
    }

    #[test]
    fn micros_are_six_digits() {
        for micros in [0, 7, 999_999, 123_456, 40] {
            let mut ours = String::new();
            write_micros(&mut ours, micros).unwrap();
            assert_eq!(ours, format!(".{micros:06}Z"));
        }
    }
}
