//! The decoded `opj_image_t` and its conversion to 8-bit interleaved pixels.
//!
//! OpenJPEG hands back one `i32` plane per component, each with its own precision, signedness
//! and subsampling. [`Image::to_decoded`] turns that into what an image server encodes:
//!
//! * precision: values are clamped to the component's range and rescaled to 0..=255 with
//!   rounding (`v * 255 / (2^prec - 1)`); 8-bit unsigned data is copied as is;
//! * signed components are shifted by `2^(prec-1)` first;
//! * 1 component → gray; 2 → gray (the second, usually alpha, is dropped); 3 → RGB;
//!   4 → RGBA (refused for CMYK); 5 or more → the first three as RGB;
//! * three components are taken as RGB whatever the color space: sYCC / e-YCC images are *not*
//!   converted (OpenJPEG undoes the codestream's MCT itself; a JP2 that declares sYCC is rare),
//!   and ICC profiles are ignored;
//! * subsampled components (`dx`/`dy` > 1) are upsampled to the reference grid by nearest
//!   neighbour (sample `⌊X/dx⌋`), so 4:2:0 data comes out at full size.

use std::ptr::NonNull;

use openjpeg_sys as opj;

use crate::DecodeError;

/// An owned `opj_image_t`; destroyed on drop.
pub(crate) struct Image {
    raw: NonNull<opj::opj_image_t>,
}

/// `ceil(v / 2^r)`, as OpenJPEG computes reduced coordinates.
pub(crate) fn ceil_div_pow2(v: u32, r: u32) -> u32 {
    if r >= 32 {
        return u32::from(v != 0);
    }
    ((u64::from(v) + (1u64 << r) - 1) >> r) as u32
}

impl Image {
    /// Takes ownership of an image allocated by OpenJPEG.
    ///
    /// # Safety
    /// `raw` is null or a valid `opj_image_t` from OpenJPEG that nothing else frees.
    pub(crate) unsafe fn from_raw(raw: *mut opj::opj_image_t) -> Option<Self> {
        NonNull::new(raw).map(|raw| Image { raw })
    }

    pub(crate) fn as_ptr(&mut self) -> *mut opj::opj_image_t {
        self.raw.as_ptr()
    }

    fn header(&self) -> &opj::opj_image_t {
        // SAFETY: `raw` is valid while `self` lives, and only OpenJPEG calls that take
        // `&mut self` (through `as_ptr`) modify it.
        unsafe { self.raw.as_ref() }
    }

    /// The image area on the reference grid: (x0, y0, x1, y1).
    pub(crate) fn area(&self) -> (u32, u32, u32, u32) {
        let h = self.header();
        (h.x0, h.y0, h.x1, h.y1)
    }

    pub(crate) fn color_space(&self) -> opj::COLOR_SPACE {
        self.header().color_space
    }

    pub(crate) fn components(&self) -> &[opj::opj_image_comp_t] {
        let h = self.header();
        if h.comps.is_null() || h.numcomps == 0 {
            return &[];
        }
        // SAFETY: OpenJPEG allocates `comps` with `numcomps` entries, alive as long as the
        // image.
        unsafe { std::slice::from_raw_parts(h.comps, h.numcomps as usize) }
    }

    /// The samples of component `c`, or `None` if it has no data.
    fn plane(c: &opj::opj_image_comp_t) -> Option<&[i32]> {
        let len = (c.w as usize).checked_mul(c.h as usize)?;
        if c.data.is_null() || len == 0 {
            return None;
        }
        // SAFETY: after a successful `opj_decode`, OpenJPEG's component buffer holds `w * h`
        // samples (it is allocated with exactly that size, or taken over from a tile buffer of
        // the same dimensions) and lives as long as the image.
        Some(unsafe { std::slice::from_raw_parts(c.data, len) })
    }

