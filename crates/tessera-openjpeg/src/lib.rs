//! A thin, safe wrapper over the OpenJPEG bundled by `openjpeg-sys` (OpenJPEG 2.5.3, built
//! statically with `cc`): decode a JPEG 2000 codestream (`.j2k`) or JP2 file held in memory
//! ([`decode`]) or read in place from a file ([`decode_file`], which reads only what the
//! region and resolution need).
//!
//! Why not the `jpeg2k` crate, which wraps the same library: its in-memory stream's skip
//! callback returns the new position instead of the number of bytes skipped, which breaks
//! region decodes of tiled files ("Stream too short"), and its non-strict mode is a no-op
//! unless a cargo feature is enabled. This crate implements the stream per OpenJPEG's contract
//! (see the `stream` module), always exposes strict mode, checks the output size from the
//! header before decoding anything, and keeps every `unsafe` block in this crate.
//!
//! ```no_run
//! let data = std::fs::read("image.jp2").unwrap();
//! let info = tessera_openjpeg::read_header(&data).unwrap();
//! let opts = tessera_openjpeg::DecodeOptions {
//!     reduce: 2,
//!     region: Some((0, 0, info.width / 2, info.height / 2)),
//!     ..Default::default()
//! };
//! let img = tessera_openjpeg::decode(&data, &opts).unwrap();
//! assert_eq!(img.pixels.len(), img.width as usize * img.height as usize * img.channels as usize);
//! ```
//!
//! Pixel conversion rules (precision, signedness, channel count, subsampling, color spaces) are
//! described in the `image` module.

#![deny(unsafe_op_in_unsafe_fn)]

mod codec;
mod image;
mod placement;
mod stream;
mod tile_rows;
mod truncated;

use codec::{Decoder, Messages};
use image::ceil_div_pow2;
use stream::{FileSource, Source, Stream};

/// The container: a raw codestream or a JP2 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// A raw JPEG 2000 codestream, starting with SOC + SIZ (`FF4F FF51`).
    J2k,
    /// A JP2 file, starting with the signature box (`0000000C 6A502020`).
    Jp2,
}

impl Codec {
    /// Detects the container from the first bytes.
    pub fn detect(data: &[u8]) -> Option<Codec> {
        if data.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
            Some(Codec::J2k)
        } else if data.starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20]) {
            Some(Codec::Jp2)
        } else {
            None
        }
    }
}

/// What to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Discard this many resolution levels: the output is the image divided by `2^reduce`
    /// (rounding up). At most [`HeaderInfo::levels`].
    pub reduce: u32,
    /// `(x0, y0, x1, y1)`, end-exclusive, in full-resolution reference-grid coordinates; clamped
    /// to the image area. `None` decodes the whole image.
    pub region: Option<(u32, u32, u32, u32)>,
    /// `false` decodes truncated codestreams as far as they go (missing data stays flat).
    pub strict: bool,
    /// Refuse, before decoding, an output of more than this many pixels.
    pub max_pixels: u64,
    /// Threads for the decode; 0 or 1 decodes on the calling thread. A region over several
    /// tile rows is shared out in bands of whole tile rows (two per thread, each thread taking
    /// the next; a decoder each: the `tile_rows` module, as small tiles have too few
    /// code-blocks to share); within one tile row,
    /// OpenJPEG's own threads share out the tile's code-blocks. The pixels are the same.
    pub threads: u32,
}

impl Default for DecodeOptions {
    /// Whole image, full resolution, strict, at most 100 megapixels, one thread.
    fn default() -> Self {
        DecodeOptions {
            reduce: 0,
            region: None,
            strict: true,
            max_pixels: 100_000_000,
            threads: 1,
        }
    }
}

/// A decoded image: 8-bit samples, interleaved, row-major, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    /// 1 gray, 3 RGB, 4 RGBA.
    pub channels: u8,
    pub pixels: Vec<u8>,
}

