#![forbid(unsafe_code)]
//! The last steps of an IIIF image request, on pixels already decoded: region crop, resize to
//! the exact output size, mirror, rotation by a multiple of 90°, quality, and encoding.
//!
//! The order is the IIIF Image API's: region → size → (mirror, rotation) → quality → format.
//! Resizing uses `fast_image_resize` (SIMD convolution, Lanczos3); PNG and WebP are written by
//! `png` and `image-webp`, small pure-Rust crates (WebP lossless, the only mode `image-webp`
//! encodes). JPEG, the format of nearly every tile a viewer asks for, is written by
//! libjpeg-turbo (the system's `libturbojpeg`, through the `turbojpeg` crate), as IIPImage's
//! is: the pure-Rust `jpeg-encoder` it replaced took 15–23 ms for a 1024² tile where
//! libjpeg-turbo takes 3–4, up to a seventh of `render`'s CPU on a viewer's tiles
//! (docs/benchmarks.md). Colour JPEGs are written with 4:2:0 chroma subsampling, libjpeg's and
//! IIPImage's default: a third fewer bytes than 4:4:4 and a third less time, at a loss the eye
//! does not see in photographs of pages and objects.

mod decode;
mod encode;
mod transform;

pub use decode::decode_jpeg;
pub use encode::{encode, Format};
pub use transform::{transform, Quality, Rect};

/// 8-bit pixels, row-major, interleaved: 1 channel (gray) or 3 (RGB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub pixels: Vec<u8>,
}

impl Bitmap {
    pub fn new(
        width: u32,
        height: u32,
        channels: u8,
        pixels: Vec<u8>,
    ) -> Result<Self, RenderError> {
        let bitmap = Self {
            width,
            height,
            channels,
            pixels,
        };
        bitmap.check()?;
        Ok(bitmap)
    }

    /// What [`Bitmap::new`] ensures: 1 or 3 channels, not empty, and as many bytes as the size
    /// says. The fields are public, so an encoder that would misbehave on a bitmap built field
    /// by field checks it again.
    pub(crate) fn check(&self) -> Result<(), RenderError> {
        let (width, height, channels) = (self.width, self.height, self.channels);
        if !(channels == 1 || channels == 3) {
            return Err(RenderError::Unsupported(format!("{channels} channels")));
        }
        let expected = width as usize * height as usize * channels as usize;
        if self.pixels.len() != expected || width == 0 || height == 0 {
            return Err(RenderError::Invalid(format!(
                "{width}×{height}×{channels} needs {expected} bytes, got {}",
                self.pixels.len()
            )));
        }
        Ok(())
    }
}

/// What the output should be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Output {
    /// Size after resizing, before rotation.
    pub width: u32,
    pub height: u32,
    /// 0, 90, 180 or 270, clockwise.
    pub rotate: u16,
    /// Mirror horizontally before rotating.
    pub mirror: bool,
    pub quality: Quality,
    pub format: Format,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("invalid pixels: {0}")]
    Invalid(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("encoding failed: {0}")]
    Encode(String),
}

/// Crop `crop` (in `src`'s pixels; `None`: all of it) and produce the encoded answer.
pub fn render(src: &Bitmap, crop: Option<Rect>, out: &Output) -> Result<Vec<u8>, RenderError> {
    let pixels = transform(src, crop, out)?;
    encode(&pixels, out.format, out.jpeg_quality)
}

#[cfg(test)]
mod tests;
