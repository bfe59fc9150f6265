//! The OpenJPEG decompressor handle and its message callbacks.
//!
//! OpenJPEG reports errors only as text through callbacks; a failed call returns `OPJ_FALSE`.
//! Each decode gets its own [`Messages`] buffer, registered as the callbacks' client data, so
//! the error text can go into [`DecodeError`](crate::DecodeError); every message also goes to
//! `tracing::debug!`. With worker threads OpenJPEG may call the callbacks from its pool
//! (serialised by its own mutex), hence the `Mutex`.

use std::ffi::{c_char, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::Mutex;

use openjpeg_sys as opj;

use crate::image::Image;
use crate::stream::Stream;
use crate::Codec;

/// At most this many messages are kept per decode (garbage input can emit one per packet).
const MAX_MESSAGES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Error,
    Warning,
    Info,
}

/// Messages OpenJPEG emitted during one decode.
#[derive(Default)]
pub(crate) struct Messages {
    log: Mutex<Vec<(Level, String)>>,
}

impl Messages {
    fn push(&self, level: Level, msg: String) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < MAX_MESSAGES {
            log.push((level, msg));
        }
    }

    /// The error messages joined, else the warnings, else `fallback`.
    pub(crate) fn summary(&self, fallback: &str) -> String {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        for level in [Level::Error, Level::Warning] {
            let text: Vec<&str> = log
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, m)| m.as_str())
                .collect();
            if !text.is_empty() {
                return text.join("; ");
            }
        }
        fallback.to_string()
    }
}

fn message_text(msg: *const c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    // SAFETY: OpenJPEG passes a NUL-terminated string (its formatted message buffer) that is
    // valid for the duration of the callback; we copy it out before returning.
    let text = unsafe { CStr::from_ptr(msg) };
    text.to_string_lossy().trim_end().to_string()
}

fn record(level: Level, msg: *const c_char, client: *mut c_void) {
    let text = message_text(msg);
    tracing::debug!(target: "tessera_openjpeg", ?level, "openjpeg: {text}");
    if !client.is_null() {
        // SAFETY: `client` is the `&Messages` registered in `Decoder::new`; the `'m` lifetime
        // of `Decoder<'m>` keeps it alive for as long as the codec can call back.
        let messages = unsafe { &*client.cast::<Messages>() };
        messages.push(level, text);
    }
}

unsafe extern "C" fn on_error(msg: *const c_char, client: *mut c_void) {
    record(Level::Error, msg, client);
}

unsafe extern "C" fn on_warning(msg: *const c_char, client: *mut c_void) {
    record(Level::Warning, msg, client);
}

unsafe extern "C" fn on_info(msg: *const c_char, client: *mut c_void) {
    record(Level::Info, msg, client);
}

/// Codestream parameters from the main header (`opj_get_cstr_info`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodestreamInfo {
    pub tile_width: u32,
    pub tile_height: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// The tile grid's origin on the reference grid (`XTOsiz`, `YTOsiz`).
    pub tile_x0: u32,
    pub tile_y0: u32,
    /// The smallest number of decomposition levels over the components' default coding style.
    pub levels: u32,
}

/// An owned decompressor; destroyed on drop.
pub(crate) struct Decoder<'m> {
    raw: NonNull<opj::opj_codec_t>,
    _messages: PhantomData<&'m Messages>,
}

impl<'m> Decoder<'m> {
    /// Creates a decompressor for `codec` with default parameters and callbacks into
    /// `messages`.
    pub(crate) fn new(codec: Codec, messages: &'m Messages) -> Result<Self, String> {
        let format = match codec {
            Codec::J2k => opj::CODEC_FORMAT::OPJ_CODEC_J2K,
            Codec::Jp2 => opj::CODEC_FORMAT::OPJ_CODEC_JP2,
        };
        // SAFETY: plain constructor; null is handled below.
        let raw = NonNull::new(unsafe { opj::opj_create_decompress(format) })
            .ok_or_else(|| "opj_create_decompress failed".to_string())?;
        let decoder = Decoder {
            raw,
            _messages: PhantomData,
        };
        let client = ptr::from_ref(messages).cast_mut().cast::<c_void>();
        // SAFETY: `raw` is a live codec. `client` points to `messages`, which outlives the
        // decoder ('m), and the callbacks only take a shared reference to it.
        unsafe {
            opj::opj_set_error_handler(raw.as_ptr(), Some(on_error), client);
            opj::opj_set_warning_handler(raw.as_ptr(), Some(on_warning), client);
            opj::opj_set_info_handler(raw.as_ptr(), Some(on_info), client);
        }
        // `opj_dparameters_t` holds two 4 KiB path buffers: keep it off the caller's stack.
        let mut params: Box<opj::opj_dparameters_t> =
            // SAFETY: a plain C struct of integers and arrays, for which all-zero is valid; it
            // is then filled in by `opj_set_default_decoder_parameters`.
            Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `params` is a valid, exclusively borrowed parameter struct and `raw` a live
        // codec; OpenJPEG copies what it needs and keeps no pointer to `params`.
        let ok = unsafe {
            opj::opj_set_default_decoder_parameters(&mut *params);
            opj::opj_setup_decoder(raw.as_ptr(), &mut *params)
        };
        if ok == 0 {
            return Err(messages.summary("opj_setup_decoder failed"));
        }
        Ok(decoder)
    }

