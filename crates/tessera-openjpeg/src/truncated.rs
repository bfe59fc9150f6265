//! Making truncated codestreams acceptable to OpenJPEG's non-strict mode.
//!
//! `opj_decoder_set_strict_mode(false)` only copes with a codestream cut inside the *last*
//! tile-part of a tile: that tile-part is decoded as far as it goes. A cut anywhere else — at a
//! tile-part boundary, or inside an earlier tile-part, which is what a prefix of a file written
//! with tile-parts by resolution (`opj_compress -TP R`) looks like — fails with "Stream too
//! short" in OpenJPEG 2.5.0 and 2.5.3 alike, because after the data it wants the next marker.
//!
//! For non-strict decodes, [`repair`] walks the tile-part headers (SOT markers, `Psot` lengths)
//! and, if the data ends early, returns a patched copy:
//!
//! * cut at a tile-part boundary: an EOC marker is appended;
//! * cut inside a tile-part's data: that tile-part's `TNsot` is set to `TPsot + 1`, so
//!   OpenJPEG takes it as the tile's last tile-part and decodes what is there;
//! * cut inside a tile-part's header: the data is cut back to that tile-part's SOT and EOC is
//!   appended.
//!
//! Anything it does not understand (no SOT, `Psot` = 0, unknown boxes) is left to OpenJPEG.

use crate::Codec;

const SOT: u16 = 0xFF90;
const SOD: u16 = 0xFF93;
const EOC: u16 = 0xFFD9;

fn u16_at(data: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(pos..pos + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?))
}

fn u64_at(data: &[u8], pos: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(pos..pos + 8)?.try_into().ok()?))
}

/// Offset of the codestream (its SOC marker) in a JP2 file: the contents of the `jp2c` box.
fn jp2_codestream_offset(data: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    loop {
        let lbox = u32_at(data, pos)?;
        let tbox = data.get(pos + 4..pos + 8)?;
        let (header, len) = match lbox {
            0 => (8, None),
            1 => (16, Some(usize::try_from(u64_at(data, pos + 8)?).ok()?)),
            n => (8, Some(n as usize)),
        };
        if tbox == b"jp2c" {
            return Some(pos + header);
        }
        let len = len?;
        if len < header {
            return None;
        }
        pos = pos.checked_add(len)?;
    }
}

/// Offset just past the marker segments that start at `pos`, up to (not including) the first
/// marker in `stop`; `None` if the data ends first or a segment is malformed.
fn skip_segments(data: &[u8], mut pos: usize, stop: &[u16]) -> Option<usize> {
    loop {
        let marker = u16_at(data, pos)?;
        if stop.contains(&marker) {
            return Some(pos);
        }
        if marker >> 8 != 0xFF {
            return None;
        }
        let len = u16_at(data, pos + 2)? as usize;
        if len < 2 {
            return None;
        }
        pos += 2 + len;
    }
}

