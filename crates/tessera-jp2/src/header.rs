//! The header of a JP2 file: its boxes and the codestream main header (SOC up to the first SOT).
//!
//! [`Header::parse`] takes a prefix of the file, not a reader, for two reasons: the caller fetches
//! from object storage, where "the first 16 KiB, and more only if needed" is the cheap pattern, and a
//! function of a byte slice is trivially fuzzable (`let _ = Header::parse(data);`).
//! Offsets in the result are absolute file offsets, since the prefix starts at byte 0.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::boxes::{self, Jp2Boxes};
use crate::error::{Jp2Error, ParseError};
use crate::markers::{self, Coc, Cod, Comment, Item, SegmentInfo, Siz, Tlm};

/// The JP2 boxes and codestream main header of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The boxes before the codestream; `None` for a bare J2K codestream.
    pub jp2: Option<Jp2Boxes>,
    /// Absolute offset of SOC.
    pub codestream_offset: u64,
    /// End of the `jp2c` box, when its length is given (not for bare codestreams or `LBox == 0`).
    pub codestream_end: Option<u64>,
    /// Absolute offset of the first SOT: the main header is `codestream_offset..first_sot`.
    pub first_sot: u64,
    pub siz: Siz,
    pub cod: Cod,
    pub coc: Vec<Coc>,
    pub qcd: SegmentInfo,
    pub qcc: Vec<SegmentInfo>,
    /// TLM segments in file order.
    pub tlm: Vec<Tlm>,
    pub plm: Vec<SegmentInfo>,
    pub comments: Vec<Comment>,
    /// Every other main-header segment (POC, PPM, RGN, CRG, CAP, unknown ones), in file order.
    pub other: Vec<SegmentInfo>,
}

#[derive(Default)]
struct Builder {
    siz: Option<Siz>,
    cod: Option<Cod>,
    coc: Vec<Coc>,
    qcd: Option<SegmentInfo>,
    qcc: Vec<SegmentInfo>,
    tlm: Vec<Tlm>,
    plm: Vec<SegmentInfo>,
    comments: Vec<Comment>,
    other: Vec<SegmentInfo>,
}

impl Header {
    /// Parses the header from the first bytes of a JP2 file or J2K codestream.
    ///
    /// Returns [`ParseError::NeedMore`] when `prefix` ends before the first SOT marker; the
    /// answer can grow on a retry (a box or segment length is only known once its start is read),
    /// so loop until it is `Ok` or [`ParseError::Invalid`].
    pub fn parse(prefix: &[u8]) -> Result<Header, ParseError> {
        let container = boxes::locate_codestream(prefix)?;
        let start = container.codestream_offset;
        let limit = container.codestream_end;
        // The main header must lie inside the codestream box: read no further than its end.
        let prefix = match limit {
            Some(end) if end < prefix.len() as u64 => prefix.get(..end as usize).unwrap_or(prefix),
            _ => prefix,
        };
        let mut pos = start;
        match bounded(markers::next_item(prefix, pos), limit, pos)? {
            Item::Bare {
                marker: markers::SOC,
                ..
            } => pos += 2,
            _ => return Err(Jp2Error::Missing("SOC").into()),
        }
        let mut b = Builder::default();
        let first_sot = loop {
            match bounded(markers::next_item(prefix, pos), limit, pos)? {
                Item::Sot { offset } => break offset,
                Item::Bare { marker, offset } => {
                    if !(0xFF30..=0xFF3F).contains(&marker) {
                        return Err(marker_err(offset, marker, "not allowed in the main header"));
                    }
                    pos += 2;
                }
                Item::Segment {
                    marker,
                    offset,
                    length,
                    body,
                } => {
                    b.add(marker, offset, length, body)?;
                    pos += length;
                }
            }
        };
        Ok(Header {
            jp2: container.boxes,
            codestream_offset: start,
            codestream_end: container.codestream_end,
            first_sot,
            siz: b.siz.ok_or(Jp2Error::Missing("SIZ"))?,
            cod: b.cod.ok_or(Jp2Error::Missing("COD"))?,
            coc: b.coc,
            qcd: b.qcd.ok_or(Jp2Error::Missing("QCD"))?,
            qcc: b.qcc,
            tlm: b.tlm,
            plm: b.plm,
            comments: b.comments,
            other: b.other,
        })
    }

    /// The main header's absolute byte range, SOC included, first SOT excluded.
    pub fn main_header(&self) -> Range<u64> {
        self.codestream_offset..self.first_sot
    }
}

/// Turns "need more" into "malformed" when the bytes asked for lie past the end of the codestream
/// box: fetching them would never help.
fn bounded(
    r: Result<Item<'_>, ParseError>,
    limit: Option<u64>,
    pos: u64,
) -> Result<Item<'_>, ParseError> {
    match r {
        Err(ParseError::NeedMore { total_needed }) if limit.is_some_and(|e| total_needed > e) => {
            Err(marker_err(
                pos,
                0,
                "main header runs past the end of the codestream box",
            ))
        }
        r => r,
    }
}

fn marker_err(offset: u64, marker: u16, reason: &'static str) -> ParseError {
    ParseError::Invalid(Jp2Error::Marker {
        offset,
        marker,
        reason,
    })
}

impl Builder {
    fn add(
        &mut self,
        marker: u16,
        offset: u64,
        length: u64,
        body: &[u8],
    ) -> Result<(), ParseError> {
        let err = |reason| marker_err(offset, marker, reason);
        let info = SegmentInfo {
            marker,
            offset,
            length,
        };
        if self.siz.is_none() && marker != markers::SIZ {
            return Err(err("the first main-header segment must be SIZ"));
        }
        match marker {
            markers::SIZ => {
                if self.siz.is_some() {
                    return Err(err("second SIZ"));
                }
                self.siz = Some(markers::parse_siz(body).map_err(err)?);
            }
            markers::COD => {
                if self.cod.is_some() {
                    return Err(err("second COD"));
                }
                self.cod = Some(markers::parse_cod(body).map_err(err)?);
            }
            markers::COC => {
                let n = self.siz.as_ref().map_or(0, |s| s.components.len());
                self.coc.push(markers::parse_coc(body, n).map_err(err)?);
            }
            markers::QCD => {
                if self.qcd.is_some() {
                    return Err(err("second QCD"));
                }
                self.qcd = Some(info);
            }
            markers::QCC => self.qcc.push(info),
            markers::TLM => self.tlm.push(markers::parse_tlm(body).map_err(err)?),
            markers::PLM => self.plm.push(info),
            markers::COM => self
                .comments
                .push(markers::parse_com(body, info).map_err(err)?),
            markers::PLT | markers::PPT | markers::SOP => {
                return Err(err("only allowed in tile-part headers or data"))
            }
            _ => self.other.push(info),
        }
        Ok(())
    }
}
