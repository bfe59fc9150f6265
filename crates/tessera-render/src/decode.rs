//! Reading JPEGs back into pixels, for answers made from pre-made derivatives (a thumbnail
//! resized to a size between two that exist). `zune-jpeg` is the decoder the `image` crate
//! itself now uses: pure Rust, fast, and it refuses images over a size limit before allocating.

use crate::{Bitmap, RenderError};
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// Decode a JPEG to 8-bit RGB, or gray for a grayscale JPEG. Images with more than
/// `max_pixels` pixels are refused from their header, before any pixel memory is allocated.
pub fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<Bitmap, RenderError> {
    let invalid = |e: zune_jpeg::errors::DecodeErrors| RenderError::Invalid(e.to_string());
    let mut probe = JpegDecoder::new(bytes);
    probe.decode_headers().map_err(invalid)?;
    let (width, height, gray) = match (probe.info(), probe.get_input_colorspace()) {
        (Some(i), Some(cs)) => (
            u32::from(i.width),
            u32::from(i.height),
            cs == ColorSpace::Luma,
        ),
        _ => return Err(RenderError::Invalid("no JPEG header".into())),
    };
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(RenderError::Unsupported(format!(
            "a {width}×{height} JPEG is larger than {max_pixels} pixels"
        )));
    }
    let (colorspace, channels) = if gray {
        (ColorSpace::Luma, 1)
    } else {
        (ColorSpace::RGB, 3)
    };
    let options = DecoderOptions::default().jpeg_set_out_colorspace(colorspace);
    let mut decoder = JpegDecoder::new_with_options(bytes, options);
    let pixels = decoder.decode().map_err(invalid)?;
    Bitmap::new(width, height, channels, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, Format};

    fn picture(channels: u8) -> Bitmap {
        let (w, h) = (40u32, 30u32);
        let pixels = (0..w * h * u32::from(channels))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        Bitmap::new(w, h, channels, pixels).unwrap()
    }

    #[test]
    fn round_trips_rgb_and_gray() {
        for channels in [1, 3] {
            let jpeg = encode(&picture(channels), Format::Jpeg, 90).unwrap();
            let back = decode_jpeg(&jpeg, 10_000).unwrap();
            assert_eq!((back.width, back.height, back.channels), (40, 30, channels));
        }
    }

    #[test]
    fn refuses_large_images_and_junk() {
        let jpeg = encode(&picture(3), Format::Jpeg, 90).unwrap();
        assert!(matches!(
            decode_jpeg(&jpeg, 100),
            Err(RenderError::Unsupported(_))
        ));
        assert!(decode_jpeg(b"not a jpeg", 10_000).is_err());
        // A cut-short JPEG may decode (grey where data is missing) or fail; it must not panic.
        for cut in (0..jpeg.len()).step_by(37) {
            let _ = decode_jpeg(&jpeg[..cut], 10_000);
        }
    }
}
