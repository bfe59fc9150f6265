//! A codestream rewritten so that the decoder stops each code-block above its last bit-planes:
//! the same bytes, but every packet header saying fewer coding passes (the decoder then leaves
//! the rest of each code-block's bytes unread). A lossy decode of what the file holds, for small
//! views: the last bit-plane is some 40 % of a small view's decode (every coefficient is
//! significant by then, so each of its three passes visits all of them), and leaving it out
//! changes a 313×235 view by 47 dB PSNR (`docs/benchmarks.md`).
//!
//! Why a rewrite: OpenJPEG has no way to decode fewer passes than a codestream holds but
//! quality layers, and a master's low resolutions are all in its first layer. Passes are
//! counted per code-block from its most significant bit-plane down: one clean-up pass, then
//! three per plane; a band's plane 0 is its last ([`kept_passes`]).
//!
//! What it reads: one quality layer, default precincts (one per resolution), no code-block
//! style flags, no POC, PPM, PPT, RGN, or coding style and quantization per component or per
//! tile-part; SOP and EPH markers are kept. Tiles are followed each on its own (a tile-part's
//! packets continue its tile's, whatever tile-parts of other tiles lie between), and every tile
//! must be there and whole. Anything else makes it decline ([`None`]) and the caller decodes the
//! codestream as it is. TLM, PLM and PLT segments, whose lengths no longer hold, are left out.

use crate::markers::{self, Cod, Item, Progression, Siz};
use crate::tier2;

/// The codestream `cs` (SOC … EOC) with each code-block's passes in its last `planes`
/// bit-planes left out; `None` where it cannot be rewritten.
pub fn without_last_planes(cs: &[u8], planes: u32) -> Option<Vec<u8>> {
    if !cs.starts_with(&markers::SOC.to_be_bytes()) {
        return None;
    }
    let (segments, first_tile_part) = markers::main_header(cs)?;
    let mut out = Vec::with_capacity(cs.len());
    out.extend_from_slice(&markers::SOC.to_be_bytes());
    let (mut siz, mut cod, mut qcd) = (None, None, None);
    for &(marker, body) in &segments {
        match marker {
            markers::SIZ => siz = Some(markers::parse_siz(body).ok()?),
            markers::COD => cod = Some(markers::parse_cod(body).ok()?),
            markers::QCD => qcd = Some(body),
            markers::COC | markers::QCC | markers::POC | markers::PPM | markers::RGN => {
                return None
            }
            // Packet lengths, which the rewrite changes.
            markers::TLM | markers::PLM => continue,
            _ => {}
        }
        markers::push_segment(&mut out, marker, body)?;
    }
    let image = Image::new(siz?, cod?, qcd?)?;
    // Each tile's layout and the packets it has still to come, from its first tile-part on.
    let mut tiles: Vec<Option<TileInProgress>> = Vec::new();
    tiles.resize_with(image.tiles, || None);
    let mut code_blocks = 0usize;
    let mut at = first_tile_part;
    while cs.get(at..at + 2)? == markers::SOT.to_be_bytes() {
        let end = markers::tile_part_end(cs, at)?;
        let tile_part = cs.get(at..end)?;
        let tile = usize::from(u16::from_be_bytes([*tile_part.get(4)?, *tile_part.get(5)?]));
        let state = tiles.get_mut(tile)?;
        if state.is_none() {
            let layout = image.layout(tile, &mut code_blocks)?;
            let packets = layout.packets().into_iter();
            *state = Some((layout, packets));
        }
        let (layout, packets) = state.as_mut()?;
        rewrite_tile_part(tile_part, layout, packets, planes, &mut out)?;
        at = end;
    }
    let whole =
        |t: &Option<TileInProgress>| t.as_ref().is_some_and(|(_, packets)| packets.len() == 0);
    if cs.get(at..)? != markers::EOC.to_be_bytes() || !tiles.iter().all(whole) {
        return None;
    }
    out.extend_from_slice(&markers::EOC.to_be_bytes());
    Some(out)
}

/// A tile's layout and the packets (resolution, component) it has still to come.
type TileInProgress = (Layout, std::vec::IntoIter<(usize, usize)>);

/// Segments a tile-part header may not hold here: those that set coding style, quantization or
/// progression, and RGN (a region of interest shifts the bit-planes).
const REFUSED_IN_TILE_PARTS: [u16; 7] = {
    let c = markers::TILE_CODING_SEGMENTS;
    [c[0], c[1], c[2], c[3], c[4], c[5], markers::RGN]
};

/// Where a tile-part's header ends (its SOD), if it holds nothing this cannot carry over.
fn tile_part_header(tile_part: &[u8]) -> Option<usize> {
    markers::tile_part_header_end(tile_part, &REFUSED_IN_TILE_PARTS)
}

