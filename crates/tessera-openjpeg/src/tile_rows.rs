//! A decode of several tile rows shared out over threads: one band of whole tile rows each,
//! decoded by a decoder of its own.
//!
//! Why: OpenJPEG's own threads share out the code-blocks of one tile at a time. A small view of
//! a tiled master decodes many small tiles (`full/!200,200` of a 75 MP master with 1024² tiles:
//! 80 tiles of 32×32 pixels at reduce 5), each with too few code-blocks to share, so two
//! OpenJPEG threads were slower than one (34 ms against 23–28). Tiles are decoded independently
//! of each other, so bands of whole tile rows on threads of their own share the cores out by
//! tiles instead, for the same pixels.
//!
//! Why the pixels are the same: a band is a region (`opj_set_decode_area`) from one tile-row
//! boundary to the next band's, cut to the decode's own region; no tile is cut by a band that
//! is not cut the same way by the whole decode, and every resolution's (and subsampled
//! component's) rows are ceilings of the reference grid's, which nest, so the bands' rows one
//! after another are the whole decode's rows. The tests compare both over tiled fixtures.
//!
//! Why two bands per thread, taken in turn: a thread started for a decode may start late (on
//! this 2-core machine, when the other core had been idle, the second band began 0.2–5 ms
//! after the first; `docs/benchmarks.md`, "Small views decoded alone"). With one band per
//! thread the first thread then waited for it; with bands taken from a shared queue the thread
//! already running takes more of them (a small view's decode after an idle pause: 2–5 %
//! sooner, median). More bands than two per thread cost more than they save: each opens the
//! codestream again.
//!
//! Why the helpers are started on another CPU: see the `placement` module (on a virtual
//! machine, a helper was otherwise queued behind this thread for milliseconds).

