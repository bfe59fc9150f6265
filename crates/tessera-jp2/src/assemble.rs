//! Stitching fetched ranges into a standalone J2K codestream.
//!
//! Why rebuild instead of handing the decoder a truncated file: a truncated file is not a valid
//! codestream (no EOC, tile-parts missing, TNsot promising parts that never come), and OpenJPEG
//! 2.5.0 decodes a truncated single-tile file only with strict mode off, and tiled ones not at all.
//! A rebuilt codestream is valid, so any decoder reads it in its default mode:
//!
//! - the main header, minus TLM and PLM: they describe every tile-part, including the ones we
//!   dropped, and a decoder that trusts TLM (OpenJPEG 2.5.3 does) would seek to them;
//! - the kept tile-parts in file order, each with `TNsot = 0` ("number of tile-parts unknown"),
//!   since the tile now has fewer parts than the original SOT says, and `Psot` rewritten to the
//!   real length when it was 0 ("to the end");
//! - EOC.
//!
//! Each tile-part's SOT is checked against the index, so a file that changed since it was indexed
//! is an error rather than garbage pixels.

use std::collections::BTreeMap;

use crate::error::{Jp2Error, ParseError};
use crate::index::{Jp2Index, TilePart};
use crate::markers::{self, Item};
use crate::plan::Plan;

/// Builds the codestream for `plan` from `fetched`: buffers keyed by the absolute offset they were
/// read from. Each piece the plan needs (the main header, each tile-part) must lie within one
/// buffer, which holds when the buffers are the plan's `ranges` (or larger).
pub fn assemble<B: AsRef<[u8]>>(
    index: &Jp2Index,
    plan: &Plan,
    fetched: &BTreeMap<u64, B>,
) -> Result<Vec<u8>, Jp2Error> {
    let main = lookup(fetched, plan.main_header.start, plan.main_header.end)?;
    // Capacity grows with bytes actually fetched, never with lengths read from the file.
    let mut out = Vec::with_capacity(main.len());
    copy_main_header(main, plan.main_header.start, &mut out)?;

    for tp in &plan.tile_parts {
        if u64::from(tp.tile) >= index.num_tiles() {
            return Err(Jp2Error::Sot {
                offset: tp.offset,
                reason: "tile index out of range",
            });
        }
        let end = tp
            .offset
            .checked_add(tp.length)
            .ok_or(Jp2Error::TooLarge("tile-part"))?;
        let bytes = lookup(fetched, tp.offset, end)?;
        check_sot(tp, bytes)?;
        let length = tp.psot()?;
        out.reserve(bytes.len() + 2);
        out.extend_from_slice(&bytes[..6]);
        out.extend_from_slice(&length.to_be_bytes());
        out.push(tp.part);
        out.push(0); // TNsot: unknown
        out.extend_from_slice(&bytes[12..]);
    }
    out.extend_from_slice(&markers::EOC.to_be_bytes());
    Ok(out)
}

/// Whether `bytes`, read at `tp.offset`, begin with the SOT the index says is there (its tile,
/// part and length): an error naming what differs if not (the file changed since it was
/// indexed, or its TLM does not describe it).
pub fn check_sot(tp: &TilePart, bytes: &[u8]) -> Result<(), Jp2Error> {
    let err = |reason| Jp2Error::Sot {
        offset: tp.offset,
        reason,
    };
    let Some(&[m0, m1, l0, l1, i0, i1, p0, p1, p2, p3, part, _]) = bytes.first_chunk::<12>() else {
        return Err(err("tile-part shorter than its SOT"));
    };
    let psot = u32::from_be_bytes([p0, p1, p2, p3]);
    if u16::from_be_bytes([m0, m1]) != markers::SOT || u16::from_be_bytes([l0, l1]) != 10 {
        return Err(err("no SOT where the index has one; has the file changed?"));
    }
    if u16::from_be_bytes([i0, i1]) != tp.tile || part != tp.part {
        return Err(err(
            "SOT tile or part differs from the index; has the file changed?",
        ));
    }
    if psot != 0 && u64::from(psot) != tp.length {
        return Err(err("Psot differs from the index; has the file changed?"));
    }
    Ok(())
}

/// `start..end` out of the buffer that starts at or before `start`.
fn lookup<B: AsRef<[u8]>>(
    fetched: &BTreeMap<u64, B>,
    start: u64,
    end: u64,
) -> Result<&[u8], Jp2Error> {
    let missing = Jp2Error::MissingBytes { start, end };
    let (&at, buf) = fetched.range(..=start).next_back().ok_or(missing.clone())?;
    let buf = buf.as_ref();
    let (Ok(s), Ok(e)) = (
        usize::try_from(start - at),
        usize::try_from(end.saturating_sub(at)),
    ) else {
        return Err(missing);
    };
    buf.get(s..e).ok_or(missing)
}

/// Copies the main header (at absolute offset `base`), leaving out TLM and PLM.
pub(crate) fn copy_main_header(main: &[u8], base: u64, out: &mut Vec<u8>) -> Result<(), Jp2Error> {
    let len = main.len() as u64;
    let bad = |pos: u64, reason| Jp2Error::Marker {
        offset: base + pos,
        marker: 0,
        reason,
    };
    if !main.starts_with(&markers::SOC.to_be_bytes()) {
        return Err(bad(
            0,
            "main header does not start with SOC; has the file changed?",
        ));
    }
    out.extend_from_slice(&main[..2]);
    let mut pos = 2u64;
    while pos < len {
        let item = markers::next_item(main, pos).map_err(|e| match e {
            ParseError::NeedMore { .. } => bad(pos, "main header ends inside a segment"),
            ParseError::Invalid(e) => e,
        })?;
        let (marker, length) = match item {
            Item::Segment { marker, length, .. } => (marker, length),
            Item::Bare { marker, .. } => (marker, 2),
            Item::Sot { .. } => return Err(bad(pos, "SOT inside the main header range")),
        };
        let end = pos + length;
        if !matches!(marker, markers::TLM | markers::PLM) {
            // pos < end <= len: next_item checked the segment is inside `main`.
            out.extend_from_slice(&main[pos as usize..end as usize]);
        }
        pos = end;
    }
    Ok(())
}
