//! Masters that are not JPEG 2000: JPEG, PNG and TIFF (striped, tiled, and pyramidal with its
//! reduced-resolution pages), read from the local copy in the hot cache.
//!
//! 1. [`probe`] reads only the header (once per file, kept while the file is unchanged): the size, and for a TIFF every page of the pyramid
//!    (each IFD that repeats the image at a smaller size) and its tile size.
//! 2. [`decode_region`] picks the smallest page that still has the pixels the output needs,
//!    and reads only the tiles or strips of that page the region touches (`tiff`'s
//!    `read_chunk`), so a small view of a pyramidal TIFF reads a small page, and a tile of a
//!    tiled one reads a few of its tiles. A JPEG or PNG has one page, decoded whole.
//! 3. The caller renders the region (crop, resize, rotate, encode) with `tessera-render`, as
//!    for any decode.
//!
//! What a page may cost is bounded before it is read: the region of the chosen page must hold
//! at most the route's `max_decode_pixels`. Samples of 16 bits are kept to their high 8;
//! palette, CMYK, Lab and planar TIFFs are refused (415) with the reason. The crates are those
//! of the image-rs project (`tiff`, `png`) and `zune-jpeg`, which `tessera-render` already uses
//! for thumbnails: one JPEG decoder in the binary.

use super::pipeline::ViewError;
pub use crate::format::Format;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;
pub use tessera_iiif::Rect;
use tessera_render::Bitmap;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::ColorType;

/// One resolution of the image: the full size first, then smaller ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// The TIFF directory (IFD) it is in; 0 for JPEG and PNG.
    pub ifd: usize,
    pub width: u32,
    pub height: u32,
    /// The tile size of a tiled TIFF page.
    pub tile: Option<(u32, u32)>,
}

/// What [`probe`] read of a master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RasterInfo {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// Largest first; `pages[0]` is the full image.
    pub pages: Vec<Page>,
    /// The file's size and modification time: what its answers' ETags are made from.
    pub version: String,
}

