//! Codestream markers: their codes, a scanner that steps from one marker segment to the next, and
//! parsers for the main-header segments the index and the plan depend on.
//!
//! Parsed segments keep what a partial read needs (sizes, tiling, progression, decomposition
//! levels, tile-part lengths) and only the position of the rest (QCD, QCC, PLM, unknown markers):
//! the assembler copies those bytes through unchanged, so there is nothing to gain from decoding
//! them, and every parser is a place for a bug.

use serde::{Deserialize, Serialize};

use crate::bytes::{slice_at, u16_at, Cursor};
use crate::error::ParseError;

pub const SOC: u16 = 0xFF4F;
pub const CAP: u16 = 0xFF50;
pub const SIZ: u16 = 0xFF51;
pub const COD: u16 = 0xFF52;
pub const COC: u16 = 0xFF53;
pub const TLM: u16 = 0xFF55;
pub const PLM: u16 = 0xFF57;
pub const PLT: u16 = 0xFF58;
pub const QCD: u16 = 0xFF5C;
pub const QCC: u16 = 0xFF5D;
pub const RGN: u16 = 0xFF5E;
pub const POC: u16 = 0xFF5F;
pub const PPM: u16 = 0xFF60;
pub const PPT: u16 = 0xFF61;
pub const CRG: u16 = 0xFF63;
pub const COM: u16 = 0xFF64;
pub const SOT: u16 = 0xFF90;
pub const SOP: u16 = 0xFF91;
pub const EPH: u16 = 0xFF92;
pub const SOD: u16 = 0xFF93;
pub const EOC: u16 = 0xFFD9;

/// Where a marker segment is: `offset` is the absolute file offset of its marker, `length` counts
/// every byte of it (the marker's two bytes plus `Lxxx`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub marker: u16,
    pub offset: u64,
    pub length: u64,
}

/// One step of a marker scan.
pub(crate) enum Item<'a> {
    /// A marker segment: marker, `Lxxx`, then `body` (`Lxxx - 2` bytes).
    Segment {
        marker: u16,
        offset: u64,
        length: u64,
        body: &'a [u8],
    },
    /// A marker without a segment (SOC, SOD, EOC, EPH, FF30..FF3F): two bytes.
    Bare { marker: u16, offset: u64 },
    /// A start-of-tile-part marker: the end of the main header.
    Sot { offset: u64 },
}

fn marker_err(offset: u64, marker: u16, reason: &'static str) -> ParseError {
    ParseError::Invalid(crate::Jp2Error::Marker {
        offset,
        marker,
        reason,
    })
}

/// A main-header segment: its marker and body.
pub(crate) type Segment<'a> = (u16, &'a [u8]);

/// The main header's segments (after SOC) and where the first tile-part starts; `None` if it
/// is malformed.
pub(crate) fn main_header(cs: &[u8]) -> Option<(Vec<Segment<'_>>, usize)> {
    let mut segments = Vec::new();
    let mut pos = 2u64;
    loop {
        match next_item(cs, pos).ok()? {
            Item::Segment {
                marker,
                length,
                body,
                ..
            } => {
                segments.push((marker, body));
                pos += length;
            }
            Item::Sot { offset } => return Some((segments, usize::try_from(offset).ok()?)),
            Item::Bare { .. } => return None,
        }
    }
}