/// A patched copy of `data` that OpenJPEG's non-strict mode decodes, if `data` is a
/// codestream or JP2 file cut short; `None` if it is complete or not understood.
pub(crate) fn repair(codec: Codec, data: &[u8]) -> Option<Vec<u8>> {
    let start = match codec {
        Codec::J2k => 0,
        Codec::Jp2 => jp2_codestream_offset(data)?,
    };
    // SOC, then the main header up to the first tile-part.
    if u16_at(data, start)? != 0xFF4F {
        return None;
    }
    let mut pos = skip_segments(data, start + 2, &[SOT, EOC])?;
    let with_eoc = |cut: usize| {
        let mut v = data[..cut].to_vec();
        v.extend_from_slice(&EOC.to_be_bytes());
        v
    };
    loop {
        if pos == data.len() {
            return Some(with_eoc(pos)); // cut at a tile-part boundary
        }
        let marker = match u16_at(data, pos) {
            Some(m) => m,
            None => return Some(with_eoc(pos)), // one byte of a marker
        };
        if marker != SOT {
            return None; // EOC (complete) or something unexpected
        }
        // SOT: Lsot(2) Isot(2) Psot(4) TPsot(1) TNsot(1).
        let psot = match u32_at(data, pos + 6) {
            Some(0) => return None, // "until EOC": nothing to check against
            Some(p) => p as usize,
            None => return Some(with_eoc(pos)),
        };
        if u16_at(data, pos + 2)? != 10 || psot < 14 {
            return None;
        }
        let end = pos.checked_add(psot)?;
        if end <= data.len() {
            pos = end;
            continue;
        }
        // This tile-part is cut short. Is its header (up to SOD) complete?
        match skip_segments(data, pos + 12, &[SOD]) {
            Some(sod) if sod + 2 <= data.len() => {
                let (tpsot, tnsot) = (*data.get(pos + 10)?, *data.get(pos + 11)?);
                if tnsot != 0 && u16::from(tpsot) + 1 == u16::from(tnsot) {
                    return None; // already the tile's last tile-part: OpenJPEG copes
                }
                let mut v = data.to_vec();
                v[pos + 11] = tpsot.checked_add(1)?;
                return Some(v);
            }
            _ => return Some(with_eoc(pos)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SOC, SIZ-like segment, then tile-parts of `lens` data bytes each, all of tile 0.
    fn stream(lens: &[usize], eoc: bool) -> Vec<u8> {
        let mut v = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x04, 0xAA, 0xBB];
        for (i, &n) in lens.iter().enumerate() {
            let psot = (12 + 2 + n) as u32;
            v.extend_from_slice(&[0xFF, 0x90, 0x00, 0x0A, 0x00, 0x00]);
            v.extend_from_slice(&psot.to_be_bytes());
            v.extend_from_slice(&[i as u8, lens.len() as u8, 0xFF, 0x93]);
            v.extend(std::iter::repeat_n(0x11, n));
        }
        if eoc {
            v.extend_from_slice(&[0xFF, 0xD9]);
        }
        v
    }

    #[test]
    fn complete_is_left_alone() {
        assert_eq!(repair(Codec::J2k, &stream(&[10, 20, 30], true)), None);
    }

    #[test]
    fn boundary_gets_eoc() {
        let s = stream(&[10, 20, 30], false);
        let r = repair(Codec::J2k, &s).unwrap();
        assert_eq!(&r[..s.len()], &s[..]);
        assert_eq!(&r[s.len()..], &[0xFF, 0xD9]);
        let cut = 8 + 24 + 34; // after two tile-parts
        let r = repair(Codec::J2k, &s[..cut]).unwrap();
        assert_eq!(r.len(), cut + 2);
    }

    #[test]
    fn cut_in_data_marks_last_tile_part() {
        let s = stream(&[10, 20, 30], true);
        let cut = 8 + 24 + 14 + 5; // 5 bytes into the second tile-part's data
        let r = repair(Codec::J2k, &s[..cut]).unwrap();
        assert_eq!(r.len(), cut);
        assert_eq!((r[8 + 24 + 10], r[8 + 24 + 11]), (1, 2));
        // Cut in the last tile-part: OpenJPEG copes without help.
        let cut = 8 + 24 + 34 + 20;
        assert_eq!(repair(Codec::J2k, &s[..cut]), None);
    }

    #[test]
    fn cut_in_header_goes_back_to_sot() {
        let s = stream(&[10, 20, 30], true);
        let cut = 8 + 24 + 7;
        let r = repair(Codec::J2k, &s[..cut]).unwrap();
        assert_eq!(r, [&s[..8 + 24], &[0xFF, 0xD9][..]].concat());
    }

    #[test]
    fn jp2_box_walk() {
        let cs = stream(&[10], false);
        let mut jp2 = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A];
        jp2.extend_from_slice(&[0, 0, 0, 0, b'j', b'p', b'2', b'c']);
        let at = jp2.len();
        jp2.extend_from_slice(&cs);
        assert_eq!(jp2_codestream_offset(&jp2), Some(at));
        assert_eq!(repair(Codec::Jp2, &jp2).unwrap().len(), jp2.len() + 2);
        assert_eq!(repair(Codec::Jp2, &jp2[..20]), None);
    }

    #[test]
    fn garbage_is_left_alone() {
        assert_eq!(repair(Codec::J2k, &[]), None);
        assert_eq!(repair(Codec::J2k, &[0xFF, 0x4F, 0xFF]), None);
        assert_eq!(repair(Codec::Jp2, &[0, 0, 0, 1, 0, 0, 0, 0]), None);
    }
}
