//! Rewriting a tiled file so that the tile-parts of any reduced resolution are one byte range.
//!
//! Encoders write a tiled file tile by tile: tile 0's resolutions 0..=NL, then tile 1's, and so
//! on, even when each resolution has a tile-part of its own (`opj_compress -TP R`). A small view
//! needs the low resolutions of *every* tile, so it reads one range per tile: 80 ranged GETs
//! for a 75 MP master in 1024² tiles, each paying the object store's latency. JPEG 2000 lets the
//! tile-parts of different tiles come in any order as long as each tile's own keep theirs (ISO
//! 15444-1, A.4.2), so the same tile-parts ordered by resolution across tiles — every tile's
//! resolution 0, then every tile's resolution 1, … — make the tile-parts of any reduce a prefix
//! of the codestream: one range. Nothing is re-encoded; the pixels are the same bytes.
//!
//! The steps of [`interleave`]:
//!
//! 1. The file must have the layout a partial read relies on ([`Jp2Index::check_partial`]):
//!    one tile-part per resolution. Anything else is refused, unchanged.
//! 2. The tile-parts are ordered by (part, tile): part `j` holds resolution `j`.
//! 3. The main header is copied without TLM and PLM (both list tile-parts in the old order), and
//!    a TLM for the new order is appended, so readers still find every tile-part from the header.
//! 4. Each tile-part gets a fresh SOT (`Psot` its length, `TNsot` its tile's count; a `Psot` of
//!    0, "to the end", would be wrong anywhere but last) and its body copied after it.
//! 5. EOC. In a JP2, the boxes before the codestream are copied, the `jp2c` box gets its new
//!    length, and the boxes after it are copied.
//!
//! Nothing here reads the file: the answer is a list of [`Piece`]s, new bytes or a range of the
//! original to copy, for the caller to write, so a master of gigabytes never sits in memory.

use std::ops::Range;

use thiserror::Error;

use crate::assemble::copy_main_header;
use crate::error::Jp2Error;
use crate::header::Header;
use crate::index::{Jp2Index, TilePart, MIN_TILE_PART};
use crate::markers;
use crate::plan::Unsupported;
use crate::walker::SOT_HEADER_LEN;

/// A part of the rewritten file: new bytes, or a range of the original to copy as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    New(Vec<u8>),
    Copy(Range<u64>),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::New(bytes) => bytes.len() as u64,
            Piece::Copy(r) => r.end - r.start,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rewritten file, as pieces to write in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interleaved {
    pub pieces: Vec<Piece>,
    /// Whether the tile-parts were already in this order (a single tile, or a file interleaved
    /// before): the rewrite is then the same codestream with a fresh TLM.
    pub order_unchanged: bool,
}