/// The main header's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderInfo {
    pub codec: Codec,
    /// Image size at full resolution (`Xsiz - XOsiz`, `Ysiz - YOsiz`).
    pub width: u32,
    pub height: u32,
    /// Image origin on the reference grid (`XOsiz`, `YOsiz`; usually 0).
    pub x0: u32,
    pub y0: u32,
    pub components: u32,
    /// Decomposition levels (NL): the largest usable `reduce`. The minimum over components.
    pub levels: u32,
    pub tile_width: u32,
    pub tile_height: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// The tile grid's origin on the reference grid (`XTOsiz`, `YTOsiz`; usually 0).
    pub tile_x0: u32,
    pub tile_y0: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JPEG 2000, or the main header could not be read.
    #[error("JPEG 2000 header: {0}")]
    Header(String),
    /// The requested output exceeds [`DecodeOptions::max_pixels`].
    #[error("JPEG 2000 output {width}x{height} exceeds the limit of {max_pixels} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    /// The request does not fit the image (`reduce` above the levels, empty or outside region).
    #[error("invalid JPEG 2000 decode options: {0}")]
    InvalidOptions(String),
    /// OpenJPEG failed while decoding (corrupt or, in strict mode, truncated data).
    #[error("JPEG 2000 decode: {0}")]
    Decode(String),
    /// A valid image this wrapper does not convert (e.g. CMYK).
    #[error("unsupported JPEG 2000 image: {0}")]
    Unsupported(String),
}

/// A decoder whose main header has been read.
struct Opened<'a, 'm> {
    decoder: Decoder<'m>,
    // Each guard frees its own handle on every path; `Messages` (borrowed for 'm) outlives them.
    stream: Stream<'a>,
    image: image::Image,
    info: HeaderInfo,
}

/// The container of `source`, from its first bytes.
fn detect(source: &dyn Source) -> Result<Codec, DecodeError> {
    let mut start = [0u8; 8];
    let n = source.read_at(0, &mut start);
    Codec::detect(&start[..n])
        .ok_or_else(|| DecodeError::Header("not a JPEG 2000 codestream or JP2 file".into()))
}

fn open<'a, 'm>(
    source: &'a dyn Source,
    messages: &'m Messages,
    strict: bool,
    threads: u32,
) -> Result<Opened<'a, 'm>, DecodeError> {
    let codec = detect(source)?;
    let mut decoder = Decoder::new(codec, messages).map_err(DecodeError::Header)?;
    decoder.set_strict(strict);
    decoder.set_threads(threads);
    let mut stream = Stream::new(source)
        .ok_or_else(|| DecodeError::Header("opj_stream_create failed".into()))?;
    let image = decoder
        .read_header(&mut stream)
        .ok_or_else(|| DecodeError::Header(messages.summary("opj_read_header failed")))?;
    let cs = decoder
        .codestream_info()
        .ok_or_else(|| DecodeError::Header("no codestream information".into()))?;
    let (x0, y0, x1, y1) = image.area();
    let info = HeaderInfo {
        codec,
        width: x1.saturating_sub(x0),
        height: y1.saturating_sub(y0),
        x0,
        y0,
        components: image.components().len() as u32,
        levels: cs.levels,
        tile_width: cs.tile_width,
        tile_height: cs.tile_height,
        tiles_x: cs.tiles_x,
        tiles_y: cs.tiles_y,
        tile_x0: cs.tile_x0,
        tile_y0: cs.tile_y0,
    };
    if info.width == 0 || info.height == 0 || info.components == 0 {
        return Err(DecodeError::Header("empty image".into()));
    }
    Ok(Opened {
        decoder,
        stream,
        image,
        info,
    })
}

/// Reads the main header (and JP2 boxes before it) without decoding any tile.
pub fn read_header(data: &[u8]) -> Result<HeaderInfo, DecodeError> {
    let messages = Messages::default();
    let opened = open(&data, &messages, true, 0)?;
    Ok(opened.info)
}

/// Decodes `data` (a J2K codestream or a JP2 file) as `opts` asks.
///
/// With `strict: false`, a codestream cut short anywhere after its main header decodes as far
/// as its data goes (see the `truncated` module for what that takes beyond OpenJPEG's own
/// non-strict mode); missing data decodes as flat areas.
pub fn decode(data: &[u8], opts: &DecodeOptions) -> Result<Decoded, DecodeError> {
    let repaired = match opts.strict {
        true => None,
        false => Codec::detect(data).and_then(|codec| truncated::repair(codec, data)),
    };
    if repaired.is_some() {
        tracing::debug!(target: "tessera_openjpeg", "truncated codestream patched for a non-strict decode");
    }
    let data = repaired.as_deref().unwrap_or(data);
    decode_source(&data, opts)
}

