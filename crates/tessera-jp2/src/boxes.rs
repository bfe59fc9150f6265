//! JP2 boxes: find where the codestream starts, and read `ihdr`/`colr` on the way.
//!
//! A JP2 file is a sequence of boxes `LBox(u32) TBox(4cc) [XLBox(u64) if LBox == 1] body`;
//! `LBox == 0` means "to the end of the file". We walk the top level only as far as the
//! contiguous codestream box `jp2c`: anything after it (XML, UUID boxes) is of no use for decoding,
//! and not reading it keeps the header fetch small. Boxes before `jp2c` that we do not know are
//! skipped by length, so a large XMP box only costs a longer prefix. A bare J2K codestream
//! (starting `FF4F FF51`) is accepted too; then there are no boxes and the codestream starts at 0.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::bytes::{array_at, slice_at, u32_at, u64_at, Cursor};
use crate::error::{Jp2Error, ParseError};

/// The JP2 signature box, always the first 12 bytes of a JP2 file.
pub(crate) const SIGNATURE: [u8; 12] = [
    0x00, 0x00, 0x00, 0x0C, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A,
];
/// SOC followed by SIZ: how a bare codestream starts.
const J2K_START: [u8; 4] = [0xFF, 0x4F, 0xFF, 0x51];

/// What the JP2 boxes before the codestream say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jp2Boxes {
    /// The `ftyp` brand, e.g. `"jp2 "`.
    pub brand: Option<String>,
    pub ihdr: Option<Ihdr>,
    /// The first `colr` box (the one a JP2 reader uses).
    pub colr: Option<Colr>,
    /// The whole `jp2c` box, header included; `end` is `None` when `LBox == 0` (to end of file).
    pub jp2c_start: u64,
    pub jp2c_end: Option<u64>,
}

/// The image header box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ihdr {
    pub height: u32,
    pub width: u32,
    pub components: u16,
    /// Bits per component minus one, top bit = signed; 255 = "varies, see `bpcc`".
    pub bpc: u8,
    pub compression: u8,
    pub unknown_colourspace: u8,
    pub ipr: u8,
}

/// The colour specification box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colr {
    /// 1 = enumerated colourspace, 2 = restricted ICC, 3 = any ICC (JPX).
    pub method: u8,
    pub precedence: u8,
    pub approx: u8,
    /// `EnumCS` when `method == 1` (16 = sRGB, 17 = greyscale, 18 = sYCC).
    pub enumerated: Option<u32>,
    /// Absolute byte range of the ICC profile when `method` is 2 or 3.
    pub icc_profile: Option<Range<u64>>,
}

/// Where the codestream is, and the boxes if it is wrapped in JP2.
pub(crate) struct Container {
    pub boxes: Option<Jp2Boxes>,
    pub codestream_offset: u64,
    pub codestream_end: Option<u64>,
}

struct BoxHeader {
    start: u64,
    kind: [u8; 4],
    body: u64,
    end: Option<u64>,
}

fn box_err(offset: u64, reason: &'static str) -> ParseError {
    ParseError::Invalid(Jp2Error::Box { offset, reason })
}

/// Reads the box header at `pos` of the file prefix.
fn box_header(buf: &[u8], pos: u64) -> Result<BoxHeader, ParseError> {
    let lbox = u32_at(buf, pos)?;
    let kind = array_at::<4>(buf, pos + 4)?;
    let (body, end) = match lbox {
        0 => (pos + 8, None),
        1 => {
            let xl = u64_at(buf, pos + 8)?;
            if xl < 16 {
                return Err(box_err(pos, "XLBox shorter than the box header"));
            }
            let end = pos
                .checked_add(xl)
                .ok_or_else(|| box_err(pos, "XLBox overflows"))?;
            (pos + 16, Some(end))
        }
        2..=7 => return Err(box_err(pos, "LBox shorter than the box header")),
        n => (pos + 8, Some(pos + u64::from(n))),
    };
    Ok(BoxHeader {
        start: pos,
        kind,
        body,
        end,
    })
}

