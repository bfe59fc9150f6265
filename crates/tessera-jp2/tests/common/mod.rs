//! Synthetic codestreams: structurally valid headers and tile-parts with filler for packet data.
//! Good for the parser, index, walker, plan and assembler (which never look inside packets), not
//! for a decoder.
#![allow(dead_code)]

/// How to build a synthetic file.
#[derive(Clone, Debug)]
pub struct Spec {
    pub width: u32,
    pub height: u32,
    pub x0: u32,
    pub y0: u32,
    pub tile: (u32, u32),
    pub components: u16,
    pub levels: u8,
    /// 0 LRCP, 1 RLCP, 2 RPCL, 3 PCRL, 4 CPRL.
    pub progression: u8,
    /// Tile-parts per tile; `levels + 1` means "split by resolution".
    pub parts_per_tile: u8,
    /// `Some((st, sp_is_32_bit))` writes a TLM segment.
    pub tlm: Option<(u8, bool)>,
    /// Wrap in JP2 boxes; `jp2c_to_end` writes `LBox = 0` for the codestream box.
    pub jp2: bool,
    pub jp2c_to_end: bool,
    /// The last tile-part says `Psot = 0`.
    pub last_psot_zero: bool,
    /// Extra main-header segments, as (marker, body).
    pub extra: Vec<(u16, Vec<u8>)>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            width: 300,
            height: 200,
            x0: 0,
            y0: 0,
            tile: (128, 128),
            components: 3,
            levels: 3,
            progression: 2,
            parts_per_tile: 4,
            tlm: Some((2, true)),
            jp2: true,
            jp2c_to_end: false,
            last_psot_zero: false,
            extra: Vec::new(),
        }
    }
}

fn segment(out: &mut Vec<u8>, marker: u16, body: &[u8]) {
    out.extend_from_slice(&marker.to_be_bytes());
    out.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(body);
}

impl Spec {
    pub fn tiles(&self) -> u32 {
        let tx = (self.x0 + self.width).div_ceil(self.tile.0);
        let ty = (self.y0 + self.height).div_ceil(self.tile.1);
        tx * ty
    }

    /// Payload length of tile `t`, part `p`: grows with `p`, like resolutions do.
    pub fn payload(&self, t: u32, p: u8) -> usize {
        7 + (t as usize % 5) * 3 + 20 * (1 << p.min(10))
    }

    /// The codestream: SOC SIZ COD QCD [extras] [TLM] COM, the tile-parts in tile order, EOC.
    pub fn codestream(&self) -> Vec<u8> {
        let mut cs = vec![0xFF, 0x4F];
        let mut siz = Vec::new();
        siz.extend_from_slice(&0u16.to_be_bytes());
        for v in [
            self.x0 + self.width,
            self.y0 + self.height,
            self.x0,
            self.y0,
            self.tile.0,
            self.tile.1,
            0,
            0,
        ] {
            siz.extend_from_slice(&v.to_be_bytes());
        }
        siz.extend_from_slice(&self.components.to_be_bytes());
        for _ in 0..self.components {
            siz.extend_from_slice(&[7, 1, 1]);
        }
        segment(&mut cs, 0xFF51, &siz);
        segment(
            &mut cs,
            0xFF52,
            &[0, self.progression, 0, 1, 1, self.levels, 4, 4, 0, 1],
        );
        let mut qcd = vec![0x40];
        qcd.extend(std::iter::repeat_n(0x48, 3 * usize::from(self.levels) + 1));
        segment(&mut cs, 0xFF5C, &qcd);
        for (m, body) in &self.extra {
            segment(&mut cs, *m, body);
        }
        let tiles = self.tiles();
        let mut lengths = Vec::new();
        for t in 0..tiles {
            for p in 0..self.parts_per_tile {
                lengths.push((t, p, 14 + self.payload(t, p)));
            }
        }
        if let Some((st, sp32)) = self.tlm {
            let mut body = vec![0, (st << 4) | if sp32 { 0x40 } else { 0 }];
            for &(t, _, len) in &lengths {
                match st {
                    0 => {}
                    1 => body.push(t as u8),
                    _ => body.extend_from_slice(&(t as u16).to_be_bytes()),
                }
                if sp32 {
                    body.extend_from_slice(&(len as u32).to_be_bytes());
                } else {
                    body.extend_from_slice(&(len as u16).to_be_bytes());
                }
            }
            segment(&mut cs, 0xFF55, &body);
        }
        segment(&mut cs, 0xFF64, b"\x00\x01synthetic");
        let n = lengths.len();
        for (i, &(t, p, len)) in lengths.iter().enumerate() {
            let psot = if self.last_psot_zero && i == n - 1 {
                0
            } else {
                len as u32
            };
            cs.extend_from_slice(&[0xFF, 0x90, 0, 10]);
            cs.extend_from_slice(&(t as u16).to_be_bytes());
            cs.extend_from_slice(&psot.to_be_bytes());
            cs.extend_from_slice(&[p, self.parts_per_tile, 0xFF, 0x93]);
            cs.extend((0..len - 14).map(|k| (k as u8 & 0x7F) ^ (t as u8) ^ p));
        }
        cs.extend_from_slice(&[0xFF, 0xD9]);
        cs
    }