/// Append the segment `marker` with `body`, its length worked out; `None` if it is too long.
pub(crate) fn push_segment(out: &mut Vec<u8>, marker: u16, body: &[u8]) -> Option<()> {
    let length = u16::try_from(body.len() + 2).ok()?;
    out.extend_from_slice(&marker.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(body);
    Some(())
}

/// Where the tile-part whose SOT is at `at` in `cs` ends (its `Psot`, or the EOC for 0);
/// `None` if that leaves no room for its SOT and SOD.
pub(crate) fn tile_part_end(cs: &[u8], at: usize) -> Option<usize> {
    let sot = cs.get(at..at + 12)?;
    let end = match u32::from_be_bytes([sot[6], sot[7], sot[8], sot[9]]) as usize {
        0 => cs.len().checked_sub(2)?,
        n => at.checked_add(n)?,
    };
    (end >= at.checked_add(14)?).then_some(end)
}

/// Segments of a tile-part header that set coding style, quantization or progression, which a
/// rewrite of the main header cannot keep valid.
pub(crate) const TILE_CODING_SEGMENTS: [u16; 6] = [COD, COC, QCD, QCC, POC, PPT];

/// Where the header of a tile-part (`tile_part`: from its SOT on) ends, the offset of its SOD;
/// `None` if it holds a segment of `refused` (one a rewrite cannot keep valid) or is malformed.
pub(crate) fn tile_part_header_end(tile_part: &[u8], refused: &[u16]) -> Option<usize> {
    let mut at = 12;
    loop {
        match next_item(tile_part, at as u64).ok()? {
            Item::Segment { marker, length, .. } => {
                if refused.contains(&marker) {
                    return None;
                }
                at += usize::try_from(length).ok()?;
            }
            Item::Bare { marker: SOD, .. } => return Some(at),
            _ => return None,
        }
    }
}

/// Reads the marker at `pos` of `buf` and, if it has one, its whole segment.
pub(crate) fn next_item(buf: &[u8], pos: u64) -> Result<Item<'_>, ParseError> {
    let marker = u16_at(buf, pos)?;
    match marker {
        SOT => return Ok(Item::Sot { offset: pos }),
        SOC | SOD | EOC | EPH | 0xFF30..=0xFF3F => {
            return Ok(Item::Bare {
                marker,
                offset: pos,
            })
        }
        0xFF01..=0xFFFE => {}
        _ => return Err(marker_err(pos, marker, "expected a marker")),
    }
    let l = u16_at(buf, pos + 2)?;
    if l < 2 {
        return Err(marker_err(pos, marker, "segment length below 2"));
    }
    let end = pos + 2 + u64::from(l);
    let body = slice_at(buf, pos + 4, end)?;
    Ok(Item::Segment {
        marker,
        offset: pos,
        length: end - pos,
        body,
    })
}

/// Image and tile size (SIZ). Coordinates are on the reference grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Siz {
    pub rsiz: u16,
    pub xsiz: u32,
    pub ysiz: u32,
    pub xosiz: u32,
    pub yosiz: u32,
    pub xtsiz: u32,
    pub ytsiz: u32,
    pub xtosiz: u32,
    pub ytosiz: u32,
    pub components: Vec<ComponentSiz>,
}

/// One component's depth and subsampling (`Ssiz`, `XRsiz`, `YRsiz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSiz {
    pub ssiz: u8,
    pub dx: u8,
    pub dy: u8,
}

impl ComponentSiz {
    pub fn precision(&self) -> u8 {
        (self.ssiz & 0x7F) + 1
    }
    pub fn signed(&self) -> bool {
        self.ssiz & 0x80 != 0
    }
}

impl Siz {
    /// Image width: `Xsiz - XOsiz`.
    pub fn width(&self) -> u32 {
        self.xsiz - self.xosiz
    }
    pub fn height(&self) -> u32 {
        self.ysiz - self.yosiz
    }
    pub fn tiles_x(&self) -> u32 {
        (self.xsiz - self.xtosiz).div_ceil(self.xtsiz)
    }
    pub fn tiles_y(&self) -> u32 {
        (self.ysiz - self.ytosiz).div_ceil(self.ytsiz)
    }
    pub fn num_tiles(&self) -> u64 {
        u64::from(self.tiles_x()) * u64::from(self.tiles_y())
    }
}

