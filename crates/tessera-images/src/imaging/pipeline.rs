//! From an index and a resolved IIIF request to encoded bytes: plan the byte ranges, fetch them
//! in parallel, assemble a codestream, decode the reduced resolution, resize and encode.
//!
//! Decoding is CPU work: it runs on Tokio's blocking pool, behind a per-handler limit on
//! concurrent decodes, and OpenJPEG is told the largest output it may produce before it starts.
//! OpenJPEG cannot be interrupted, so a decode that overruns its time limit is answered with
//! 504 at once while it finishes in the background, still holding its permit: a flood of slow
//! images cannot start more decodes than the limit.

use super::spare_cores::{self, Wanted};
use crate::metrics::DECODES;
use crate::resources::Indexed;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_iiif::{Format, Quality, Resolved};
use tessera_jp2::{assemble, Plan, Unsupported};
use tessera_openjpeg::{decode, DecodeOptions};
use tessera_origin::{Origin, OriginError};
use tessera_proxy::traces::PHASE;
use tessera_render::{render, Bitmap, Output};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Ranges closer than this are fetched as one request.
pub const MAX_GAP: u64 = 64 << 10;
/// Ranged GETs in flight for one request. A tiled master written tile by tile needs a range per
/// tile (80 for a 75 MP image in 1024² tiles): with S3's first-byte latency each wave of reads
/// costs that latency, so 64 at once answer such a view in two waves where 16 took five
/// (`bench/views.sh` with `S3_LATENCY_MS=20`: 134 → 69 ms). Bytes in flight are bounded by
/// the plan (`max_fetch_bytes`), not by this.
const PARALLEL_RANGES: usize = 64;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ViewError {
    #[error("origin: {0}")]
    Origin(OriginError),
    /// The bytes do not decode, or do not make an image.
    #[error("{0}")]
    Corrupt(String),
    /// The fetched bytes are not what the index says is there: the object changed since it was
    /// indexed (or the index does not describe it).
    #[error("the bytes read do not fit the image's index: {0}")]
    NotAsIndexed(String),
    /// Tessera cannot produce this output (format, rotation).
    #[error("{0}")]
    NotSupported(String),
    /// The master is of a kind Tessera does not read (a TIFF in CMYK, say).
    #[error("{0}")]
    Unsupported(String),
    /// The output is beyond what its format can hold (a JPEG side over 65535 pixels).
    #[error("{0}")]
    Limit(String),
    /// Decoding and rendering took longer than the route allows.
    #[error("decoding took longer than {0:?}")]
    TimedOut(Duration),
    /// The decode task ended without an answer (it panicked).
    #[error("the decoder failed")]
    DecoderFailed,
    /// The decode slots are closed (the process is shutting down).
    #[error("shutting down")]
    Closed,
}

/// A route's decode slots: at most `max` decodes at once, each allowed `timeout`; measured
/// under the handler's name (see [`super::metrics::DECODES`]).
pub struct Decodes {
    permits: Arc<Semaphore>,
    timeout: Duration,
    handler: &'static str,
}

/// A place among a route's decodes, taken before fetching so that fetched bytes are bounded too.
pub struct DecodeSlot {
    held: Held,
    timeout: Duration,
}

/// A slot's permit, counted in `tessera_decodes_in_flight` while it is held, and the request
/// counted among those that want a decode (see [`spare_cores`]).
struct Held {
    _permit: OwnedSemaphorePermit,
    _wanted: Wanted,
    handler: &'static str,
}

impl Drop for Held {
    fn drop(&mut self) {
        DECODES.in_flight.with_label_values(&[self.handler]).dec();
    }
}