/// Append `tile_part` to `out` with its packets, the next of its tile's `packets`, rewritten to
/// `planes` fewer planes and its PLT left out.
fn rewrite_tile_part(
    tile_part: &[u8],
    layout: &Layout,
    packets: &mut std::vec::IntoIter<(usize, usize)>,
    planes: u32,
    out: &mut Vec<u8>,
) -> Option<()> {
    let header_end = tile_part_header(tile_part)?;
    let mut rewritten = Vec::with_capacity(tile_part.len());
    rewritten.extend_from_slice(tile_part.get(..12)?);
    let mut p = 12;
    while p < header_end {
        let Item::Segment { marker, length, .. } = markers::next_item(tile_part, p as u64).ok()?
        else {
            return None;
        };
        let length = usize::try_from(length).ok()?;
        if marker != markers::PLT {
            rewritten.extend_from_slice(tile_part.get(p..p + length)?);
        }
        p += length;
    }
    rewritten.extend_from_slice(&markers::SOD.to_be_bytes());
    let mut body = tile_part.get(header_end + 2..)?;
    while !body.is_empty() {
        let (resolution, component) = packets.next()?;
        let used = layout.rewrite_packet(body, resolution, component, planes, &mut rewritten)?;
        body = &body[used..];
    }
    let psot = u32::try_from(rewritten.len()).ok()?;
    rewritten[6..10].copy_from_slice(&psot.to_be_bytes());
    out.extend_from_slice(&rewritten);
    Some(())
}

/// The passes of a code-block with `numbps` bit-planes (from its first coded one) above plane
/// `planes` of its band: one clean-up pass, then three per plane. At least one: a code-block
/// whose planes are all among the last `planes` keeps its first pass (cheap: few coefficients
/// are significant in it), so that its part of the packet header stays as it was.
pub fn kept_passes(numbps: u32, planes: u32) -> u32 {
    match numbps.checked_sub(planes.saturating_add(1)) {
        Some(below_first) => 1 + 3 * below_first,
        None => 1,
    }
}

/// The most components, code-blocks (in all tiles) and tile-component-resolutions of a
/// codestream this rewrites: far beyond a small view's (a few components, a few thousand
/// code-blocks, a few hundred tiles of a few resolutions).
const MAX_COMPONENTS: usize = 16;
const MAX_CODE_BLOCKS: usize = 1 << 16;
const MAX_TILE_RESOLUTIONS: u64 = 1 << 18;

/// What the main header says, for the layout of each tile.
struct Image {
    siz: Siz,
    cod: Cod,
    /// Guard bits and exponent per sub-band (QCD).
    exponents: Vec<(u32, u32)>,
    tiles: usize,
}

impl Image {
    fn new(siz: Siz, cod: Cod, qcd: &[u8]) -> Option<Self> {
        if cod.layers != 1 || cod.cblk_style != 0 || cod.scod & 1 != 0 {
            return None;
        }
        // Bounds on what a hostile header can make this allocate (tag trees, layouts, packet
        // lists).
        if siz.components.len() > MAX_COMPONENTS || siz.xtsiz == 0 || siz.ytsiz == 0 {
            return None;
        }
        let tiles = siz.num_tiles();
        let per_tile = siz.components.len() as u64 * (u64::from(cod.levels) + 1);
        if tiles == 0 || tiles > u64::from(u16::MAX) + 1 || tiles * per_tile > MAX_TILE_RESOLUTIONS
        {
            return None;
        }
        let exponents = exponents(qcd, u32::from(cod.levels))?;
        Some(Self {
            tiles: usize::try_from(tiles).ok()?,
            siz,
            cod,
            exponents,
        })
    }

    /// The layout of tile `tile` (ISO 15444-1 B.3), counting its code-blocks into
    /// `code_blocks`; `None` past [`MAX_CODE_BLOCKS`] in all.
    fn layout(&self, tile: usize, code_blocks: &mut usize) -> Option<Layout> {
        let siz = &self.siz;
        let across = usize::try_from(siz.tiles_x()).ok()?.max(1);
        let (p, q) = (
            u64::try_from(tile % across).ok()?,
            u64::try_from(tile / across).ok()?,
        );
        let start = |origin: u32, size: u32, i: u64, image_origin: u32| {
            (u64::from(origin) + i * u64::from(size)).max(u64::from(image_origin))
        };
        let stop = |origin: u32, size: u32, i: u64, image_end: u32| {
            (u64::from(origin) + (i + 1) * u64::from(size)).min(u64::from(image_end))
        };
        let bounds = (
            start(siz.xtosiz, siz.xtsiz, p, siz.xosiz),
            start(siz.ytosiz, siz.ytsiz, q, siz.yosiz),
            stop(siz.xtosiz, siz.xtsiz, p, siz.xsiz),
            stop(siz.ytosiz, siz.ytsiz, q, siz.ysiz),
        );
        if bounds.0 >= bounds.2 || bounds.1 >= bounds.3 {
            return None;
        }
        Layout::new(siz, &self.cod, &self.exponents, bounds, code_blocks)
    }
}