use crate::placement::Placement;
use crate::stream::Source;
use crate::{DecodeError, DecodeOptions, Decoded, HeaderInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Bands per decoding thread (see the module's doc).
pub(crate) const BANDS_PER_THREAD: u32 = 2;

/// The bands `[y0, y1)` splits into, at most `count`: runs of whole tile rows (cut to
/// `y0..y1` at the ends), as even as the rows allow; a single band when there is one tile row
/// or `count` is 1.
pub(crate) fn bands(info: &HeaderInfo, (y0, y1): (u32, u32), count: u32) -> Vec<(u32, u32)> {
    let (origin, height) = (u64::from(info.tile_y0), u64::from(info.tile_height));
    if height == 0 || y0 >= y1 || u64::from(y0) < origin {
        return vec![(y0, y1)];
    }
    let first_row = (u64::from(y0) - origin) / height;
    let last_row = (u64::from(y1) - 1 - origin) / height;
    let rows = last_row - first_row + 1;
    let n = rows.min(u64::from(count.max(1)));
    if n < 2 {
        return vec![(y0, y1)];
    }
    // The boundary before band i, on the reference grid, kept within y0..=y1.
    let boundary = |i: u64| -> u32 {
        let row = first_row + i * rows / n;
        let y = origin + row * height;
        y.clamp(u64::from(y0), u64::from(y1)) as u32
    };
    (0..n)
        .map(|i| {
            let top = if i == 0 { y0 } else { boundary(i) };
            let bottom = if i + 1 == n { y1 } else { boundary(i + 1) };
            (top, bottom)
        })
        .collect()
}

/// Helper threads that borrow the decode's stack frame, joined when dropped (so also when the
/// calling thread unwinds), as `std::thread::scope` joins its own; plain threads because only
/// their handles give the `pthread_t` that [`Placement::send_elsewhere`] needs.
struct Helpers(Vec<std::thread::JoinHandle<()>>);

impl Drop for Helpers {
    fn drop(&mut self) {
        for helper in self.0.drain(..) {
            let _ = helper.join();
        }
    }
}

/// Decodes columns `x0..x1` of `bands` (from [`bands`]) on `opts.threads` threads (this one
/// and others), each taking the next band not yet taken, and stacks their rows: `width` ×
/// `height` pixels, as the whole decode gives them.
pub(crate) fn decode_in_parallel(
    source: &(dyn Source + Sync),
    opts: &DecodeOptions,
    (x0, x1): (u32, u32),
    bands: &[(u32, u32)],
    (width, height): (u32, u32),
) -> Result<Decoded, DecodeError> {
    if bands.is_empty() {
        return Err(DecodeError::InvalidOptions("no rows to decode".into()));
    }
    let band_opts = |&(top, bottom): &(u32, u32)| DecodeOptions {
        region: Some((x0, top, x1, bottom)),
        threads: 1,
        ..*opts
    };
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<Result<Decoded, DecodeError>>> =
        bands.iter().map(|_| OnceLock::new()).collect();
    let take_bands = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(band) = bands.get(i) else { break };
        let _ = slots[i].set(crate::decode_source(source, &band_opts(band)));
    };
    let wanted = (opts.threads as usize).min(bands.len()).saturating_sub(1);
    let placement = if wanted > 0 { Placement::here() } else { None };
    let helper = || {
        if let Some(placement) = &placement {
            placement.free_this_thread();
        }
        take_bands()
    };
    let mut helpers = Helpers(Vec::with_capacity(wanted));
    for _ in 0..wanted {
        // SAFETY: `helpers` joins every thread spawned here before what `helper` borrows
        // (declared above it) is dropped, also while this thread unwinds.
        match unsafe { std::thread::Builder::new().spawn_unchecked(helper) } {
            Ok(spawned) => {
                if let Some(placement) = &placement {
                    placement.send_elsewhere(&spawned);
                }
                helpers.0.push(spawned);
            }
            // No thread to be had: the threads already running take the bands.
            Err(e) => {
                tracing::debug!("a decode helper thread was not started: {e}");
                break;
            }
        }
    }
    take_bands();
    // A helper that panicked leaves its band's slot empty: an error below, not a panic.
    drop(helpers);
    let mut decoded = slots.into_iter().map(|slot| {
        slot.into_inner()
            .unwrap_or_else(|| Err(DecodeError::Decode("a band's decode panicked".into())))
    });
    let Some(whole) = decoded.next() else {
        return Err(DecodeError::Decode("no band decoded".into()));
    };
    let mut whole = whole?;
    let row_bytes = whole.pixels.len() / whole.height.max(1) as usize;
    whole
        .pixels
        .reserve_exact((height.saturating_sub(whole.height) as usize) * row_bytes);
    for band in decoded {
        let band = band?;
        if (band.width, band.channels) != (whole.width, whole.channels) {
            return Err(DecodeError::Decode(format!(
                "a band decoded {}x{} with {} channels beside {} columns with {}",
                band.width, band.height, band.channels, whole.width, whole.channels
            )));
        }
        whole.pixels.extend_from_slice(&band.pixels);
        whole.height += band.height;
    }
    if (whole.width, whole.height) != (width, height) {
        return Err(DecodeError::Decode(format!(
            "the bands decoded {}x{}, expected {width}x{height}",
            whole.width, whole.height
        )));
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Codec;
    use proptest::prelude::*;

    fn grid(tile_y0: u32, tile_height: u32) -> HeaderInfo {
        HeaderInfo {
            codec: Codec::J2k,
            width: 0,
            height: 0,
            x0: 0,
            y0: 0,
            components: 3,
            levels: 5,
            tile_width: tile_height,
            tile_height,
            tiles_x: 1,
            tiles_y: 1,
            tile_x0: 0,
            tile_y0,
        }
    }

    proptest! {
        /// The bands cover `y0..y1` exactly, in order, and each boundary inside it is a tile
        /// row's; there are as many as threads or tile rows allow.
        #[test]
        fn bands_are_whole_tile_rows_covering_the_rows_asked(
            tile_y0 in 0u32..100,
            tile_height in 1u32..300,
            y0_past in 0u32..2000,
            len in 1u32..3000,
            threads in 0u32..9,
        ) {
            let y0 = tile_y0 + y0_past;
            let y1 = y0 + len;
            let bands = bands(&grid(tile_y0, tile_height), (y0, y1), threads);
            prop_assert_eq!(bands.first().map(|b| b.0), Some(y0));
            prop_assert_eq!(bands.last().map(|b| b.1), Some(y1));
            for pair in bands.windows(2) {
                prop_assert_eq!(pair[0].1, pair[1].0);
                prop_assert_eq!((pair[0].1 - tile_y0) % tile_height, 0, "{:?}", bands);
            }
            for band in &bands {
                prop_assert!(band.0 < band.1, "{:?}", bands);
            }
            let rows = (y1 - 1 - tile_y0) / tile_height - (y0 - tile_y0) / tile_height + 1;
            prop_assert_eq!(bands.len() as u32, rows.min(threads.max(1)));
        }
    }

    #[test]
    fn one_tile_row_or_one_thread_is_one_band() {
        assert_eq!(bands(&grid(0, 1024), (0, 1000), 4), vec![(0, 1000)]);
        assert_eq!(bands(&grid(0, 256), (0, 1000), 1), vec![(0, 1000)]);
        assert_eq!(bands(&grid(0, 0), (0, 1000), 4), vec![(0, 1000)]);
        assert_eq!(
            bands(&grid(0, 256), (100, 1000), 2),
            vec![(100, 512), (512, 1000)]
        );
    }
}