    /// The file: the codestream, wrapped in JP2 boxes if asked.
    pub fn file(&self) -> Vec<u8> {
        let cs = self.codestream();
        if !self.jp2 {
            return cs;
        }
        let mut f = vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A];
        f.extend_from_slice(&[0, 0, 0, 20]);
        f.extend_from_slice(b"ftypjp2 \0\0\0\0jp2 ");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.components.to_be_bytes());
        ihdr.extend_from_slice(&[7, 7, 0, 0]);
        let colr = [1u8, 0, 0, 0, 0, 0, 16];
        let jp2h_len = 8 + (8 + ihdr.len()) + (8 + colr.len());
        f.extend_from_slice(&(jp2h_len as u32).to_be_bytes());
        f.extend_from_slice(b"jp2h");
        f.extend_from_slice(&((8 + ihdr.len()) as u32).to_be_bytes());
        f.extend_from_slice(b"ihdr");
        f.extend_from_slice(&ihdr);
        f.extend_from_slice(&((8 + colr.len()) as u32).to_be_bytes());
        f.extend_from_slice(b"colr");
        f.extend_from_slice(&colr);
        // An XML box before the codestream, skipped by length.
        let xml = b"<x>filler</x>";
        f.extend_from_slice(&((8 + xml.len()) as u32).to_be_bytes());
        f.extend_from_slice(b"xml ");
        f.extend_from_slice(xml);
        if self.jp2c_to_end {
            f.extend_from_slice(&[0, 0, 0, 0]);
            f.extend_from_slice(b"jp2c");
        } else {
            // XLBox form, to exercise it.
            f.extend_from_slice(&[0, 0, 0, 1]);
            f.extend_from_slice(b"jp2c");
            f.extend_from_slice(&(16 + cs.len() as u64).to_be_bytes());
        }
        f.extend_from_slice(&cs);
        f
    }
}

use std::collections::BTreeMap;
use tessera_jp2::{assemble, Header, Jp2Index, SotWalker};

/// Runs every entry point on `bytes` as a caller would; must never panic.
pub fn exercise(bytes: &[u8]) {
    let Ok(header) = Header::parse(bytes) else {
        return;
    };
    let _ = serde_json::to_string(&header).unwrap();
    let mut indexes = Vec::new();
    if let Ok(i) = Jp2Index::from_header(&header) {
        indexes.push(i);
    }
    let mut w = SotWalker::new(&header, bytes.len() as u64);
    for _ in 0..10_000 {
        let Some(r) = w.next_read() else { break };
        let Some(b) = bytes.get(r.start as usize..r.end as usize) else {
            break;
        };
        if w.feed(r.start, b).is_err() {
            break;
        }
    }
    if let Ok(parts) = w.finish() {
        if let Ok(i) = Jp2Index::from_tile_parts(&header, parts) {
            indexes.push(i);
        }
    }
    for idx in indexes {
        check_interleave(bytes, &header, &idx);
        let _ = idx.reduce_for(100, 100);
        let _ = idx.size_at(idx.levels);
        for reduce in [0, 1, idx.levels, idx.levels.saturating_add(1)] {
            for gap in [0, 1000] {
                let Ok(plan) = idx.plan(reduce, gap) else {
                    continue;
                };
                let fetched: BTreeMap<u64, &[u8]> = plan
                    .ranges
                    .iter()
                    .filter_map(|r| Some((r.start, bytes.get(r.start as usize..r.end as usize)?)))
                    .collect();
                if let Ok(cs) = assemble(&idx, &plan, &fetched) {
                    // What we assemble must parse again.
                    Header::parse(&cs).expect("assembled codestream does not parse");
                    for planes in [0, 1] {
                        let _ = tessera_jp2::without_last_planes(&cs, planes);
                    }
                }
            }
        }
    }
}

/// What [`tessera_jp2::interleave`] writes from `bytes` copies only bytes it has, parses again,
/// and its TLM lists the same tile-parts, ordered by part and then tile.
fn check_interleave(bytes: &[u8], header: &Header, idx: &Jp2Index) {
    let main = idx.main_header.clone();
    let Some(main) = bytes.get(main.start as usize..main.end as usize) else {
        return;
    };
    let Ok(rewrite) = tessera_jp2::interleave(header, idx, main, bytes.len() as u64) else {
        return;
    };
    let out = rewrite
        .apply(bytes)
        .expect("copies only bytes of the input");
    let again = Header::parse(&out).expect("an interleaved file parses again");
    let again = Jp2Index::from_header(&again).expect("and indexes from its TLM");
    let listed = |i: &Jp2Index| -> Vec<_> {
        i.tile_parts
            .iter()
            .map(|tp| (tp.part, tp.tile, tp.length))
            .collect()
    };
    let mut want = listed(idx);
    want.sort_unstable();
    assert_eq!(listed(&again), want);
}