    /// Strict mode on (OpenJPEG's default) or off (decode truncated codestreams as far as they
    /// go).
    pub(crate) fn set_strict(&mut self, strict: bool) {
        // SAFETY: live codec; allowed any time before decoding.
        unsafe { opj::opj_decoder_set_strict_mode(self.raw.as_ptr(), opj::OPJ_BOOL::from(strict)) };
    }

    /// Worker threads: 0 or 1 decodes on the calling thread. Must precede `read_header`.
    pub(crate) fn set_threads(&mut self, threads: u32) {
        let n = if threads <= 1 {
            0
        } else {
            i32::try_from(threads).unwrap_or(i32::MAX)
        };
        // SAFETY: live codec, called after setup and before the header is read, as required.
        unsafe { opj::opj_codec_set_threads(self.raw.as_ptr(), n) };
    }

    /// Reads the main header (and the JP2 boxes before it) into a new image.
    pub(crate) fn read_header(&mut self, stream: &mut Stream<'_>) -> Option<Image> {
        let mut image: *mut opj::opj_image_t = ptr::null_mut();
        // SAFETY: live codec and stream; on success OpenJPEG stores a newly allocated image in
        // `image`, which `Image` then owns. On failure it may still have stored one, which
        // `Image::from_raw` takes ownership of (and frees) as well.
        let ok = unsafe { opj::opj_read_header(stream.as_ptr(), self.raw.as_ptr(), &mut image) };
        // SAFETY: `image` is null or an image allocated by OpenJPEG that nothing else owns.
        let image = unsafe { Image::from_raw(image) };
        if ok == 0 {
            return None;
        }
        image
    }

    /// Tile grid and decomposition levels; `None` if OpenJPEG returned nothing usable.
    pub(crate) fn codestream_info(&self) -> Option<CodestreamInfo> {
        // SAFETY: live codec whose header has been read; the result is owned by `CstrInfo`.
        let info = CstrInfo(NonNull::new(unsafe {
            opj::opj_get_cstr_info(self.raw.as_ptr())
        })?);
        // SAFETY: `info.0` points to a valid `opj_codestream_info_v2_t` until `info` drops.
        let v = unsafe { info.0.as_ref() };
        let tccps = v.m_default_tile_info.tccp_info;
        let n = usize::try_from(v.nbcomps).ok()?;
        if tccps.is_null() || n == 0 {
            return None;
        }
        // SAFETY: OpenJPEG allocates `tccp_info` with `nbcomps` entries.
        let tccps = unsafe { std::slice::from_raw_parts(tccps, n) };
        let levels = tccps
            .iter()
            .map(|t| t.numresolutions.saturating_sub(1))
            .min()?;
        Some(CodestreamInfo {
            tile_width: v.tdx,
            tile_height: v.tdy,
            tiles_x: v.tw,
            tiles_y: v.th,
            tile_x0: v.tx0,
            tile_y0: v.ty0,
            levels,
        })
    }

    /// Discards `reduce` resolution levels.
    pub(crate) fn set_reduce(&mut self, reduce: u32) -> bool {
        // SAFETY: live codec whose header has been read.
        unsafe { opj::opj_set_decoded_resolution_factor(self.raw.as_ptr(), reduce) != 0 }
    }

    /// Restricts decoding to `[x0, x1) × [y0, y1)` on the full-resolution reference grid.
    pub(crate) fn set_area(&mut self, image: &mut Image, area: (i32, i32, i32, i32)) -> bool {
        let (x0, y0, x1, y1) = area;
        // SAFETY: live codec and the image its `read_header` returned; OpenJPEG updates the
        // image's bounds in place.
        unsafe { opj::opj_set_decode_area(self.raw.as_ptr(), image.as_ptr(), x0, y0, x1, y1) != 0 }
    }

    /// Decodes into `image`, then reads to the end of the codestream.
    pub(crate) fn decode(&mut self, stream: &mut Stream<'_>, image: &mut Image) -> bool {
        // SAFETY: live codec, its stream and the image from its `read_header`; OpenJPEG
        // (re)allocates the component buffers inside the image, which `Image` frees.
        unsafe { opj::opj_decode(self.raw.as_ptr(), stream.as_ptr(), image.as_ptr()) != 0 }
    }

    /// Reads what follows the last tile (EOC, trailing JP2 boxes).
    pub(crate) fn end_decompress(&mut self, stream: &mut Stream<'_>) -> bool {
        // SAFETY: live codec and its stream.
        unsafe { opj::opj_end_decompress(self.raw.as_ptr(), stream.as_ptr()) != 0 }
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `opj_create_decompress` and is destroyed only here.
        unsafe { opj::opj_destroy_codec(self.raw.as_ptr()) }
    }
}

/// Owns an `opj_codestream_info_v2_t`.
struct CstrInfo(NonNull<opj::opj_codestream_info_v2_t>);

impl Drop for CstrInfo {
    fn drop(&mut self) {
        let mut p = self.0.as_ptr();
        // SAFETY: `p` came from `opj_get_cstr_info` and is freed only here.
        unsafe { opj::opj_destroy_cstr_info(&mut p) }
    }
}
