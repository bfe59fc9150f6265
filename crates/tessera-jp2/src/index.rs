//! The index of a JP2 file: what a partial read needs to know, small enough to persist as JSON.
//!
//! The tile-part table is the heart of it. It comes from one of two places:
//!
//! - **TLM** ([`Jp2Index::from_header`]): the main header lists the length of every tile-part in
//!   codestream order, so offsets are cumulative from the first SOT and the header fetch is enough.
//!   TLM does not carry `TPsot`/`TNsot`; tile-parts of a tile appear in order, so `TPsot` is the
//!   count of earlier tile-parts of the same tile and `TNsot` the tile's total.
//! - **Walking SOT headers** ([`crate::SotWalker`], then [`Jp2Index::from_tile_parts`]): one small
//!   read per tile-part. Worth doing once and persisting, not per request.
//!
//! Everything else is copied from SIZ and COD, plus `blockers`: header features that make the
//! resolution-by-tile-part layout unsafe to rely on even when the tile-parts look right.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::Jp2Error;
use crate::header::Header;
use crate::markers::{self, Progression};

/// Bumped whenever the meaning of a persisted index changes, so stale ones can be rebuilt.
pub const INDEX_VERSION: u32 = 1;

/// Smallest possible tile-part: a 12-byte SOT segment and a 2-byte SOD marker.
pub(crate) const MIN_TILE_PART: u64 = 14;

/// One tile-part, as its SOT header describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TilePart {
    /// `Isot`: the tile index, in raster order.
    pub tile: u16,
    /// `TPsot`: this tile-part's number within its tile, from 0.
    pub part: u8,
    /// `TNsot`: how many tile-parts the tile has; 0 when the SOT says "unknown".
    pub parts: u8,
    /// Absolute file offset of the SOT marker.
    pub offset: u64,
    /// Bytes from the SOT marker to the end of the tile-part (`Psot`; a `Psot` of 0, "to the end of
    /// the codestream", is resolved to the real length).
    pub length: u64,
}

impl TilePart {
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.length
    }

    /// Its length as a SOT's `Psot` and a TLM's `Ptlm` hold it: 32 bits.
    pub(crate) fn psot(&self) -> Result<u32, Jp2Error> {
        u32::try_from(self.length).map_err(|_| Jp2Error::Sot {
            offset: self.offset,
            reason: "tile-part longer than 4 GiB",
        })
    }
}

/// One image component's depth and subsampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub precision: u8,
    pub signed: bool,
    pub dx: u8,
    pub dy: u8,
}

/// What a partial read of one file needs to know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jp2Index {
    /// [`INDEX_VERSION`] at the time this index was built.
    pub version: u32,
    /// Image size, `Xsiz - XOsiz` by `Ysiz - YOsiz`.
    pub width: u32,
    pub height: u32,
    /// Image origin on the reference grid (`XOsiz`, `YOsiz`); needed for exact reduced sizes.
    pub x0: u32,
    pub y0: u32,
    pub components: Vec<Component>,
    pub tile_width: u32,
    pub tile_height: u32,
    pub tile_x0: u32,
    pub tile_y0: u32,
    pub tiles_x: u32,
    pub tiles_y: u32,
    /// NL, decomposition levels (from COD): resolutions are `0..=levels`.
    pub levels: u8,
    pub progression: Progression,
    pub layers: u16,
    /// Absolute offset of SOC.
    pub codestream_offset: u64,
    /// End of the codestream box, when known.
    pub codestream_end: Option<u64>,
    /// The main header's absolute range (SOC to first SOT).
    pub main_header: Range<u64>,
    /// Every tile-part, in file order.
    pub tile_parts: Vec<TilePart>,
    /// Header features that rule out a partial read whatever the tile-parts look like.
    pub blockers: Vec<String>,
}

impl Jp2Index {
    /// Builds the index from the header alone, using its TLM segments.
    ///
    /// Fails with [`Jp2Error::NoTlm`] when there are none: then walk the SOTs with
    /// [`crate::SotWalker`] and call [`Jp2Index::from_tile_parts`].
    pub fn from_header(header: &Header) -> Result<Self, Jp2Error> {
        if header.tlm.is_empty() {
            return Err(Jp2Error::NoTlm);
        }
        let mut segments: Vec<_> = header.tlm.iter().collect();
        segments.sort_by_key(|t| t.index); // stable: equal Ztlm keep file order
        let num_tiles = header.siz.num_tiles();
        let mut counts = vec![0u16; num_tiles as usize];
        let mut parts = Vec::new();
        let mut offset = header.first_sot;
        for (i, e) in segments.iter().flat_map(|t| t.entries.iter()).enumerate() {
            let tile = match e.tile {
                Some(t) => t,
                None => u16::try_from(i).map_err(|_| Jp2Error::Tlm("too many entries"))?,
            };
            let count = counts
                .get_mut(usize::from(tile))
                .ok_or(Jp2Error::Tlm("tile index out of range"))?;
            let part = u8::try_from(*count)
                .map_err(|_| Jp2Error::Tlm("more than 255 tile-parts in a tile"))?;
            *count += 1;
            let length = u64::from(e.length);
            if length < MIN_TILE_PART {
                return Err(Jp2Error::Tlm("tile-part length below 14"));
            }
            parts.push(TilePart {
                tile,
                part,
                parts: 0,
                offset,
                length,
            });
            offset += length;
        }
        for p in &mut parts {
            // counts[p.tile] <= 256 was checked above; 256 only if the 256th part existed, which
            // failed the u8 conversion.
            p.parts = u8::try_from(counts[usize::from(p.tile)]).unwrap_or(0);
        }
        if let Some(end) = header.codestream_end {
            // The tile-parts must fill the codestream, leaving room for EOC at most.
            if offset > end || end - offset > 2 {
                return Err(Jp2Error::Tlm(
                    "tile-part lengths do not add up to the codestream",
                ));
            }
        }
        Self::from_tile_parts(header, parts)
    }