/// A tile's geometry as the packet headers need it.
struct Layout {
    progression: Progression,
    sop: bool,
    eph: bool,
    /// Per component, per resolution: the sub-bands' code-block grids and magnitude bit-planes
    /// (`None`: the resolution is empty, no packet).
    resolutions: Vec<Vec<Option<Vec<BandShape>>>>,
}

struct BandShape {
    grid: (usize, usize),
    /// `Mb`: guard bits + exponent − 1.
    magnitude_planes: u32,
}

impl Layout {
    /// The layout of the tile with `bounds` (x0, y0, x1, y1 on the reference grid).
    fn new(
        siz: &Siz,
        cod: &Cod,
        exponents: &[(u32, u32)],
        (x0, y0, x1, y1): (u64, u64, u64, u64),
        code_blocks: &mut usize,
    ) -> Option<Self> {
        let levels = u32::from(cod.levels);
        let mut resolutions = Vec::new();
        for comp in &siz.components {
            let (dx, dy) = (u64::from(comp.dx).max(1), u64::from(comp.dy).max(1));
            let tc = (
                i64::try_from(x0.div_ceil(dx)).ok()?,
                i64::try_from(y0.div_ceil(dy)).ok()?,
                i64::try_from(x1.div_ceil(dx)).ok()?,
                i64::try_from(y1.div_ceil(dy)).ok()?,
            );
            let mut per_resolution = Vec::new();
            for r in 0..=levels {
                let level = levels - r;
                let res = (
                    ceil_pow2(tc.0, level),
                    ceil_pow2(tc.1, level),
                    ceil_pow2(tc.2, level),
                    ceil_pow2(tc.3, level),
                );
                // One precinct per resolution (default precinct size 2^15).
                if res.2 > 1 << 15 || res.3 > 1 << 15 {
                    return None;
                }
                if res.0 == res.2 || res.1 == res.3 {
                    per_resolution.push(None);
                    continue;
                }
                let bands = band_shapes(tc, r, levels, cod, exponents)?;
                *code_blocks = bands.iter().try_fold(*code_blocks, |n, b| {
                    n.checked_add(b.grid.0.checked_mul(b.grid.1)?)
                })?;
                if *code_blocks > MAX_CODE_BLOCKS {
                    return None;
                }
                per_resolution.push(Some(bands));
            }
            resolutions.push(per_resolution);
        }
        Some(Self {
            progression: cod.progression,
            sop: cod.scod & 2 != 0,
            eph: cod.scod & 4 != 0,
            resolutions,
        })
    }

    /// The packets in codestream order, as (resolution, component).
    fn packets(&self) -> Vec<(usize, usize)> {
        let components = self.resolutions.len();
        let count = self.resolutions.first().map_or(0, Vec::len);
        let exists = |r: usize, c: usize| self.resolutions[c][r].is_some();
        let mut order = Vec::new();
        match self.progression {
            Progression::Lrcp | Progression::Rlcp | Progression::Rpcl => {
                for r in 0..count {
                    order.extend((0..components).filter(|&c| exists(r, c)).map(|c| (r, c)));
                }
            }
            Progression::Pcrl | Progression::Cprl => {
                for c in 0..components {
                    order.extend((0..count).filter(|&r| exists(r, c)).map(|r| (r, c)));
                }
            }
        }
        order
    }

    /// Copy the packet at the start of `data` into `out` with fewer passes; the bytes it took.
    fn rewrite_packet(
        &self,
        data: &[u8],
        r: usize,
        c: usize,
        planes: u32,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let shapes = self.resolutions.get(c)?.get(r)?.as_ref()?;
        let mut at = 0;
        if self.sop && data.starts_with(&markers::SOP.to_be_bytes()) {
            out.extend_from_slice(data.get(..6)?);
            at = 6;
        }
        let grids: Vec<_> = shapes.iter().map(|s| s.grid).collect();
        let (mut bands, header_len) = tier2::read_header(data.get(at..)?, &grids)?;
        at += header_len;
        let mut eph = &[][..];
        if self.eph {
            eph = data.get(at..at + 2)?;
            if eph != markers::EPH.to_be_bytes() {
                return None;
            }
            at += 2;
        }
        let body = bands
            .iter()
            .flat_map(|b| &b.blocks)
            .try_fold(0usize, |sum, c| sum.checked_add(c.length as usize))?;
        for (band, shape) in bands.iter_mut().zip(shapes) {
            for block in band.blocks.iter_mut().filter(|b| b.included) {
                let numbps = shape.magnitude_planes.checked_sub(block.zero_planes)?;
                block.passes = block.passes.min(kept_passes(numbps, planes));
            }
        }
        out.extend_from_slice(&tier2::write_header(&bands));
        out.extend_from_slice(eph);
        let end = at.checked_add(body)?;
        out.extend_from_slice(data.get(at..end)?);
        Some(end)
    }
}