impl RasterInfo {
    /// The sizes of a pyramid's reduced pages, largest first (none for a single picture).
    pub fn reduced_sizes(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.pages.iter().skip(1).map(|p| (p.width, p.height))
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> ViewError {
    ViewError::Corrupt(format!("{what}: {e}"))
}

/// Probed files, by path, size and modification time: a file replaced by a new copy is probed
/// again. Each request of a viewer needs the pages of its image; reading them once per file,
/// not once per tile, is what a TIFF's directories cost.
static PROBED: LazyLock<moka::sync::Cache<FileVersion, Arc<RasterInfo>>> =
    LazyLock::new(|| moka::sync::Cache::new(4096));

/// A file as it is now: its path, size and modification time.
type FileVersion = (PathBuf, u64, Option<SystemTime>);

/// What the master at `path` is: its size and pages, read from its header once for the file
/// as it is now.
pub fn probe(path: &Path, format: Format) -> Result<Arc<RasterInfo>, ViewError> {
    let meta = std::fs::metadata(path).map_err(|e| corrupt("cannot open the file", e))?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(info) = PROBED.get(&key) {
        return Ok(info);
    }
    let mut info = read_header(path, format)?;
    info.version = format!("{}-{:?}", key.1, key.2);
    let info = Arc::new(info);
    PROBED.insert(key, info.clone());
    Ok(info)
}

fn read_header(path: &Path, format: Format) -> Result<RasterInfo, ViewError> {
    let file = std::fs::File::open(path).map_err(|e| corrupt("cannot open the file", e))?;
    let (width, height, pages) = match format {
        Format::Jpeg => {
            let bytes = read_head(file, 1 << 20)?;
            let mut decoder = zune_jpeg::JpegDecoder::new(&bytes);
            decoder
                .decode_headers()
                .map_err(|e| corrupt("not a readable JPEG", e))?;
            let (w, h) = decoder
                .dimensions()
                .ok_or_else(|| corrupt("not a readable JPEG", "no frame header"))?;
            let (w, h) = (w as u32, h as u32);
            (w, h, vec![single(w, h)])
        }
        Format::Png => {
            let decoder = png::Decoder::new(BufReader::new(file));
            let reader = decoder
                .read_info()
                .map_err(|e| corrupt("not a readable PNG", e))?;
            let (w, h) = (reader.info().width, reader.info().height);
            (w, h, vec![single(w, h)])
        }
        Format::Tiff => {
            let pages = tiff_pages(BufReader::new(file))?;
            (pages[0].width, pages[0].height, pages)
        }
    };
    if width == 0 || height == 0 {
        return Err(corrupt("the image", "is empty"));
    }
    Ok(RasterInfo {
        format,
        width,
        height,
        pages,
        version: String::new(),
    })
}

fn single(width: u32, height: u32) -> Page {
    Page {
        ifd: 0,
        width,
        height,
        tile: None,
    }
}

fn read_head(file: std::fs::File, limit: u64) -> Result<Vec<u8>, ViewError> {
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt("cannot read the file", e))?;
    Ok(bytes)
}

/// The most tiles or strips one region may need: a file of 1×1 tiles must not turn one
/// request into millions of reads.
const MAX_CHUNKS: u64 = 16_384;

/// No TIFF has a pyramid deeper than this; a file with more directories is not one.
const MAX_PAGES: usize = 32;

/// The pages of a TIFF pyramid: the first directory, then each following one that shows the
/// same picture smaller (same aspect ratio within a pixel, smaller than the one before). A
/// directory that does not (a thumbnail of another shape, a second picture) ends it.
fn tiff_pages<R: Read + Seek>(reader: R) -> Result<Vec<Page>, ViewError> {
    let mut decoder = Decoder::new(reader).map_err(|e| corrupt("not a readable TIFF", e))?;
    let mut pages: Vec<Page> = Vec::new();
    for ifd in 0..MAX_PAGES {
        if ifd > 0 && (!decoder.more_images() || decoder.next_image().is_err()) {
            break;
        }
        let (width, height) = decoder
            .dimensions()
            .map_err(|e| corrupt("not a readable TIFF", e))?;
        let tile = matches!(decoder.get_chunk_type(), tiff::decoder::ChunkType::Tile)
            .then(|| decoder.chunk_dimensions());
        let page = Page {
            ifd,
            width,
            height,
            tile,
        };
        match pages.first() {
            None => pages.push(page),
            Some(full) => {
                let last = pages[pages.len() - 1];
                let same_shape = (u64::from(width) * u64::from(full.height))
                    .abs_diff(u64::from(height) * u64::from(full.width))
                    <= u64::from(full.width.max(full.height));
                if !same_shape || width >= last.width || width == 0 || height == 0 {
                    break;
                }
                pages.push(page);
            }
        }
    }
    Ok(pages)
}

/// The page to read for an output of `out_w`×`out_h` from `region` (full-size pixels): the
/// smallest one that still has as many pixels as the output across the region.
pub fn page_for(info: &RasterInfo, region: Rect, out_w: u32, out_h: u32) -> Page {
    let enough = |p: &Page| {
        u64::from(p.width) * u64::from(region.w) >= u64::from(out_w) * u64::from(info.width)
            && u64::from(p.height) * u64::from(region.h)
                >= u64::from(out_h) * u64::from(info.height)
    };
    info.pages
        .iter()
        .rev()
        .find(|p| enough(p))
        .copied()
        .unwrap_or(info.pages[0])
}

/// `region` (full-size pixels) in the pixels of `page`, rounded outwards, at least 1×1.
pub fn region_on(info: &RasterInfo, page: &Page, region: Rect) -> Rect {
    let scale = |v: u32, page_side: u32, full_side: u32, up: bool| -> u32 {
        let n = u64::from(v) * u64::from(page_side);
        let d = u64::from(full_side);
        (if up { n.div_ceil(d) } else { n / d }) as u32
    };
    let x0 = scale(region.x, page.width, info.width, false);
    let y0 = scale(region.y, page.height, info.height, false);
    let x1 = scale(region.x + region.w, page.width, info.width, true).clamp(x0 + 1, page.width);
    let y1 = scale(region.y + region.h, page.height, info.height, true).clamp(y0 + 1, page.height);
    Rect {
        x: x0.min(page.width - 1),
        y: y0.min(page.height - 1),
        w: x1 - x0.min(page.width - 1),
        h: y1 - y0.min(page.height - 1),
    }
}

/// What [`decode_region`] decoded: 8-bit grey or RGB pixels, and the part of them that is the
/// region (a JPEG or PNG is decoded whole; rendering crops it).
pub struct Decoded {
    pub bitmap: Bitmap,
    pub crop: Option<tessera_render::Rect>,
}

/// Decode `region` of `page` (in that page's pixels) of the master at `path`. At most
/// `max_pixels` are decoded (the region for a TIFF, the page for JPEG/PNG).
pub fn decode_region(
    path: &Path,
    info: &RasterInfo,
    page: &Page,
    region: Rect,
    max_pixels: u64,
) -> Result<Decoded, ViewError> {
    let too_large = |w: u32, h: u32| {
        ViewError::NotSupported(format!(
            "the image is too large to decode at this size: {w}×{h} pixels, this route decodes at most {max_pixels} (max_decode_pixels): ask for a smaller size"
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| corrupt("cannot open the file", e))?;
    match info.format {
        Format::Tiff => {
            if u64::from(region.w) * u64::from(region.h) > max_pixels {
                return Err(too_large(region.w, region.h));
            }
            let bitmap = tiff_region(BufReader::new(file), page, region)?;
            Ok(Decoded { bitmap, crop: None })
        }
        Format::Jpeg | Format::Png => {
            if u64::from(page.width) * u64::from(page.height) > max_pixels {
                return Err(too_large(page.width, page.height));
            }
            let whole = match info.format {
                Format::Jpeg => {
                    let bytes = read_head(file, u64::MAX)?;
                    tessera_render::decode_jpeg(&bytes, max_pixels)
                        .map_err(|e| corrupt("not a readable JPEG", e))?
                }
                _ => decode_png(file)?,
            };
            let crop = tessera_render::Rect {
                x: region.x,
                y: region.y,
                w: region.w,
                h: region.h,
            };
            Ok(Decoded {
                bitmap: whole,
                crop: Some(crop),
            })
        }
    }
}

fn decode_png(file: std::fs::File) -> Result<Bitmap, ViewError> {
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| corrupt("not a readable PNG", e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| corrupt("not a readable PNG", "too large"))?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| corrupt("not a readable PNG", e))?;
    buf.truncate(frame.buffer_size());
    let channels = frame.color_type.samples();
    rgb_or_grey(frame.width, frame.height, channels, buf)
}

/// 8-bit samples with `channels` per pixel (1–4) as grey or RGB: alpha is dropped.
fn rgb_or_grey(
    width: u32,
    height: u32,
    channels: usize,
    samples: Vec<u8>,
) -> Result<Bitmap, ViewError> {
    let (channels, pixels) = match channels {
        1 | 3 => (channels, samples),
        2 => (1, samples.chunks_exact(2).map(|p| p[0]).collect()),
        4 => (
            3,
            samples
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        n => return Err(ViewError::Unsupported(format!("images with {n} channels"))),
    };
    Bitmap::new(width, height, channels as u8, pixels).map_err(|e| corrupt("the image", e))
}

/// The samples per pixel of a TIFF colour type this reads, or why not. YCbCr (the usual
/// photometric of JPEG-compressed tiles, as vips writes them) is converted to RGB after reading.
fn tiff_channels(colour: ColorType) -> Result<usize, ViewError> {
    match colour {
        ColorType::Gray(8 | 16) => Ok(1),
        ColorType::GrayA(8 | 16) => Ok(2),
        ColorType::RGB(8 | 16) | ColorType::YCbCr(8) => Ok(3),
        ColorType::RGBA(8 | 16) => Ok(4),
        other => Err(ViewError::Unsupported(format!(
            "TIFF pixels of type {other:?} are not served: convert to 8-bit RGB or grey"
        ))),
    }
}

/// Read the chunks (tiles or strips) of `page` that `region` touches and copy their pixels.
fn tiff_region<R: Read + Seek>(reader: R, page: &Page, region: Rect) -> Result<Bitmap, ViewError> {
    let mut decoder = Decoder::new(reader)
        .map_err(|e| corrupt("not a readable TIFF", e))?
        .with_limits(Limits::default());
    decoder
        .seek_to_image(page.ifd)
        .map_err(|e| corrupt("not a readable TIFF", e))?;
    let colour = decoder
        .colortype()
        .map_err(|e| corrupt("not a readable TIFF", e))?;
    let channels = tiff_channels(colour)?;
    let (cw, ch) = decoder.chunk_dimensions();
    if cw == 0 || ch == 0 {
        return Err(corrupt("not a readable TIFF", "chunks of no size"));
    }
    let across = page.width.div_ceil(cw);
    let mut out = vec![0u8; region.w as usize * region.h as usize * channels];
    let (cx0, cx1) = (region.x / cw, (region.x + region.w - 1) / cw);
    let (cy0, cy1) = (region.y / ch, (region.y + region.h - 1) / ch);
    let chunks = u64::from(cx1 - cx0 + 1) * u64::from(cy1 - cy0 + 1);
    if chunks > MAX_CHUNKS {
        return Err(ViewError::Unsupported(format!(
            "the TIFF's tiles or strips are too small: this region needs {chunks} of them (at most {MAX_CHUNKS})"
        )));
    }
    for cy in cy0..=cy1 {
        for cx in cx0..=cx1 {
            let index = cy * across + cx;
            let (dw, dh) = decoder.chunk_data_dimensions(index);
            let samples = match decoder
                .read_chunk(index)
                .map_err(|e| corrupt("not a readable TIFF", e))?
            {
                DecodingResult::U8(v) => v,
                DecodingResult::U16(v) => v.into_iter().map(|s| (s >> 8) as u8).collect(),
                _ => {
                    return Err(ViewError::Unsupported(
                        "TIFF samples of more than 16 bits are not served".into(),
                    ))
                }
            };
            copy_chunk(
                &samples,
                (cx * cw, cy * ch, dw, dh),
                channels,
                region,
                &mut out,
            )?;
        }
    }
    if matches!(colour, ColorType::YCbCr(_)) {
        ycbcr_to_rgb(&mut out);
    }
    rgb_or_grey(region.w, region.h, channels, out)
}

/// Full-range YCbCr (JFIF, ITU-R BT.601) to RGB, in place.
fn ycbcr_to_rgb(samples: &mut [u8]) {
    for px in samples.chunks_exact_mut(3) {
        let y = f32::from(px[0]);
        let cb = f32::from(px[1]) - 128.0;
        let cr = f32::from(px[2]) - 128.0;
        let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
        px[0] = clamp(y + 1.402 * cr);
        px[1] = clamp(y - 0.344_136 * cb - 0.714_136 * cr);
        px[2] = clamp(y + 1.772 * cb);
    }
}

/// Copy the part of a chunk at `(x, y)` of `w`×`h` pixels that lies in `region` into `out`
/// (the region's pixels, row by row).
fn copy_chunk(
    samples: &[u8],
    (x, y, w, h): (u32, u32, u32, u32),
    channels: usize,
    region: Rect,
    out: &mut [u8],
) -> Result<(), ViewError> {
    let short = || {
        corrupt(
            "not a readable TIFF",
            "a tile or strip is shorter than it says",
        )
    };
    let left = x.max(region.x);
    let right = (x + w).min(region.x + region.w);
    let top = y.max(region.y);
    let bottom = (y + h).min(region.y + region.h);
    if left >= right || top >= bottom {
        return Ok(());
    }
    let run = (right - left) as usize * channels;
    for row in top..bottom {
        let from = (((row - y) * w + (left - x)) as usize) * channels;
        let to = (((row - region.y) * region.w + (left - region.x)) as usize) * channels;
        out.get_mut(to..to + run)
            .ok_or_else(short)?
            .copy_from_slice(samples.get(from..from + run).ok_or_else(short)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pyramid() -> RasterInfo {
        let page = |ifd, width, height| Page {
            ifd,
            width,
            height,
            tile: Some((256, 256)),
        };
        RasterInfo {
            format: Format::Tiff,
            width: 4000,
            height: 3000,
            version: String::new(),
            pages: vec![
                page(0, 4000, 3000),
                page(1, 2000, 1500),
                page(2, 1000, 750),
                page(3, 500, 375),
            ],
        }
    }

    #[test]
    fn the_smallest_page_with_enough_pixels_is_read() {
        let info = pyramid();
        let full = Rect {
            x: 0,
            y: 0,
            w: 4000,
            h: 3000,
        };
        assert_eq!(page_for(&info, full, 400, 300).ifd, 3);
        assert_eq!(page_for(&info, full, 501, 376).ifd, 2);
        assert_eq!(page_for(&info, full, 4000, 3000).ifd, 0);
        // A tile at scale factor 2 reads the half-size page.
        let tile = Rect {
            x: 1024,
            y: 1024,
            w: 512,
            h: 512,
        };
        assert_eq!(page_for(&info, tile, 256, 256).ifd, 1);
    }

    #[test]
    fn regions_map_onto_pages_rounded_outwards() {
        let info = pyramid();
        let page = info.pages[3];
        let r = region_on(
            &info,
            &page,
            Rect {
                x: 1,
                y: 1,
                w: 9,
                h: 9,
            },
        );
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 0,
                w: 2,
                h: 2
            }
        );
        let corner = region_on(
            &info,
            &page,
            Rect {
                x: 3999,
                y: 2999,
                w: 1,
                h: 1,
            },
        );
        assert_eq!(
            corner,
            Rect {
                x: 499,
                y: 374,
                w: 1,
                h: 1
            }
        );
    }

    #[test]
    fn chunks_are_copied_where_they_meet_the_region() {
        // A 4×2 chunk at (2, 0) of one channel; the region is x 3..5, y 1..2.
        let samples: Vec<u8> = (0..8).collect();
        let region = Rect {
            x: 3,
            y: 1,
            w: 2,
            h: 1,
        };
        let mut out = vec![0; 2];
        copy_chunk(&samples, (2, 0, 4, 2), 1, region, &mut out).unwrap();
        assert_eq!(out, vec![5, 6]);
        assert!(copy_chunk(&samples[..3], (2, 0, 4, 2), 1, region, &mut out).is_err());
    }

    #[test]
    fn ycbcr_becomes_rgb() {
        // Grey stays grey; pure red in JFIF YCbCr is (76, 85, 255).
        let mut px = vec![128, 128, 128, 76, 85, 255];
        ycbcr_to_rgb(&mut px);
        assert_eq!(&px[..3], &[128, 128, 128]);
        assert!(px[3] >= 253 && px[4] <= 2 && px[5] <= 2, "{px:?}");
    }

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(Format::sniff(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(Format::sniff(b"GIF89a"), None);
    }
}
