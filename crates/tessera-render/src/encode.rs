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
    let err = |e: &dyn std::fmt::Display| RenderError::Encode(e.to_string());
    let mut out = Vec::new();
    match format {
        Format::Jpeg => {
            let (w, h) = (
                u16::try_from(b.width).map_err(|_| err(&"wider than 65535 pixels"))?,
                u16::try_from(b.height).map_err(|_| err(&"taller than 65535 pixels"))?,
            );
            let color = if b.channels == 1 {
                jpeg_encoder::ColorType::Luma
            } else {
                jpeg_encoder::ColorType::Rgb
            };
            jpeg_encoder::Encoder::new(&mut out, jpeg_quality.clamp(1, 100))
                .encode(&b.pixels, w, h, color)
                .map_err(|e| err(&e))?;
        }
        Format::Png => {
            let mut enc = png::Encoder::new(&mut out, b.width, b.height);
            enc.set_color(if b.channels == 1 {
                png::ColorType::Grayscale
            } else {
                png::ColorType::Rgb
            });
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(|e| err(&e))?;
            writer.write_image_data(&b.pixels).map_err(|e| err(&e))?;
            writer.finish().map_err(|e| err(&e))?;
        }
        Format::Webp => {
            let color = if b.channels == 1 {
                image_webp::ColorType::L8
            } else {
                image_webp::ColorType::Rgb8
            };
            image_webp::WebPEncoder::new(&mut out)
                .encode(&b.pixels, b.width, b.height, color)
                .map_err(|e| err(&e))?;
        }
    }
    Ok(out)
}
