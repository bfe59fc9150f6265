//! Crop, resize, mirror, rotate and quality, as pixel operations.

use crate::{Bitmap, Output, RenderError};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use std::borrow::Cow;

/// A rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The IIIF qualities, as pixel operations (`default` is `Color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    Color,
    Gray,
    Bitonal,
}

fn pixel_type(channels: u8) -> PixelType {
    if channels == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    }
}

/// Apply crop, resize, mirror, rotation and quality; the result is ready to encode. When none
/// applies (a `max` of a level decoded at its own size), the result is `src` itself: a large
/// output is not copied on its way to the encoder.
pub fn transform<'a>(
    src: &'a Bitmap,
    crop: Option<Rect>,
    out: &Output,
) -> Result<Cow<'a, Bitmap>, RenderError> {
    let crop = crop.unwrap_or(Rect {
        x: 0,
        y: 0,
        w: src.width,
        h: src.height,
    });
    if crop.w == 0
        || crop.h == 0
        || u64::from(crop.x) + u64::from(crop.w) > u64::from(src.width)
        || u64::from(crop.y) + u64::from(crop.h) > u64::from(src.height)
    {
        return Err(RenderError::Invalid(format!(
            "crop {crop:?} is outside the {}×{} image",
            src.width, src.height
        )));
    }
    if out.width == 0 || out.height == 0 {
        return Err(RenderError::Invalid("the output size is zero".into()));
    }
    let resized = resize(src, crop, out.width, out.height)?;
    if !out.mirror && out.rotate == 0 && out.quality == Quality::Color {
        return Ok(resized);
    }
    let turned = rotate(mirror(resized.into_owned(), out.mirror), out.rotate)?;
    Ok(Cow::Owned(apply_quality(turned, out.quality)))
}

fn resize(
    src: &Bitmap,
    crop: Rect,
    width: u32,
    height: u32,
) -> Result<Cow<'_, Bitmap>, RenderError> {
    let whole = crop.x == 0 && crop.y == 0 && crop.w == src.width && crop.h == src.height;
    if whole && width == src.width && height == src.height {
        return Ok(Cow::Borrowed(src));
    }
    let pt = pixel_type(src.channels);
    let from = ImageRef::new(src.width, src.height, &src.pixels, pt)
        .map_err(|e| RenderError::Invalid(e.to_string()))?;
    let mut to = Image::new(width, height, pt);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(
            f64::from(crop.x),
            f64::from(crop.y),
            f64::from(crop.w),
            f64::from(crop.h),
        );
    Resizer::new()
        .resize(&from, &mut to, &options)
        .map_err(|e| RenderError::Invalid(e.to_string()))?;
    Ok(Cow::Owned(Bitmap {
        width,
        height,
        channels: src.channels,
        pixels: to.into_vec(),
    }))
}

fn mirror(mut b: Bitmap, on: bool) -> Bitmap {
    if !on {
        return b;
    }
    let c = b.channels as usize;
    let row = b.width as usize * c;
    for line in b.pixels.chunks_exact_mut(row) {
        let (mut i, mut j) = (0, b.width as usize - 1);
        while i < j {
            for k in 0..c {
                line.swap(i * c + k, j * c + k);
            }
            i += 1;
            j -= 1;
        }
    }
    b
}

fn rotate(b: Bitmap, degrees: u16) -> Result<Bitmap, RenderError> {
    let (w, h, c) = (b.width as usize, b.height as usize, b.channels as usize);
    let (nw, nh) = match degrees {
        0 => return Ok(b),
        90 | 270 => (h, w),
        180 => (w, h),
        d => {
            return Err(RenderError::Unsupported(format!(
                "rotation by {d}° (only multiples of 90)"
            )))
        }
    };
    let mut out = vec![0u8; b.pixels.len()];
    for y in 0..h {
        for x in 0..w {
            // Where source pixel (x, y) lands, turning clockwise.
            let (nx, ny) = match degrees {
                90 => (h - 1 - y, x),
                180 => (w - 1 - x, h - 1 - y),
                _ => (y, w - 1 - x),
            };
            let from = (y * w + x) * c;
            let to = (ny * nw + nx) * c;
            out[to..to + c].copy_from_slice(&b.pixels[from..from + c]);
        }
    }
    Ok(Bitmap {
        width: nw as u32,
        height: nh as u32,
        channels: b.channels,
        pixels: out,
    })
}

/// ITU-R BT.601 luma, as most image servers compute "gray".
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
}

fn apply_quality(b: Bitmap, quality: Quality) -> Bitmap {
    let gray = |b: Bitmap| -> Bitmap {
        if b.channels == 1 {
            return b;
        }
        let pixels = b
            .pixels
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect();
        Bitmap {
            channels: 1,
            pixels,
            ..b
        }
    };
    match quality {
        Quality::Color => b,
        Quality::Gray => gray(b),
        Quality::Bitonal => {
            let mut g = gray(b);
            for p in &mut g.pixels {
                *p = if *p >= 128 { 255 } else { 0 };
            }
            g
        }
    }
}