/// Finds the codestream in a file prefix.
pub(crate) fn locate_codestream(buf: &[u8]) -> Result<Container, ParseError> {
    // Too short to tell yet, but still possibly one of the two.
    let short = |sig: &[u8]| buf.len() < sig.len() && sig.starts_with(buf);
    if buf.starts_with(&J2K_START) {
        return Ok(Container {
            boxes: None,
            codestream_offset: 0,
            codestream_end: None,
        });
    }
    if !buf.starts_with(&SIGNATURE) {
        // Either may still match; ask for enough to tell (and, for an empty prefix, for both).
        if short(&SIGNATURE) {
            return Err(ParseError::NeedMore { total_needed: 12 });
        }
        if short(&J2K_START) {
            return Err(ParseError::NeedMore { total_needed: 4 });
        }
        return Err(Jp2Error::NotJp2.into());
    }

    let mut boxes = Jp2Boxes::default();
    let mut pos = SIGNATURE.len() as u64;
    loop {
        let bh = box_header(buf, pos)?;
        match &bh.kind {
            b"jp2c" => {
                boxes.jp2c_start = bh.start;
                boxes.jp2c_end = bh.end;
                return Ok(Container {
                    codestream_offset: bh.body,
                    codestream_end: bh.end,
                    boxes: Some(boxes),
                });
            }
            b"ftyp" => {
                let end = bh
                    .end
                    .ok_or_else(|| box_err(bh.start, "ftyp runs to the end of file"))?;
                let brand = slice_at(buf, bh.body, (bh.body + 4).min(end))?;
                boxes.brand = Some(String::from_utf8_lossy(brand).into_owned());
            }
            b"jp2h" => {
                let end = bh
                    .end
                    .ok_or_else(|| box_err(bh.start, "jp2h runs to the end of file"))?;
                let body = slice_at(buf, bh.body, end)?;
                read_jp2h(body, bh.body, &mut boxes)?;
            }
            _ => {}
        }
        pos = match bh.end {
            Some(end) => end,
            None => return Err(Jp2Error::NoCodestream.into()),
        };
    }
}

/// Reads the children of the JP2 header superbox, all of which are in `body` (at file offset `base`).
fn read_jp2h(body: &[u8], base: u64, boxes: &mut Jp2Boxes) -> Result<(), ParseError> {
    let mut pos = 0u64;
    let len = body.len() as u64;
    while pos < len {
        // A child must lie within its parent: running out here is malformed, not "need more".
        let bh = box_header(body, pos).map_err(|e| match e {
            ParseError::NeedMore { .. } => box_err(base + pos, "child box runs past jp2h"),
            e => e,
        })?;
        let end = bh.end.unwrap_or(len);
        if end > len {
            return Err(box_err(base + pos, "child box runs past jp2h"));
        }
        let content = slice_at(body, bh.body, end)?;
        match &bh.kind {
            b"ihdr" if boxes.ihdr.is_none() => {
                boxes.ihdr =
                    Some(read_ihdr(content).ok_or_else(|| box_err(base + pos, "short ihdr"))?);
            }
            b"colr" if boxes.colr.is_none() => {
                boxes.colr = Some(
                    read_colr(content, base + bh.body)
                        .ok_or_else(|| box_err(base + pos, "short colr"))?,
                );
            }
            _ => {}
        }
        pos = end;
    }
    Ok(())
}

fn read_ihdr(content: &[u8]) -> Option<Ihdr> {
    let mut c = Cursor::new(content);
    Some(Ihdr {
        height: c.u32()?,
        width: c.u32()?,
        components: c.u16()?,
        bpc: c.u8()?,
        compression: c.u8()?,
        unknown_colourspace: c.u8()?,
        ipr: c.u8()?,
    })
}

fn read_colr(content: &[u8], at: u64) -> Option<Colr> {
    let mut c = Cursor::new(content);
    let method = c.u8()?;
    let precedence = c.u8()?;
    let approx = c.u8()?;
    let (enumerated, icc_profile) = match method {
        1 => (Some(c.u32()?), None),
        2 | 3 => (None, Some(at + 3..at + content.len() as u64)),
        _ => (None, None),
    };
    Some(Colr {
        method,
        precedence,
        approx,
        enumerated,
        icc_profile,
    })
}