    /// Converts the decoded image at reduction `reduce` to 8-bit interleaved pixels.
    pub(crate) fn to_decoded(&self, reduce: u32) -> Result<crate::Decoded, DecodeError> {
        let comps = self.components();
        let channels: usize = match comps.len() {
            0 => return Err(DecodeError::Decode("image has no components".into())),
            1 | 2 => 1,
            3 => 3,
            4 if self.color_space() == opj::COLOR_SPACE::OPJ_CLRSPC_CMYK => {
                return Err(DecodeError::Unsupported("CMYK images".into()))
            }
            4 => 4,
            _ => 3,
        };
        match self.color_space() {
            opj::COLOR_SPACE::OPJ_CLRSPC_SYCC | opj::COLOR_SPACE::OPJ_CLRSPC_EYCC => {
                tracing::debug!(
                    target: "tessera_openjpeg",
                    "YCC color space: components passed through as RGB without conversion"
                );
            }
            _ => {}
        }
        let (x0, y0, x1, y1) = self.area();
        let ox0 = ceil_div_pow2(x0, reduce);
        let oy0 = ceil_div_pow2(y0, reduce);
        let width = ceil_div_pow2(x1, reduce).saturating_sub(ox0);
        let height = ceil_div_pow2(y1, reduce).saturating_sub(oy0);
        if width == 0 || height == 0 {
            return Err(DecodeError::Decode("decoded image is empty".into()));
        }
        let (w, h) = (width as usize, height as usize);
        let len = w
            .checked_mul(h)
            .and_then(|n| n.checked_mul(channels))
            .ok_or_else(|| DecodeError::Decode("image too large".into()))?;
        let mut pixels = vec![0u8; len];
        if interleave_eight_bit(&comps[..channels], (width, height), &mut pixels) {
            return Ok(crate::Decoded {
                width,
                height,
                channels: channels as u8,
                pixels,
            });
        }
        for (ch, comp) in comps.iter().take(channels).enumerate() {
            let plane = Self::plane(comp).ok_or_else(|| {
                DecodeError::Decode(format!("component {ch} has no decoded data"))
            })?;
            let lut = Levels::new(comp)?;
            if comp.dx == 1 && comp.dy == 1 {
                if comp.w != width || comp.h != height {
                    return Err(DecodeError::Decode(format!(
                        "component {ch} is {}x{}, expected {width}x{height}",
                        comp.w, comp.h
                    )));
                }
                for (out, &v) in pixels[ch..].iter_mut().step_by(channels).zip(plane) {
                    *out = lut.map(v);
                }
            } else {
                upsample(
                    &mut pixels,
                    ch,
                    channels,
                    (ox0, oy0, w, h),
                    comp,
                    plane,
                    &lut,
                )?;
            }
        }
        Ok(crate::Decoded {
            width,
            height,
            channels: channels as u8,
            pixels,
        })
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: `raw` was allocated by OpenJPEG, is owned by this value only and is freed
        // only here (this also frees the component buffers and ICC profile).
        unsafe { opj::opj_image_destroy(self.raw.as_ptr()) }
    }
}

/// The common case in one pass: gray or RGB, 8 bits unsigned, every component at full size.
/// Each sample is clamped to 0..=255 (what [`Levels::map`] does at 8 bits), in a loop over whole
/// pixels the compiler vectorizes, rather than one strided pass per component with the general
/// mapping; the conversion was 6 % of a small decode's time. `false`: not this case, nothing
/// written.
fn interleave_eight_bit(
    comps: &[opj::opj_image_comp_t],
    (width, height): (u32, u32),
    pixels: &mut [u8],
) -> bool {
    let plain = |c: &opj::opj_image_comp_t| {
        c.prec == 8 && c.sgnd == 0 && c.dx == 1 && c.dy == 1 && c.w == width && c.h == height
    };
    if !comps.iter().all(plain) {
        return false;
    }
    let planes: Option<Vec<&[i32]>> = comps.iter().map(Image::plane).collect();
    let byte = |v: i32| v.clamp(0, 255) as u8;
    match planes.as_deref() {
        Some([gray]) if gray.len() == pixels.len() => {
            for (out, &v) in pixels.iter_mut().zip(*gray) {
                *out = byte(v);
            }
            true
        }
        Some([r, g, b])
            if r.len() * 3 == pixels.len() && g.len() == r.len() && b.len() == r.len() =>
        {
            for (out, ((&r, &g), &b)) in pixels.chunks_exact_mut(3).zip(r.iter().zip(*g).zip(*b)) {
                out[0] = byte(r);
                out[1] = byte(g);
                out[2] = byte(b);
            }
            true
        }
        _ => false,
    }
}