impl Interleaved {
    /// The rewritten file's size in bytes.
    pub fn len(&self) -> u64 {
        self.pieces.iter().map(Piece::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rewritten file from the whole `original` in memory; `None` if a piece to copy lies
    /// outside it (it is not the file this was worked out from).
    pub fn apply(&self, original: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(original.len());
        for piece in &self.pieces {
            match piece {
                Piece::New(bytes) => out.extend_from_slice(bytes),
                Piece::Copy(r) => out.extend_from_slice(
                    original.get(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)?,
                ),
            }
        }
        Some(out)
    }
}

impl Jp2Index {
    /// Whether the tile-parts come by resolution across tiles, as [`interleave`] writes them
    /// (a single tile's always do).
    pub fn is_interleaved(&self) -> bool {
        self.tile_parts.is_sorted_by_key(by_resolution)
    }
}

/// The order [`interleave`] writes: part `j` (resolution `j`) of every tile, tile by tile, then
/// part `j + 1`.
fn by_resolution(tp: &TilePart) -> (u8, u16) {
    (tp.part, tp.tile)
}

/// Why a file cannot be rewritten.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InterleaveError {
    /// Its tile-parts are not one per resolution: there is nothing to interleave.
    #[error("{0}")]
    Layout(#[from] Unsupported),
    #[error("{0}")]
    Malformed(#[from] Jp2Error),
}

/// The rewrite of the file described by `header` and `index` (built from it), `len` bytes long,
/// whose main header (`index.main_header`) is `main_header`.
pub fn interleave(
    header: &Header,
    index: &Jp2Index,
    main_header: &[u8],
    len: u64,
) -> Result<Interleaved, InterleaveError> {
    index.check_partial()?;
    if index.main_header != header.main_header()
        || main_header.len() as u64 != index.main_header.end - index.main_header.start
    {
        return Err(Jp2Error::Marker {
            offset: index.main_header.start,
            marker: markers::SOC,
            reason: "the main header given is not the one indexed",
        }
        .into());
    }
    for tp in &index.tile_parts {
        let err = |reason| Jp2Error::Sot {
            offset: tp.offset,
            reason,
        };
        let end = tp.offset.checked_add(tp.length);
        if tp.length < MIN_TILE_PART || end.is_none() {
            return Err(err("tile-part length out of range").into());
        }
        if end > Some(len) {
            return Err(err("the tile-part runs past the end of the file").into());
        }
    }

    let order_unchanged = index.is_interleaved();
    let mut order = index.tile_parts.clone();
    order.sort_by_key(by_resolution); // no two share (part, tile)
    let parts_per_tile = index.levels + 1; // check_partial: one tile-part per resolution

    let mut codestream_head = Vec::with_capacity(main_header.len() + 16 * order.len());
    copy_main_header(main_header, index.main_header.start, &mut codestream_head)?;
    codestream_head.extend_from_slice(&tlm_segments(&order)?);

    let mut pieces = Vec::with_capacity(2 * order.len() + 4);
    let mut codestream_len = codestream_head.len() as u64 + 2; // + EOC
    let mut tile_parts = Vec::with_capacity(2 * order.len());
    for tp in &order {
        tile_parts.push(Piece::New(sot(tp, parts_per_tile)?));
        tile_parts.push(Piece::Copy(tp.offset + SOT_HEADER_LEN..tp.range().end));
        codestream_len += tp.length;
    }

    match &header.jp2 {
        Some(boxes) => {
            pieces.push(Piece::Copy(0..boxes.jp2c_start));
            pieces.push(Piece::New(jp2c_box_header(codestream_len)?));
        }
        None => pieces.push(Piece::Copy(0..header.codestream_offset)),
    }
    pieces.push(Piece::New(codestream_head));
    pieces.append(&mut tile_parts);
    pieces.push(Piece::New(markers::EOC.to_be_bytes().to_vec()));
    if let Some(end) = header.jp2.as_ref().and(header.codestream_end) {
        if end < len {
            pieces.push(Piece::Copy(end..len));
        }
    }
    pieces.retain(|p| !p.is_empty());
    Ok(Interleaved {
        pieces,
        order_unchanged,
    })
}

/// A fresh SOT segment for `tp`: marker, `Lsot`, `Isot`, `Psot`, `TPsot`, `TNsot`.
fn sot(tp: &TilePart, parts: u8) -> Result<Vec<u8>, Jp2Error> {
    let mut out = Vec::with_capacity(SOT_HEADER_LEN as usize);
    out.extend_from_slice(&markers::SOT.to_be_bytes());
    out.extend_from_slice(&10u16.to_be_bytes());
    out.extend_from_slice(&tp.tile.to_be_bytes());
    out.extend_from_slice(&tp.psot()?.to_be_bytes());
    out.push(tp.part);
    out.push(parts);
    Ok(out)
}

/// The `jp2c` box header for a codestream of `len` bytes: an 8-byte header, or 16 with the
/// 64-bit length (`LBox = 1`) when the box would pass 4 GiB.
fn jp2c_box_header(len: u64) -> Result<Vec<u8>, Jp2Error> {
    let long = len
        .checked_add(16)
        .ok_or(Jp2Error::TooLarge("codestream"))?;
    let mut out = Vec::with_capacity(16);
    match u32::try_from(len + 8) {
        Ok(short) => {
            out.extend_from_slice(&short.to_be_bytes());
            out.extend_from_slice(b"jp2c");
        }
        Err(_) => {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.extend_from_slice(b"jp2c");
            out.extend_from_slice(&long.to_be_bytes());
        }
    }
    Ok(out)
}

/// TLM segments listing `parts` in order: `Ttlm` in one byte when every tile index fits (two
/// otherwise), `Ptlm` in two bytes when every length fits (four otherwise), as many entries per
/// segment as `Ltlm` allows, `Ztlm` counting the segments.
fn tlm_segments(parts: &[TilePart]) -> Result<Vec<u8>, Jp2Error> {
    let st: usize = if parts.iter().all(|tp| tp.tile <= 0xFF) {
        1
    } else {
        2
    };
    let sp: usize = if parts.iter().all(|tp| tp.length <= 0xFFFF) {
        2
    } else {
        4
    };
    let stlm = ((st as u8) << 4) | if sp == 4 { 0x40 } else { 0 };
    // Ltlm counts itself, Ztlm and Stlm: at most 65535.
    let per_segment = (usize::from(u16::MAX) - 4) / (st + sp);
    let mut out =
        Vec::with_capacity(parts.len() * (st + sp) + 6 * parts.len().div_ceil(per_segment));
    for (z, chunk) in parts.chunks(per_segment).enumerate() {
        let z =
            u8::try_from(z).map_err(|_| Jp2Error::TooLarge("tile-parts for 256 TLM segments"))?;
        let mut body = Vec::with_capacity(2 + chunk.len() * (st + sp));
        body.push(z);
        body.push(stlm);
        for tp in chunk {
            match st {
                1 => body.push(tp.tile as u8), // all <= 0xFF, checked above
                _ => body.extend_from_slice(&tp.tile.to_be_bytes()),
            }
            let length = tp.psot()?;
            match sp {
                2 => body.extend_from_slice(&(length as u16).to_be_bytes()), // <= 0xFFFF
                _ => body.extend_from_slice(&length.to_be_bytes()),
            }
        }
        markers::push_segment(&mut out, markers::TLM, &body)
            .ok_or(Jp2Error::TooLarge("TLM segment"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markers::{parse_tlm, Item};
    use proptest::prelude::*;

    fn part(tile: u16, length: u64) -> TilePart {
        TilePart {
            tile,
            part: 0,
            parts: 1,
            offset: 0,
            length,
        }
    }

    /// Every TLM segment in `bytes`, parsed.
    fn parse_all(bytes: &[u8]) -> Vec<crate::markers::Tlm> {
        let mut pos = 0;
        let mut out = Vec::new();
        while (pos as usize) < bytes.len() {
            match markers::next_item(bytes, pos).unwrap() {
                Item::Segment {
                    marker,
                    length,
                    body,
                    ..
                } => {
                    assert_eq!(marker, markers::TLM);
                    out.push(parse_tlm(body).unwrap());
                    pos += length;
                }
                _ => panic!("not a segment at {pos}"),
            }
        }
        out
    }

    proptest! {
        /// What is written reads back as the same tile-parts in the same order, whatever the
        /// tile indexes and lengths, across as many segments as it takes.
        #[test]
        fn tlm_reads_back_as_written(
            parts in prop::collection::vec((0u16..600, 14u64..200_000), 0..40),
            many in 0usize..2,
        ) {
            // Sometimes enough entries to need more than one segment.
            let parts: Vec<TilePart> = parts
                .iter()
                .cycle()
                .take(if many == 1 { parts.len() * 700 } else { parts.len() })
                .map(|&(t, l)| part(t, l))
                .collect();
            let bytes = tlm_segments(&parts).unwrap();
            let segments = parse_all(&bytes);
            for (i, s) in segments.iter().enumerate() {
                prop_assert_eq!(usize::from(s.index), i);
            }
            let read: Vec<(u16, u64)> = segments
                .iter()
                .flat_map(|s| s.entries.iter())
                .map(|e| (e.tile.unwrap(), u64::from(e.length)))
                .collect();
            let want: Vec<(u16, u64)> = parts.iter().map(|tp| (tp.tile, tp.length)).collect();
            prop_assert_eq!(read, want);
        }
    }

    #[test]
    fn tlm_uses_the_smallest_fields_that_fit() {
        let small = tlm_segments(&[part(3, 100), part(255, 65535)]).unwrap();
        assert_eq!(small[5], 0x10, "ST 1, SP 2");
        assert_eq!(small.len(), 6 + 2 * 3);
        let wide = tlm_segments(&[part(256, 100), part(0, 65536)]).unwrap();
        assert_eq!(wide[5], 0x60, "ST 2, SP 4");
        assert_eq!(wide.len(), 6 + 2 * 6);
    }

    #[test]
    fn over_4_gib_is_refused_not_truncated() {
        assert!(tlm_segments(&[part(0, 1 << 32)]).is_err());
        assert!(sot(&part(0, 1 << 32), 1).is_err());
    }

    #[test]
    fn a_jp2c_box_past_4_gib_has_the_long_length() {
        assert_eq!(jp2c_box_header(100).unwrap(), b"\0\0\0\x6cjp2c");
        let long = jp2c_box_header(u64::from(u32::MAX)).unwrap();
        assert_eq!(&long[..8], b"\0\0\0\x01jp2c");
        assert_eq!(
            u64::from_be_bytes(long[8..].try_into().unwrap()),
            u64::from(u32::MAX) + 16
        );
    }
}