/// Decodes the JPEG 2000 file `file` as `opts` asks, reading only the parts of it the region
/// and resolution need, at its length when called.
///
/// A file is decoded as it is: with `strict: false`, OpenJPEG's own non-strict mode copes with
/// a file cut inside its last tile-part, but the repair [`decode`] makes of data cut anywhere
/// else (a prefix fetched on purpose) is not made; such a file fails with [`DecodeError::Decode`].
/// So does a file that shrinks while it is read.
pub fn decode_file(file: &std::fs::File, opts: &DecodeOptions) -> Result<Decoded, DecodeError> {
    let source = FileSource::new(file)
        .map_err(|e| DecodeError::Header(format!("cannot read the file: {e}")))?;
    decode_source(&source, opts)
}

fn decode_source(
    source: &(dyn Source + Sync),
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let messages = Messages::default();
    let Opened {
        mut decoder,
        mut stream,
        mut image,
        info,
    } = open(source, &messages, opts.strict, opts.threads)?;

    if opts.reduce > info.levels {
        return Err(DecodeError::InvalidOptions(format!(
            "reduce {} exceeds the {} decomposition levels",
            opts.reduce, info.levels
        )));
    }
    let (ix0, iy0, ix1, iy1) = image.area();
    let (x0, y0, x1, y1) = match opts.region {
        None => (ix0, iy0, ix1, iy1),
        Some((x0, y0, x1, y1)) => (x0.max(ix0), y0.max(iy0), x1.min(ix1), y1.min(iy1)),
    };
    if x0 >= x1 || y0 >= y1 {
        return Err(DecodeError::InvalidOptions(format!(
            "region {:?} is empty or outside the image ({ix0},{iy0})-({ix1},{iy1})",
            opts.region
        )));
    }
    let width = ceil_div_pow2(x1, opts.reduce) - ceil_div_pow2(x0, opts.reduce);
    let height = ceil_div_pow2(y1, opts.reduce) - ceil_div_pow2(y0, opts.reduce);
    if width == 0 || height == 0 {
        return Err(DecodeError::InvalidOptions(format!(
            "region {:?} is empty at reduce {}",
            opts.region, opts.reduce
        )));
    }
    if u64::from(width) * u64::from(height) > opts.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            max_pixels: opts.max_pixels,
        });
    }

    if opts.threads > 1 {
        let count = opts.threads.saturating_mul(tile_rows::BANDS_PER_THREAD);
        let bands = tile_rows::bands(&info, (y0, y1), count);
        if bands.len() > 1 {
            // Close this decoder first: each band opens its own.
            drop((decoder, stream, image));
            return tile_rows::decode_in_parallel(source, opts, (x0, x1), &bands, (width, height));
        }
    }
    if !decoder.set_reduce(opts.reduce) {
        return Err(DecodeError::InvalidOptions(
            messages.summary("opj_set_decoded_resolution_factor failed"),
        ));
    }
    if opts.region.is_some() {
        let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let area = (to_i32(x0), to_i32(y0), to_i32(x1), to_i32(y1));
        if !decoder.set_area(&mut image, area) {
            return Err(DecodeError::InvalidOptions(
                messages.summary("opj_set_decode_area failed"),
            ));
        }
    }
    if !decoder.decode(&mut stream, &mut image) {
        return Err(DecodeError::Decode(messages.summary("opj_decode failed")));
    }
    if !decoder.end_decompress(&mut stream) {
        if opts.strict {
            return Err(DecodeError::Decode(
                messages.summary("opj_end_decompress failed"),
            ));
        }
        tracing::debug!(
            target: "tessera_openjpeg",
            "ignoring opj_end_decompress failure in non-strict mode: {}",
            messages.summary("")
        );
    }
    let decoded = image.to_decoded(opts.reduce)?;
    if (decoded.width, decoded.height) != (width, height) {
        return Err(DecodeError::Decode(format!(
            "decoded {}x{}, expected {width}x{height}",
            decoded.width, decoded.height
        )));
    }
    Ok(decoded)
}
