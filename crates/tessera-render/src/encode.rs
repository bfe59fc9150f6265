//! Encoding the finished pixels.

use crate::{Bitmap, RenderError};

/// The output formats Tessera writes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }
}

pub fn encode(b: &Bitmap, format: Format, jpeg_quality: u8) -> Result<Vec<u8>, RenderError> {
    match format {
        Format::Jpeg => jpeg(b, jpeg_quality),
        Format::Png => png(b).map_err(|e| e.to_string()),
        Format::Webp => webp(b).map_err(|e| e.to_string()),
    }
    .map_err(RenderError::Encode)
}

fn png(b: &Bitmap) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, b.width, b.height);
    enc.set_color(if b.channels == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&b.pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Lossless, the only mode `image-webp` writes.
fn webp(b: &Bitmap) -> Result<Vec<u8>, image_webp::EncodingError> {
    let color = if b.channels == 1 {
        image_webp::ColorType::L8
    } else {
        image_webp::ColorType::Rgb8
    };
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out).encode(&b.pixels, b.width, b.height, color)?;
    Ok(out)
}

/// libjpeg-turbo at `quality`, 4:2:0 for colour; the bitmap is checked first (the `turbojpeg`
/// crate panics on a short buffer).
fn jpeg(b: &Bitmap, quality: u8) -> Result<Vec<u8>, String> {
    const MAX_SIDE: u32 = 65_535;
    b.check().map_err(|e| e.to_string())?;
    if b.width > MAX_SIDE || b.height > MAX_SIDE {
        return Err(format!(
            "{}×{} is larger than JPEG's {MAX_SIDE} pixels a side",
            b.width, b.height
        ));
    }
    let (format, subsamp) = match b.channels {
        1 => (turbojpeg::PixelFormat::GRAY, turbojpeg::Subsamp::Gray),
        _ => (turbojpeg::PixelFormat::RGB, turbojpeg::Subsamp::Sub2x2),
    };
    let (width, height) = (b.width as usize, b.height as usize);
    let image = turbojpeg::Image {
        pixels: &b.pixels[..],
        width,
        pitch: width * usize::from(b.channels),
        height,
        format,
    };
    let mut compressor = turbojpeg::Compressor::new().map_err(|e| e.to_string())?;
    compressor.set_quality(i32::from(quality.clamp(1, 100)));
    compressor.set_subsamp(subsamp);
    compressor.compress_to_vec(image).map_err(|e| e.to_string())
}
