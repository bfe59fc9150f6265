//! A codestream to be decoded at `reduce` r, rewritten as the codestream of the smaller image it
//! decodes to: the same tile-parts under a main header that says the image is 2^r times smaller
//! and has r fewer decomposition levels. Decoded whole, it gives the pixels the original gives at
//! reduce r, byte for byte (the tests compare them on every fixture).
//!
//! Why: OpenJPEG builds a tile's structures (precincts, code-blocks, tag trees) at every
//! resolution however many it is told to skip, so `full/!200,200` of a 75 MP single-tile image
//! spent some 80 ms and 50 MB on the structures of resolutions it never decoded, against a few
//! milliseconds for an image of the output's size. An assembled partial codestream ([`assemble`]
//! of a [`plan`](crate::Jp2Index::plan)) holds only the packets of resolutions `0..=NL - r`,
//! which are exactly the packets of the smaller image.
//!
//! Why it is exact: every coordinate the decoder derives for a resolution, sub-band, precinct or
//! code-block is a ceiling division of the image's coordinates by a power of two (and the
//! component's subsampling), and ceilings nest: ⌈⌈x / 2^r⌉ / 2^k⌉ = ⌈x / 2^(r+k)⌉. So dividing
//! the image's coordinates by 2^r and dropping r levels leaves every one of them unchanged.
//! Tile sizes are divided exactly, so the tile grid is kept only when the tile size and origin
//! are multiples of 2^r (or there is one tile across). Quantization is kept too: the step sizes
//! of the sub-bands that remain are listed first in QCD/QCC, and a "derived" step,
//! ε_b = ε_0 − NL + n_b, does not change when NL and every n_b drop by r.
//!
//! Rewritten: SIZ (sizes and offsets), COD and COC (levels, precinct sizes), QCD and QCC (step
//! sizes). Anything this cannot carry over makes it decline ([`None`]) and the caller decodes the
//! original at reduce r as before: POC or PPM (they count resolutions or packets), coding style or
//! quantization set in a tile-part header, a tile grid not divisible by 2^r, a malformed header.
//!
//! [`assemble`]: crate::assemble

use crate::markers;

/// The codestream `cs` (SOC … EOC, holding only the packets of resolutions `0..=NL - reduce`)
/// as that of the image at `reduce`, to decode at reduce 0; `None` where it cannot be.
pub fn as_reduced_image(cs: &[u8], reduce: u8) -> Option<Vec<u8>> {
    if reduce == 0 || !cs.starts_with(&markers::SOC.to_be_bytes()) {
        return None;
    }
    let (segments, tile_parts) = markers::main_header(cs)?;
    let siz = segments.iter().find(|s| s.0 == markers::SIZ)?.1;
    let components = u16::from_be_bytes([*siz.get(36)?, *siz.get(37)?]);
    let levels = *segments.iter().find(|s| s.0 == markers::COD)?.1.get(5)?;
    if reduce > levels {
        return None;
    }
    check_tile_parts(cs, tile_parts)?;
    let mut out = Vec::with_capacity(cs.len());
    out.extend_from_slice(&markers::SOC.to_be_bytes());
    for &(marker, body) in &segments {
        let body = match marker {
            markers::SIZ => siz_reduced(body, reduce)?,
            markers::COD => coding_reduced(body, 0, reduce)?,
            markers::COC => coding_reduced(body, component_bytes(components), reduce)?,
            markers::QCD => steps_reduced(body, 0, levels, reduce)?,
            markers::QCC => steps_reduced(body, component_bytes(components), levels, reduce)?,
            markers::POC | markers::PPM => return None,
            _ => body.to_vec(),
        };
        markers::push_segment(&mut out, marker, &body)?;
    }
    out.extend_from_slice(&cs[tile_parts..]);
    Some(out)
}

/// Every tile-part header holds only what the rewrite keeps valid (PLT, RGN, COM, …).
fn check_tile_parts(cs: &[u8], mut pos: usize) -> Option<()> {
    while cs.get(pos..pos + 2)? == markers::SOT.to_be_bytes() {
        let end = markers::tile_part_end(cs, pos)?;
        markers::tile_part_header_end(cs.get(pos..end)?, &markers::TILE_CODING_SEGMENTS)?;
        pos = end;
    }
    (cs.get(pos..)? == markers::EOC.to_be_bytes()).then_some(())
}

