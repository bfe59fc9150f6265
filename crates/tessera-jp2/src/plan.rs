//! Which byte ranges to fetch to decode a file at a reduced resolution.
//!
//! A partial read relies on one layout: **every tile has NL + 1 tile-parts and the tile-part with
//! `TPsot = j` holds exactly the packets of resolution `j`**. Two progression orders can produce it,
//! because in both the resolution is the outermost loop of the packet order within a tile:
//!
//! - **RPCL** (resolution, position, component, layer): what `opj_compress -p RPCL -TP R` and
//!   Kakadu `Corder=RPCL ORGtparts=R` write.
//! - **RLCP** (resolution, layer, component, position): a tile-part per resolution holds all
//!   layers of that resolution, so cutting after resolution `j` is just as clean.
//!
//! The others cannot: in **LRCP** the layer is outermost, so resolution `j`'s packets are spread
//! over every layer (with `-TP R` OpenJPEG writes a tile-part per layer *and* resolution); in
//! **PCRL** and **CPRL** the resolution is an inner loop, so no set of leading tile-parts is "the
//! low resolutions". Such files get [`Unsupported`] and the caller reads the whole file.
//!
//! The layout is checked from the tile-part table (count and `TPsot` order per tile), not from the
//! packets: an encoder that split a tile into NL + 1 parts some other way in RPCL order would fool
//! it. None that we know of does.
//!
//! Ranges are absolute and half-open. Neighbouring ranges closer than `max_gap` are merged: one
//! request that carries a few unneeded bytes is cheaper than two requests.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::index::{Jp2Index, TilePart};
use crate::markers::Progression;

/// Why a file cannot be read partially; read it whole instead.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("partial read not possible: {reason}")]
pub struct Unsupported {
    pub reason: String,
}

impl Unsupported {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// The bytes to fetch for one reduce level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Decode with this reduce (OpenJPEG `-r`): resolutions `0..=NL - reduce` are fetched.
    pub reduce: u8,
    /// The main header's absolute range.
    pub main_header: Range<u64>,
    /// The tile-parts kept, in file order.
    pub tile_parts: Vec<TilePart>,
    /// What to fetch: sorted, disjoint, coalesced; covers `main_header` and every kept tile-part.
    pub ranges: Vec<Range<u64>>,
}

impl Plan {
    /// Total bytes of `ranges`.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }
}

impl Jp2Index {
    /// Checks that the file has the one layout a partial read relies on (see the module docs).
    pub fn check_partial(&self) -> Result<(), Unsupported> {
        match self.progression {
            Progression::Rpcl | Progression::Rlcp => {}
            p => {
                return Err(Unsupported::new(format!(
                    "{p} progression: resolutions are not contiguous"
                )))
            }
        }
        if let Some(b) = self.blockers.first() {
            return Err(Unsupported::new(b.clone()));
        }
        let n = usize::from(self.levels) + 1;
        if self.num_tiles() > 65535 {
            return Err(Unsupported::new("more than 65535 tiles"));
        }
        let mut next_part = vec![0usize; self.num_tiles() as usize];
        for tp in &self.tile_parts {
            let not_split = |why: &str| {
                Unsupported::new(format!(
                    "tile-parts not split by resolution: tile {} {why} (NL = {})",
                    tp.tile, self.levels
                ))
            };
            let Some(next) = next_part.get_mut(usize::from(tp.tile)) else {
                return Err(not_split("does not exist"));
            };
            if usize::from(tp.part) != *next || *next >= n {
                return Err(not_split(&format!(
                    "has tile-part {} where {} was due",
                    tp.part, *next
                )));
            }
            if tp.parts != 0 && usize::from(tp.parts) != n {
                return Err(not_split(&format!("says it has {} tile-parts", tp.parts)));
            }
            *next += 1;
        }
        if let Some((tile, &c)) = next_part.iter().enumerate().find(|(_, &c)| c != n) {
            return Err(Unsupported::new(format!(
                "tile-parts not split by resolution: tile {tile} has {c} tile-parts, not NL + 1 = {n}"
            )));
        }
        Ok(())
    }

    /// The ranges to fetch to decode at `reduce`, merging ranges at most `max_gap` bytes apart.
    pub fn plan(&self, reduce: u8, max_gap: u64) -> Result<Plan, Unsupported> {
        if reduce > self.levels {
            return Err(Unsupported::new(format!(
                "reduce {reduce} exceeds the {} decomposition levels",
                self.levels
            )));
        }
        self.check_partial()?;
        let top = self.levels - reduce;
        let tile_parts: Vec<TilePart> = self
            .tile_parts
            .iter()
            .filter(|tp| tp.part <= top)
            .copied()
            .collect();
        let ranges = coalesce(
            std::iter::once(self.main_header.clone()).chain(tile_parts.iter().map(TilePart::range)),
            max_gap,
        );
        Ok(Plan {
            reduce,
            main_header: self.main_header.clone(),
            tile_parts,
            ranges,
        })
    }
}

/// Sorts ranges and merges those that overlap, touch, or are at most `max_gap` bytes apart.
/// Empty ranges are dropped.
pub fn coalesce(ranges: impl IntoIterator<Item = Range<u64>>, max_gap: u64) -> Vec<Range<u64>> {
    let mut v: Vec<Range<u64>> = ranges.into_iter().filter(|r| r.start < r.end).collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(max_gap) => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesce_merges_overlaps_touching_and_small_gaps() {
        let r = coalesce([10..20, 0..5, 5..8, 15..30, 40..50, 52..60, 70..70], 0);
        assert_eq!(r, vec![0..8, 10..30, 40..50, 52..60]);
        let r = coalesce([10..20, 0..5, 5..8, 15..30, 40..50, 52..60], 2);
        assert_eq!(r, vec![0..30, 40..60]);
        assert_eq!(coalesce([0..u64::MAX, 5..6], u64::MAX), vec![0..u64::MAX]);
        assert!(coalesce([], 10).is_empty());
    }
}