pub(crate) fn parse_siz(body: &[u8]) -> Result<Siz, &'static str> {
    const SHORT: &str = "SIZ too short";
    let mut c = Cursor::new(body);
    let rsiz = c.u16().ok_or(SHORT)?;
    let mut v = [0u32; 8];
    for x in &mut v {
        *x = c.u32().ok_or(SHORT)?;
    }
    let [xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz] = v;
    let csiz = c.u16().ok_or(SHORT)?;
    if csiz == 0 || csiz > 16384 {
        return Err("Csiz out of range");
    }
    if c.remaining() != 3 * usize::from(csiz) {
        return Err("Lsiz does not match Csiz");
    }
    let mut components = Vec::with_capacity(usize::from(csiz));
    for _ in 0..csiz {
        let (ssiz, dx, dy) = (
            c.u8().ok_or(SHORT)?,
            c.u8().ok_or(SHORT)?,
            c.u8().ok_or(SHORT)?,
        );
        if dx == 0 || dy == 0 {
            return Err("component subsampling of 0");
        }
        if (ssiz & 0x7F) >= 38 {
            return Err("component precision above 38 bits");
        }
        components.push(ComponentSiz { ssiz, dx, dy });
    }
    if xsiz <= xosiz || ysiz <= yosiz {
        return Err("empty image area");
    }
    if xtsiz == 0 || ytsiz == 0 {
        return Err("tile size of 0");
    }
    if xtosiz > xosiz || ytosiz > yosiz {
        return Err("tile origin right of or below the image origin");
    }
    if u64::from(xtosiz) + u64::from(xtsiz) <= u64::from(xosiz)
        || u64::from(ytosiz) + u64::from(ytsiz) <= u64::from(yosiz)
    {
        return Err("first tile does not overlap the image");
    }
    let siz = Siz {
        rsiz,
        xsiz,
        ysiz,
        xosiz,
        yosiz,
        xtsiz,
        ytsiz,
        xtosiz,
        ytosiz,
        components,
    };
    if siz.num_tiles() > 65535 {
        return Err("more than 65535 tiles");
    }
    Ok(siz)
}

/// Progression orders (`SGcod` byte 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Progression {
    Lrcp,
    Rlcp,
    Rpcl,
    Pcrl,
    Cprl,
}

impl Progression {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Lrcp,
            1 => Self::Rlcp,
            2 => Self::Rpcl,
            3 => Self::Pcrl,
            4 => Self::Cprl,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Progression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lrcp => "LRCP",
            Self::Rlcp => "RLCP",
            Self::Rpcl => "RPCL",
            Self::Pcrl => "PCRL",
            Self::Cprl => "CPRL",
        })
    }
}

/// Coding style default (COD).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cod {
    /// `Scod`: bit 0 = user precincts, bit 1 = SOP markers, bit 2 = EPH markers.
    pub scod: u8,
    pub progression: Progression,
    pub layers: u16,
    /// Multiple component transform (0 none, 1 RCT/ICT).
    pub mct: u8,
    /// NL, the number of decomposition levels; there are NL + 1 resolutions.
    pub levels: u8,
    /// Code-block width and height exponents: the size is `2^(xcb + 2)`.
    pub xcb: u8,
    pub ycb: u8,
    pub cblk_style: u8,
    /// Wavelet: 0 = 9-7 irreversible, 1 = 5-3 reversible.
    pub transform: u8,
    /// `PPx | PPy << 4` per resolution, when `Scod & 1`.
    pub precincts: Vec<u8>,
}

impl Cod {
    pub fn code_block_size(&self) -> (u32, u32) {
        (1 << (self.xcb + 2), 1 << (self.ycb + 2))
    }
}

/// The coding-style fields COD and COC share (`SPcod`/`SPcoc`).
struct Spco {
    levels: u8,
    xcb: u8,
    ycb: u8,
    cblk_style: u8,
    transform: u8,
    precincts: Vec<u8>,
}

fn parse_spco(c: &mut Cursor<'_>, user_precincts: bool) -> Result<Spco, &'static str> {
    const SHORT: &str = "coding style segment too short";
    let levels = c.u8().ok_or(SHORT)?;
    let xcb = c.u8().ok_or(SHORT)?;
    let ycb = c.u8().ok_or(SHORT)?;
    let cblk_style = c.u8().ok_or(SHORT)?;
    let transform = c.u8().ok_or(SHORT)?;
    if levels > 32 {
        return Err("more than 32 decomposition levels");
    }
    if xcb > 8 || ycb > 8 || xcb + ycb > 8 {
        return Err("code-block size out of range");
    }
    let precincts = if user_precincts {
        c.take(usize::from(levels) + 1).ok_or(SHORT)?.to_vec()
    } else {
        Vec::new()
    };
    Ok(Spco {
        levels,
        xcb,
        ycb,
        cblk_style,
        transform,
        precincts,
    })
}

pub(crate) fn parse_cod(body: &[u8]) -> Result<Cod, &'static str> {
    const SHORT: &str = "COD too short";
    let mut c = Cursor::new(body);
    let scod = c.u8().ok_or(SHORT)?;
    let progression =
        Progression::from_u8(c.u8().ok_or(SHORT)?).ok_or("unknown progression order")?;
    let layers = c.u16().ok_or(SHORT)?;
    let mct = c.u8().ok_or(SHORT)?;
    if layers == 0 {
        return Err("zero quality layers");
    }
    let s = parse_spco(&mut c, scod & 1 != 0)?;
    Ok(Cod {
        scod,
        progression,
        layers,
        mct,
        levels: s.levels,
        xcb: s.xcb,
        ycb: s.ycb,
        cblk_style: s.cblk_style,
        transform: s.transform,
        precincts: s.precincts,
    })
}