/// Component indices take two bytes in an image of more than 256 components.
fn component_bytes(components: u16) -> usize {
    if components < 257 {
        1
    } else {
        2
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// SIZ with the image's sizes and offsets divided by 2^reduce (rounding up, as the decoder does)
/// and the tile grid with them.
fn siz_reduced(body: &[u8], reduce: u8) -> Option<Vec<u8>> {
    let shift = u32::from(reduce);
    let up = |v: u32| u32::try_from(u64::from(v).div_ceil(1u64 << shift)).ok();
    let (x1, y1, x0, y0) = (
        u32_at(body, 2)?,
        u32_at(body, 6)?,
        u32_at(body, 10)?,
        u32_at(body, 14)?,
    );
    let (tw, th, tx0, ty0) = (
        u32_at(body, 18)?,
        u32_at(body, 22)?,
        u32_at(body, 26)?,
        u32_at(body, 30)?,
    );
    let (nx1, ny1, nx0, ny0) = (up(x1)?, up(y1)?, up(x0)?, up(y0)?);
    // One tile across: it covers the smaller image. Several: the grid must divide exactly.
    let side = |t0: u32, t: u32, end: u32, new_end: u32| -> Option<(u32, u32)> {
        if t == 0 {
            return None;
        }
        if u64::from(t0) + u64::from(t) >= u64::from(end) {
            let new_t0 = up(t0)?;
            return Some((new_end.checked_sub(new_t0)?.max(1), new_t0));
        }
        let mask = (1u32 << shift.min(31)) - 1;
        (shift < 32 && t & mask == 0 && t0 & mask == 0).then_some((t >> shift, t0 >> shift))
    };
    let (ntw, ntx0) = side(tx0, tw, x1, nx1)?;
    let (nth, nty0) = side(ty0, th, y1, ny1)?;
    let mut out = body.to_vec();
    for (at, v) in [
        (2, nx1),
        (6, ny1),
        (10, nx0),
        (14, ny0),
        (18, ntw),
        (22, nth),
        (26, ntx0),
        (30, nty0),
    ] {
        out[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
    Some(out)
}

/// COD (`skip` 0) or COC (`skip`: the component index's bytes) with `reduce` fewer levels and
/// the precinct sizes of the resolutions that remain.
fn coding_reduced(body: &[u8], skip: usize, reduce: u8) -> Option<Vec<u8>> {
    // COD: Scod, progression, layers (2), MCT, then SPcod; COC: Ccoc, Scoc, then SPcoc.
    let (style_at, levels_at) = match skip {
        0 => (0, 5),
        n => (n, n + 1),
    };
    let style = *body.get(style_at)?;
    let levels = *body.get(levels_at)?;
    let kept = levels.checked_sub(reduce)?;
    // SPcod/SPcoc: levels, xcb, ycb, code-block style, transform, then precincts (Scod bit 0).
    let precincts_at = levels_at + 5;
    let mut out = body.get(..precincts_at)?.to_vec();
    out[levels_at] = kept;
    if style & 1 == 1 {
        let sizes = body.get(precincts_at..precincts_at + usize::from(levels) + 1)?;
        if body.len() != precincts_at + sizes.len() {
            return None;
        }
        out.extend_from_slice(&sizes[..usize::from(kept) + 1]);
    } else if body.len() != precincts_at {
        return None;
    }
    Some(out)
}

/// QCD (`skip` 0) or QCC with the step sizes of the sub-bands that remain: the LL band and three
/// per level, lowest first, one byte each without quantization and two with; a single derived
/// step stays as it is.
fn steps_reduced(body: &[u8], skip: usize, levels: u8, reduce: u8) -> Option<Vec<u8>> {
    let style = *body.get(skip)?;
    let per_band = match style & 0x1f {
        0 => 1,
        1 => return Some(body.to_vec()),
        2 => 2,
        _ => return None,
    };
    let bands = |l: u8| 3 * usize::from(l) + 1;
    let steps = &body[skip + 1..];
    if steps.len() != bands(levels) * per_band {
        return None;
    }
    let kept = levels.checked_sub(reduce)?;
    let mut out = body[..=skip].to_vec();
    out.extend_from_slice(&steps[..bands(kept) * per_band]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn siz(x1: u32, y1: u32, x0: u32, y0: u32, t: (u32, u32, u32, u32)) -> Vec<u8> {
        let mut b = vec![0, 0];
        for v in [x1, y1, x0, y0, t.0, t.1, t.2, t.3] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&[0, 1, 7, 1, 1]);
        b
    }

    fn read(b: &[u8]) -> [u32; 8] {
        std::array::from_fn(|i| u32_at(b, 2 + 4 * i).unwrap())
    }

    #[test]
    fn sizes_round_up_and_tiles_divide_exactly() {
        // One tile across and down: the tile covers the smaller image.
        let one = siz_reduced(&siz(601, 401, 0, 0, (601, 401, 0, 0)), 2).unwrap();
        assert_eq!(read(&one), [151, 101, 0, 0, 151, 101, 0, 0]);
        // Offsets round up too; 256² tiles at an origin divisible by 4.
        let tiled = siz_reduced(&siz(2003, 1500, 5, 9, (256, 256, 4, 8)), 2).unwrap();
        assert_eq!(read(&tiled), [501, 375, 2, 3, 64, 64, 1, 2]);
        // A grid not divisible by 2^reduce cannot be kept.
        assert!(siz_reduced(&siz(2000, 1500, 0, 0, (250, 256, 0, 0)), 2).is_none());
        assert!(siz_reduced(&siz(2000, 1500, 0, 0, (256, 256, 2, 0)), 2).is_none());
    }

    #[test]
    fn levels_and_precincts_drop_with_the_resolutions() {
        // COD: user precincts, 3 levels, sizes for resolutions 0..=3.
        let cod = [1, 2, 0, 1, 1, 3, 4, 4, 0, 0, 0x77, 0x88, 0x99, 0xAA];
        assert_eq!(
            coding_reduced(&cod, 0, 2).unwrap(),
            [1, 2, 0, 1, 1, 1, 4, 4, 0, 0, 0x77, 0x88]
        );
        // COC of component 2, default precincts.
        assert_eq!(
            coding_reduced(&[2, 0, 5, 4, 4, 0, 1], 1, 5).unwrap(),
            [2, 0, 0, 4, 4, 0, 1]
        );
        assert!(coding_reduced(&[2, 0, 1, 4, 4, 0, 1], 1, 2).is_none());
        assert!(
            coding_reduced(&cod[..12], 0, 1).is_none(),
            "precincts cut short"
        );
    }

    #[test]
    fn step_sizes_of_the_remaining_bands_are_kept() {
        // No quantization, 2 levels: 7 bands, one byte each.
        let qcd = [0x40, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(steps_reduced(&qcd, 0, 2, 1).unwrap(), [0x40, 1, 2, 3, 4]);
        // Expounded, 1 level: 4 bands of two bytes; QCC of component 1.
        let qcc = [1, 0x42, 1, 1, 2, 2, 3, 3, 4, 4];
        assert_eq!(steps_reduced(&qcc, 1, 1, 1).unwrap(), [1, 0x42, 1, 1]);
        // Derived: one step, kept.
        assert_eq!(steps_reduced(&[0x41, 9, 9], 0, 5, 3).unwrap(), [0x41, 9, 9]);
        assert!(steps_reduced(&qcd[..7], 0, 2, 1).is_none(), "bands missing");
    }

    #[test]
    fn malformed_or_foreign_input_declines() {
        assert!(as_reduced_image(b"", 1).is_none());
        assert!(as_reduced_image(&[0xFF, 0x4F, 0xFF], 1).is_none());
        assert!(as_reduced_image(&[0xFF, 0x4F, 0xFF, 0x51, 0, 2, 0xFF, 0xD9], 1).is_none());
    }
}
