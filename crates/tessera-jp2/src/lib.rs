#![forbid(unsafe_code)]
//! JPEG2000 headers and partial reads, as pure functions over bytes.
//!
//! Tessera keeps its JPEG2000 masters in object storage. To answer a small view of a large image
//! it should not fetch the whole file: a JP2 written in RPCL order with one tile-part per
//! resolution (`opj_compress -p RPCL -TP R`, Kakadu `ORGtparts=R`) stores resolution *j* of every
//! tile in the tile-part with `TPsot = j`, so the low resolutions are a few byte ranges.
//! This crate finds those ranges; the caller does the I/O. The steps:
//!
//! 1. [`Header::parse`] reads the JP2 boxes and the codestream main header from a prefix of the
//!    file and says how many more bytes it needs ([`ParseError::NeedMore`]) when the prefix is short.
//! 2. [`Jp2Index`] lists every tile-part (tile, part number, offset, length). It is built from the
//!    TLM marker segment when the file has one ([`Jp2Index::from_header`]); otherwise
//!    [`SotWalker`] tells the caller which 12 bytes to read next, hopping from SOT to SOT.
//!    The index is serde-serializable so the caller can persist it next to the file.
//! 3. [`Jp2Index::plan`] picks the tile-parts holding resolutions `0..=NL-reduce` and coalesces
//!    their byte ranges; it returns [`Unsupported`] for files laid out any other way, so that the
//!    caller falls back to fetching the whole file.
//! 4. [`assemble`] stitches the fetched ranges into a standalone J2K codestream that any decoder
//!    reads at `reduce` (OpenJPEG: `-r reduce`) to the same pixels as the whole file.
//! 5. [`as_reduced_image`] rewrites that codestream's main header as the smaller image's, so that
//!    a decoder reads it whole, at no reduce, without building the structures of the resolutions
//!    it would skip (the same pixels again).
//! 6. Optionally, [`without_last_planes`] rewrites its packet headers so that the decoder leaves
//!    each code-block's last bit-planes undecoded: close to the same pixels, in a fraction of
//!    the time (the packet-header coding it needs is the `tier2` module).
//!
//! Files written tile by tile keep each tile's resolutions together, so a small view of a tiled
//! file reads one range per tile. [`interleave`] lays the same tile-parts out by resolution
//! across tiles, once, so that every reduce is one range (`tessera interleave` writes it).
//!
//! Nothing here does I/O or panics on malformed input: every length is checked before use, errors
//! say which byte was wrong, and allocations are bounded by the bytes given (or, for per-tile
//! tables, by the 65535-tile limit), never by a length field alone. `Header::parse` is a pure
//! function of a byte slice, so a fuzz target is one line: `let _ = Header::parse(data);`.

mod assemble;
mod boxes;
mod bytes;
mod error;
mod fewer_planes;
mod header;
mod index;
mod interleave;
pub mod markers;
mod plan;
mod reduced;
mod tier2;
mod walker;

pub use assemble::{assemble, check_sot};
pub use boxes::{Colr, Ihdr, Jp2Boxes};
pub use error::{Jp2Error, ParseError};
pub use fewer_planes::without_last_planes;
pub use header::Header;
pub use index::{Component, Jp2Index, TilePart, INDEX_VERSION};
pub use interleave::{interleave, InterleaveError, Interleaved, Piece};
pub use markers::{Coc, Cod, Comment, ComponentSiz, Progression, SegmentInfo, Siz, Tlm, TlmEntry};
pub use plan::{coalesce, Plan, Unsupported};
pub use reduced::as_reduced_image;
pub use walker::{SotWalker, SOT_HEADER_LEN};