impl Decodes {
    pub fn new(max: usize, timeout: Duration, handler: &'static str) -> Self {
        // The handler's series exist (at 0) from the start.
        DECODES.in_flight.with_label_values(&[handler]);
        for outcome in ["ok", "failed", "timeout", "crashed"] {
            DECODES.outcomes.with_label_values(&[handler, outcome]);
        }
        Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            timeout,
            handler,
        }
    }

    /// Wait for a slot.
    pub async fn slot(&self) -> Result<DecodeSlot, ViewError> {
        let waited = Instant::now();
        let wanted = Wanted::new();
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ViewError::Closed)?;
        let handler = [self.handler];
        DECODES
            .wait
            .with_label_values(&handler)
            .observe(waited.elapsed().as_secs_f64());
        DECODES.in_flight.with_label_values(&handler).inc();
        Ok(DecodeSlot {
            held: Held {
                _permit: permit,
                _wanted: wanted,
                handler: self.handler,
            },
            timeout: self.timeout,
        })
    }
}

impl DecodeSlot {
    /// Run `work` (a decode and render) on the blocking pool, holding the slot until it ends,
    /// and wait for it at most the route's timeout.
    pub async fn run<F, T>(self, work: F) -> Result<T, ViewError>
    where
        F: FnOnce() -> Result<T, ViewError> + Send + 'static,
        T: Send + 'static,
    {
        let DecodeSlot { held, timeout } = self;
        let handler = held.handler;
        let span = tracing::info_span!(target: PHASE, "decode", handler);
        let task = tokio::task::spawn_blocking(move || {
            let _in_span = span.entered();
            let _held = held;
            let started = Instant::now();
            let result = work();
            let seconds = started.elapsed().as_secs_f64();
            DECODES
                .duration
                .with_label_values(&[handler])
                .observe(seconds);
            result
        });
        let (result, outcome) = match tokio::time::timeout(timeout, task).await {
            Ok(Ok(Ok(body))) => (Ok(body), "ok"),
            Ok(Ok(Err(e))) => (Err(e), "failed"),
            Ok(Err(_)) => (Err(ViewError::DecoderFailed), "crashed"),
            Err(_) => (Err(ViewError::TimedOut(timeout)), "timeout"),
        };
        DECODES
            .outcomes
            .with_label_values(&[handler, outcome])
            .inc();
        result
    }
}

/// What a partial read will fetch for a request of `width`×`height`.
pub fn plan(indexed: &Indexed, width: u32, height: u32) -> Result<(u8, Plan), Unsupported> {
    let reduce = indexed.index.reduce_for(width, height);
    let plan = indexed.index.plan(reduce, MAX_GAP)?;
    Ok((reduce, plan))
}

/// The output settings for a resolved request, or why Tessera cannot produce it.
pub fn output(r: &Resolved, jpeg_quality: u8) -> Result<Output, ViewError> {
    let format = match r.format {
        Format::Jpg => tessera_render::Format::Jpeg,
        Format::Png => tessera_render::Format::Png,
        Format::Webp => tessera_render::Format::Webp,
        f => {
            return Err(ViewError::NotSupported(format!(
                "format {f} is not available"
            )))
        }
    };
    // What each encoder can write: JPEG stores sides in 16 bits, WebP in 14.
    let max_side = match format {
        tessera_render::Format::Jpeg => super::defaults::MAX_SIDE,
        tessera_render::Format::Webp => 16_383,
        _ => u32::MAX,
    };
    if r.width > max_side || r.height > max_side {
        return Err(ViewError::Limit(format!(
            "size: {} output is at most {max_side} pixels a side; ask for a smaller size",
            r.format
        )));
    }
    if !r.rotation.is_multiple_of_90() {
        return Err(ViewError::NotSupported(
            "rotation: only multiples of 90 are available".into(),
        ));
    }
    let quality = match r.quality {
        Quality::Default | Quality::Color => tessera_render::Quality::Color,
        Quality::Gray => tessera_render::Quality::Gray,
        Quality::Bitonal => tessera_render::Quality::Bitonal,
    };
    Ok(Output {
        width: r.width,
        height: r.height,
        rotate: (r.rotation.degrees.rem_euclid(360.0)) as u16,
        mirror: r.rotation.mirror,
        quality,
        format,
        jpeg_quality,
    })
}