/// Nearest-neighbour upsampling of a subsampled component into channel `ch`.
fn upsample(
    pixels: &mut [u8],
    ch: usize,
    channels: usize,
    (ox0, oy0, w, h): (u32, u32, usize, usize),
    comp: &opj::opj_image_comp_t,
    plane: &[i32],
    lut: &Levels,
) -> Result<(), DecodeError> {
    let (dx, dy) = (comp.dx, comp.dy);
    if dx == 0 || dy == 0 {
        return Err(DecodeError::Decode(
            "component with zero subsampling".into(),
        ));
    }
    // The component's first sample, in reduced component coordinates.
    let cx0 = ceil_div_pow2(comp.x0, comp.factor);
    let cy0 = ceil_div_pow2(comp.y0, comp.factor);
    let (cw, chh) = (comp.w as usize, comp.h as usize);
    let index = |out: u32, d: u32, c0: u32, n: usize| -> usize {
        ((out / d).saturating_sub(c0) as usize).min(n - 1)
    };
    let cols: Vec<usize> = (0..w).map(|x| index(ox0 + x as u32, dx, cx0, cw)).collect();
    for (y, row) in pixels.chunks_exact_mut(w * channels).take(h).enumerate() {
        let src = &plane[index(oy0 + y as u32, dy, cy0, chh) * cw..][..cw];
        for (out, &cx) in row[ch..].iter_mut().step_by(channels).zip(&cols) {
            *out = lut.map(src[cx]);
        }
    }
    Ok(())
}

/// Maps one component's samples to 0..=255.
struct Levels {
    offset: i64,
    max: i64,
    eight_bit: bool,
}

impl Levels {
    fn new(c: &opj::opj_image_comp_t) -> Result<Self, DecodeError> {
        if c.prec == 0 || c.prec > 31 {
            return Err(DecodeError::Unsupported(format!(
                "component precision {}",
                c.prec
            )));
        }
        let offset = if c.sgnd != 0 { 1i64 << (c.prec - 1) } else { 0 };
        Ok(Levels {
            offset,
            max: (1i64 << c.prec) - 1,
            eight_bit: c.prec == 8,
        })
    }

    #[inline]
    fn map(&self, v: i32) -> u8 {
        let v = (i64::from(v) + self.offset).clamp(0, self.max);
        if self.eight_bit {
            v as u8
        } else {
            ((v * 255 + self.max / 2) / self.max) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(prec: u32, sgnd: u32) -> opj::opj_image_comp_t {
        opj::opj_image_comp_t {
            dx: 1,
            dy: 1,
            w: 1,
            h: 1,
            x0: 0,
            y0: 0,
            prec,
            bpp: prec,
            sgnd,
            resno_decoded: 0,
            factor: 0,
            data: std::ptr::null_mut(),
            alpha: 0,
        }
    }

    #[test]
    fn ceil_div() {
        assert_eq!(ceil_div_pow2(1000, 0), 1000);
        assert_eq!(ceil_div_pow2(1000, 3), 125);
        assert_eq!(ceil_div_pow2(1001, 3), 126);
        assert_eq!(ceil_div_pow2(u32::MAX, 1), 1 << 31);
        assert_eq!(ceil_div_pow2(5, 40), 1);
        assert_eq!(ceil_div_pow2(0, 40), 0);
    }

    #[test]
    fn levels() {
        let l = Levels::new(&comp(8, 0)).unwrap();
        assert_eq!(
            (l.map(-5), l.map(0), l.map(200), l.map(300)),
            (0, 0, 200, 255)
        );
        let l = Levels::new(&comp(16, 0)).unwrap();
        assert_eq!((l.map(0), l.map(65535), l.map(32768)), (0, 255, 128));
        let l = Levels::new(&comp(8, 1)).unwrap();
        assert_eq!((l.map(-128), l.map(0), l.map(127)), (0, 128, 255));
        let l = Levels::new(&comp(1, 0)).unwrap();
        assert_eq!((l.map(0), l.map(1)), (0, 255));
        let l = Levels::new(&comp(31, 1)).unwrap();
        assert_eq!((l.map(i32::MIN), l.map(i32::MAX)), (0, 255));
        assert!(Levels::new(&comp(0, 0)).is_err());
        assert!(Levels::new(&comp(32, 0)).is_err());
    }
}
