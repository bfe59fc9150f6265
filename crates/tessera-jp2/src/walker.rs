//! Finding tile-parts without TLM: hop from SOT to SOT.
//!
//! Each tile-part starts with `FF90 Lsot=10 Isot(u16) Psot(u32) TPsot(u8) TNsot(u8)` and `Psot`
//! gives the distance to the next one, so 12 bytes per tile-part locate them all. The walker is a
//! state machine rather than a loop over a reader because the caller's reads are async ranged
//! GETs: it says which bytes it needs ([`SotWalker::next_read`]), the caller fetches them, feeds
//! them in ([`SotWalker::feed`]) and asks again. A feed may cover more than 12 bytes; every SOT
//! header inside it is consumed, which makes walking a small file (or a buffered one) one step.
//!
//! The walk ends at EOC or at the end of the codestream (the `jp2c` box or the file). `Psot == 0`
//! means "this tile-part runs to the end of the codestream", which only the last one may say.

use std::ops::Range;

use crate::error::Jp2Error;
use crate::header::Header;
use crate::index::{TilePart, MIN_TILE_PART};
use crate::markers::{EOC, SOT};

/// Bytes of a SOT marker segment.
pub const SOT_HEADER_LEN: u64 = 12;

/// Walks the SOT headers of a codestream; see the module docs.
#[derive(Clone, Debug)]
pub struct SotWalker {
    next: u64,
    end: u64,
    num_tiles: u64,
    parts: Vec<TilePart>,
    done: bool,
}

impl SotWalker {
    /// Starts at the first SOT of `header`'s file, which is `file_len` bytes long.
    pub fn new(header: &Header, file_len: u64) -> Self {
        let end = header.codestream_end.map_or(file_len, |e| e.min(file_len));
        let next = header.first_sot;
        SotWalker {
            next,
            end,
            num_tiles: header.siz.num_tiles(),
            parts: Vec::new(),
            done: end.saturating_sub(next) < 2,
        }
    }

    /// The absolute byte range to read next, or `None` when the walk is over.
    pub fn next_read(&self) -> Option<Range<u64>> {
        (!self.done).then(|| self.next..self.end.min(self.next + SOT_HEADER_LEN))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The tile-parts found so far, in file order.
    pub fn tile_parts(&self) -> &[TilePart] {
        &self.parts
    }

    /// Consumes `bytes`, read from absolute offset `offset`. They must cover [`Self::next_read`];
    /// every further SOT header that lies inside them is consumed too. Returns how many
    /// tile-parts were found.
    pub fn feed(&mut self, offset: u64, bytes: &[u8]) -> Result<usize, Jp2Error> {
        let Some(want) = self.next_read() else {
            return Ok(0);
        };
        let len = bytes.len() as u64;
        if offset > want.start || offset.saturating_add(len) < want.end {
            return Err(Jp2Error::ShortRead {
                offset,
                len,
                wanted_start: want.start,
                wanted_end: want.end,
            });
        }
        let before = self.parts.len();
        while let Some(want) = self.next_read() {
            // want.start >= offset: it was for the first step and only grows.
            let rel = usize::try_from(want.start - offset).unwrap_or(usize::MAX);
            let Some(avail) = bytes.get(rel..) else {
                break;
            };
            if avail.len() < (want.end - want.start) as usize {
                break;
            }
            self.step(avail)?;
        }
        Ok(self.parts.len() - before)
    }

    /// One SOT (or EOC) at `self.next`; `avail` holds at least the bytes `next_read` asked for.
    fn step(&mut self, avail: &[u8]) -> Result<(), Jp2Error> {
        let at = self.next;
        let err = |reason| Jp2Error::Sot { offset: at, reason };
        if avail.starts_with(&EOC.to_be_bytes()) {
            self.done = true;
            return Ok(());
        }
        let Some(h) = avail.first_chunk::<12>() else {
            return Err(err("codestream ends inside a SOT header"));
        };
        let [m0, m1, l0, l1, i0, i1, p0, p1, p2, p3, part, parts] = *h;
        if u16::from_be_bytes([m0, m1]) != SOT {
            return Err(err("expected SOT or EOC"));
        }
        if u16::from_be_bytes([l0, l1]) != 10 {
            return Err(err("Lsot is not 10"));
        }
        let tile = u16::from_be_bytes([i0, i1]);
        let psot = u64::from(u32::from_be_bytes([p0, p1, p2, p3]));
        if u64::from(tile) >= self.num_tiles {
            return Err(err("tile index out of range"));
        }
        if self.parts.len() as u64 >= self.num_tiles * 255 {
            return Err(err("more tile-parts than tiles can have"));
        }
        let length = if psot == 0 {
            // To the end of the codestream, which ends with EOC.
            self.end.saturating_sub(at).saturating_sub(2)
        } else {
            psot
        };
        if length < MIN_TILE_PART {
            return Err(err("tile-part shorter than 14 bytes"));
        }
        if length > self.end - at {
            return Err(err("tile-part runs past the end of the codestream"));
        }
        self.parts.push(TilePart {
            tile,
            part,
            parts,
            offset: at,
            length,
        });
        self.next = at + length;
        if psot == 0 || self.end - self.next < 2 {
            self.done = true;
        }
        Ok(())
    }

    /// The tile-part table, once the walk is over.
    pub fn finish(self) -> Result<Vec<TilePart>, Jp2Error> {
        if !self.done {
            return Err(Jp2Error::Sot {
                offset: self.next,
                reason: "the walk is not finished",
            });
        }
        Ok(self.parts)
    }
}