/// Fetch the plan's ranges in parallel and assemble the reduced codestream.
pub async fn fetch(
    origin: &dyn Origin,
    key: &str,
    indexed: &Indexed,
    plan: &Plan,
) -> Result<Vec<u8>, ViewError> {
    let fetched: BTreeMap<u64, Bytes> = stream::iter(plan.ranges.iter().cloned())
        .map(|r| async move {
            origin
                .read_range(key, r.clone())
                .await
                .map(|b| (r.start, b))
        })
        .buffer_unordered(PARALLEL_RANGES)
        .try_collect()
        .await
        .map_err(ViewError::Origin)?;
    assemble(&indexed.index, plan, &fetched).map_err(|e| ViewError::NotAsIndexed(e.to_string()))
}

/// A codestream [`fetch`] assembled for `reduce`, as the smaller image's where it can be (see
/// [`tessera_jp2::as_reduced_image`]), with the reduce to decode it at: 0 then, so that OpenJPEG
/// does not build the structures of the resolutions it would skip (for a large single-tile image,
/// most of a small view's decode). Only for assembled codestreams: a whole file holds every
/// resolution's packets.
pub fn smaller_image(codestream: Vec<u8>, reduce: u8) -> (Vec<u8>, u8) {
    match tessera_jp2::as_reduced_image(&codestream, reduce) {
        Some(smaller) => (smaller, 0),
        None => (codestream, reduce),
    }
}

/// A JPEG 2000 to decode: a codestream (or whole JP2) in memory, or a JP2 file read in place.
pub enum Jp2Input<'a> {
    Bytes(&'a [u8]),
    File(&'a std::fs::File),
}

/// Decode `input` at `reduce`, optionally a region in full-resolution pixels, with the cores
/// spare at the moment ([`spare_cores`]), and render the answer. Blocking: call it on the
/// blocking pool.
pub fn decode_and_render(
    input: Jp2Input<'_>,
    reduce: u8,
    region: Option<(u32, u32, u32, u32)>,
    out: &Output,
    max_pixels: u64,
) -> Result<Vec<u8>, ViewError> {
    let opts = DecodeOptions {
        reduce: u32::from(reduce),
        region,
        strict: false,
        max_pixels,
        threads: spare_cores::threads(),
    };
    let bitmap = decode_bitmap(input, &opts)?;
    render(&bitmap, None, out).map_err(|e| ViewError::Corrupt(e.to_string()))
}

/// The answer to a failed decode: a size beyond the route's limit is the client's to change.
pub(crate) fn decode_error(e: tessera_openjpeg::DecodeError) -> ViewError {
    match e {
        tessera_openjpeg::DecodeError::TooLarge { .. } => ViewError::NotSupported(format!(
            "the image is too large to decode at this size ({e})"
        )),
        e => ViewError::Corrupt(e.to_string()),
    }
}

/// Decode `input` as `opts` says into gray or RGB (an alpha channel is dropped). Blocking:
/// call it on the blocking pool.
pub(crate) fn decode_bitmap(
    input: Jp2Input<'_>,
    opts: &DecodeOptions,
) -> Result<Bitmap, ViewError> {
    let decoded = match input {
        Jp2Input::Bytes(codestream) => decode(codestream, opts),
        Jp2Input::File(file) => tessera_openjpeg::decode_file(file, opts),
    }
    .map_err(decode_error)?;
    let (channels, pixels) = match decoded.channels {
        1 | 3 => (decoded.channels, decoded.pixels),
        4 => (
            3,
            decoded
                .pixels
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        n => return Err(ViewError::NotSupported(format!("images with {n} channels"))),
    };
    Bitmap::new(decoded.width, decoded.height, channels, pixels)
        .map_err(|e| ViewError::Corrupt(e.to_string()))
}