/// The non-empty sub-bands of resolution `r` of a tile-component with bounds `tc` (x0, y0,
/// x1, y1): their code-block grids (one precinct) and magnitude bit-planes (ISO 15444-1 B.5,
/// B.7, E.1; as OpenJPEG's `opj_tcd_init_tile`).
fn band_shapes(
    tc: (i64, i64, i64, i64),
    r: u32,
    levels: u32,
    cod: &Cod,
    exponents: &[(u32, u32)],
) -> Option<Vec<BandShape>> {
    let (cbw, cbh) = (u32::from(cod.xcb) + 2, u32::from(cod.ycb) + 2);
    let orientations: &[(i64, i64)] = if r == 0 {
        &[(0, 0)]
    } else {
        &[(1, 0), (0, 1), (1, 1)]
    };
    let nb = if r == 0 { levels } else { levels - r + 1 };
    let shift = |v: i64, ob: i64| {
        if nb == 0 {
            v
        } else {
            ceil_pow2(v - (ob << (nb - 1)), nb)
        }
    };
    let mut bands = Vec::new();
    for (o, &(xob, yob)) in orientations.iter().enumerate() {
        let b = (
            shift(tc.0, xob),
            shift(tc.1, yob),
            shift(tc.2, xob),
            shift(tc.3, yob),
        );
        if b.0 >= b.2 || b.1 >= b.3 {
            continue; // an empty band is not in the packet header
        }
        let grid = (
            usize::try_from(ceil_pow2(b.2, cbw) - (b.0 >> cbw)).ok()?,
            usize::try_from(ceil_pow2(b.3, cbh) - (b.1 >> cbh)).ok()?,
        );
        // QCD lists LL, then HL, LH, HH of each resolution from the lowest.
        let band_index = if r == 0 {
            0
        } else {
            1 + 3 * (r - 1) as usize + o
        };
        let (guard, exponent) = *exponents.get(band_index)?;
        bands.push(BandShape {
            grid,
            magnitude_planes: (guard + exponent).checked_sub(1)?,
        });
    }
    Some(bands)
}

/// ⌈v / 2^n⌉ for any sign, as OpenJPEG's `opj_int64_ceildivpow2`.
fn ceil_pow2(v: i64, n: u32) -> i64 {
    (v + (1i64 << n) - 1) >> n
}

/// Per sub-band (LL, then HL, LH, HH of each resolution), the guard bits and exponent from QCD.
fn exponents(qcd: &[u8], levels: u32) -> Option<Vec<(u32, u32)>> {
    let (&sqcd, entries) = qcd.split_first()?;
    let guard = u32::from(sqcd >> 5);
    let bands = 1 + 3 * levels as usize;
    let list = match sqcd & 0x1F {
        0 => entries
            .iter()
            .take(bands)
            .map(|&e| u32::from(e >> 3))
            .collect::<Vec<_>>(),
        1 => {
            let e0 = u32::from(u16::from_be_bytes([*entries.first()?, *entries.get(1)?]) >> 11);
            (0..bands)
                .map(|b| {
                    if b == 0 {
                        e0
                    } else {
                        e0.saturating_sub(((b - 1) / 3) as u32)
                    }
                })
                .collect()
        }
        2 => entries
            .chunks_exact(2)
            .take(bands)
            .map(|e| u32::from(u16::from_be_bytes([e[0], e[1]]) >> 11))
            .collect(),
        _ => return None,
    };
    (list.len() == bands).then(|| list.into_iter().map(|e| (guard, e)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passes_kept_stop_above_the_last_planes() {
        // 5 planes: clean-up at plane 4, then three passes at each of 3, 2, 1, 0 (13 in all).
        assert_eq!(kept_passes(5, 0), 13);
        assert_eq!(kept_passes(5, 1), 10);
        assert_eq!(kept_passes(5, 4), 1);
        assert_eq!(kept_passes(5, 9), 1);
    }
}
