//! Errors. Malformed input is an error value, never a panic: these bytes come from storage we do
//! not control, and one bad file must not take the proxy down.

use thiserror::Error;

/// Why bytes are not a usable JP2/J2K file (or do not match the index built from them).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Jp2Error {
    #[error("not a JP2 file or a J2K codestream")]
    NotJp2,
    #[error("bad box at byte {offset}: {reason}")]
    Box { offset: u64, reason: &'static str },
    #[error("no codestream (jp2c) box")]
    NoCodestream,
    #[error("bad marker 0x{marker:04X} at byte {offset}: {reason}")]
    Marker {
        offset: u64,
        marker: u16,
        reason: &'static str,
    },
    #[error("the main header has no {0} marker segment")]
    Missing(&'static str),
    #[error("bad TLM: {0}")]
    Tlm(&'static str),
    #[error("the main header has no TLM marker segment; walk the tile-parts with SotWalker")]
    NoTlm,
    #[error("bad tile-part at byte {offset}: {reason}")]
    Sot { offset: u64, reason: &'static str },
    #[error("the walker needs bytes {wanted_start}..{wanted_end}, got {len} bytes at {offset}")]
    ShortRead {
        offset: u64,
        len: u64,
        wanted_start: u64,
        wanted_end: u64,
    },
    #[error("bytes {start}..{end} are not among the fetched ranges")]
    MissingBytes { start: u64, end: u64 },
    #[error("too large: {0}")]
    TooLarge(&'static str),
}

/// The outcome of parsing a prefix of a file that is not (yet) a header.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The prefix ends before the header does. Fetch at least the first `total_needed` bytes of
    /// the file (more saves round trips) and parse again. If the file is shorter than this, it is
    /// truncated.
    #[error("need at least the first {total_needed} bytes")]
    NeedMore { total_needed: u64 },
    /// The bytes are malformed; more bytes will not help.
    #[error(transparent)]
    Invalid(#[from] Jp2Error),
}