/// Coding style of one component (COC), overriding COD for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coc {
    pub component: u16,
    pub scoc: u8,
    pub levels: u8,
    pub xcb: u8,
    pub ycb: u8,
    pub cblk_style: u8,
    pub transform: u8,
    pub precincts: Vec<u8>,
}

pub(crate) fn parse_coc(body: &[u8], components: usize) -> Result<Coc, &'static str> {
    const SHORT: &str = "COC too short";
    let mut c = Cursor::new(body);
    let component = if components < 257 {
        u16::from(c.u8().ok_or(SHORT)?)
    } else {
        c.u16().ok_or(SHORT)?
    };
    if usize::from(component) >= components {
        return Err("COC for a component that does not exist");
    }
    let scoc = c.u8().ok_or(SHORT)?;
    let s = parse_spco(&mut c, scoc & 1 != 0)?;
    Ok(Coc {
        component,
        scoc,
        levels: s.levels,
        xcb: s.xcb,
        ycb: s.ycb,
        cblk_style: s.cblk_style,
        transform: s.transform,
        precincts: s.precincts,
    })
}

/// A tile-part lengths segment (TLM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tlm {
    /// `Ztlm`: the order of this segment among the TLM segments.
    pub index: u8,
    /// Size of `Ttlm` in bytes (0, 1 or 2); 0 means tile-parts are one per tile, in tile order.
    pub st: u8,
    /// Size of `Ptlm` in bytes (2 or 4).
    pub sp: u8,
    pub entries: Vec<TlmEntry>,
}

/// One tile-part: its tile (`Ttlm`, absent when `ST == 0`) and length (`Ptlm`, from its SOT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlmEntry {
    pub tile: Option<u16>,
    pub length: u32,
}

pub(crate) fn parse_tlm(body: &[u8]) -> Result<Tlm, &'static str> {
    let mut c = Cursor::new(body);
    let index = c.u8().ok_or("TLM too short")?;
    let stlm = c.u8().ok_or("TLM too short")?;
    let st = (stlm >> 4) & 0x3;
    if st == 3 {
        return Err("TLM with ST = 3");
    }
    let sp = if stlm & 0x40 != 0 { 4 } else { 2 };
    let entry = usize::from(st + sp);
    if !c.remaining().is_multiple_of(entry) {
        return Err("TLM length is not a whole number of entries");
    }
    let mut entries = Vec::with_capacity(c.remaining() / entry);
    while c.remaining() > 0 {
        let tile = match st {
            0 => None,
            1 => c.u8().map(u16::from),
            _ => c.u16(),
        };
        let length = if sp == 4 {
            c.u32()
        } else {
            c.u16().map(u32::from)
        };
        let length = length.ok_or("TLM too short")?;
        if st != 0 && tile.is_none() {
            return Err("TLM too short");
        }
        entries.push(TlmEntry { tile, length });
    }
    Ok(Tlm {
        index,
        st,
        sp,
        entries,
    })
}

/// A comment (COM). `text` is set for `Rcom == 1` (Latin-1 text); binary comments keep only
/// their place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub registration: u16,
    pub text: Option<String>,
    pub segment: SegmentInfo,
}

pub(crate) fn parse_com(body: &[u8], segment: SegmentInfo) -> Result<Comment, &'static str> {
    let mut c = Cursor::new(body);
    let registration = c.u16().ok_or("COM too short")?;
    let text = (registration == 1).then(|| c.rest().iter().map(|&b| char::from(b)).collect());
    Ok(Comment {
        registration,
        text,
        segment,
    })
}