    /// Builds the index from a header and a tile-part table (e.g. from [`crate::SotWalker`]).
    pub fn from_tile_parts(header: &Header, tile_parts: Vec<TilePart>) -> Result<Self, Jp2Error> {
        let siz = &header.siz;
        let num_tiles = siz.num_tiles();
        let mut next = header.first_sot;
        for tp in &tile_parts {
            let err = |reason| Jp2Error::Sot {
                offset: tp.offset,
                reason,
            };
            if u64::from(tp.tile) >= num_tiles {
                return Err(err("tile index out of range"));
            }
            if tp.offset < next {
                return Err(err("tile-parts overlap or are out of order"));
            }
            if tp.length < MIN_TILE_PART {
                return Err(err("tile-part shorter than 14 bytes"));
            }
            next = tp
                .offset
                .checked_add(tp.length)
                .ok_or(err("tile-part length overflows"))?;
        }

        let cod = &header.cod;
        let mut blockers = Vec::new();
        for coc in &header.coc {
            if coc.levels != cod.levels {
                blockers.push(format!(
                    "component {} has {} decomposition levels, not {}",
                    coc.component, coc.levels, cod.levels
                ));
            }
        }
        for seg in &header.other {
            match seg.marker {
                markers::POC => blockers.push("POC marker changes the progression order".into()),
                markers::PPM => {
                    blockers.push("packed packet headers (PPM) in the main header".into())
                }
                _ => {}
            }
        }

        Ok(Jp2Index {
            version: INDEX_VERSION,
            width: siz.width(),
            height: siz.height(),
            x0: siz.xosiz,
            y0: siz.yosiz,
            components: siz
                .components
                .iter()
                .map(|c| Component {
                    precision: c.precision(),
                    signed: c.signed(),
                    dx: c.dx,
                    dy: c.dy,
                })
                .collect(),
            tile_width: siz.xtsiz,
            tile_height: siz.ytsiz,
            tile_x0: siz.xtosiz,
            tile_y0: siz.ytosiz,
            tiles_x: siz.tiles_x(),
            tiles_y: siz.tiles_y(),
            levels: cod.levels,
            progression: cod.progression,
            layers: cod.layers,
            codestream_offset: header.codestream_offset,
            codestream_end: header.codestream_end,
            main_header: header.main_header(),
            tile_parts,
            blockers,
        })
    }

    pub fn num_tiles(&self) -> u64 {
        u64::from(self.tiles_x) * u64::from(self.tiles_y)
    }

    /// The image size when decoded at `reduce` (OpenJPEG `-r reduce`): each dimension is
    /// `ceil((origin + size) / 2^reduce) - ceil(origin / 2^reduce)`.
    pub fn size_at(&self, reduce: u8) -> (u32, u32) {
        let shrink = |origin: u32, size: u32| {
            let d = u32::from(reduce.min(32));
            let f = |v: u64| v.div_ceil(1u64 << d);
            let (o, s) = (u64::from(origin), u64::from(size));
            (f(o + s) - f(o)) as u32
        };
        (shrink(self.x0, self.width), shrink(self.y0, self.height))
    }

    /// The sizes of the reduced resolutions, largest first: `size_at(1)` … `size_at(NL)`.
    pub fn reduced_sizes(&self) -> impl DoubleEndedIterator<Item = (u32, u32)> + '_ {
        (1..=self.levels).map(|r| self.size_at(r))
    }

    /// The largest reduce `d <= NL` whose decoded size is still at least `target_w` by
    /// `target_h`: about `floor(log2(full / target))`, using the decoder's own rounding so the
    /// result is never smaller than asked for. Targets larger than the image give 0.
    pub fn reduce_for(&self, target_w: u32, target_h: u32) -> u8 {
        let mut d = 0;
        while d < self.levels {
            let (w, h) = self.size_at(d + 1);
            if w < target_w || h < target_h {
                break;
            }
            d += 1;
        }
        d
    }
}
