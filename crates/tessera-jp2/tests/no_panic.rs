//! No input makes the crate panic: arbitrary bytes, truncated files and mutated files go through
//! every entry point (see `common::exercise`). A cargo-fuzz target would call the same thing.

mod common;

use common::{exercise, Spec};
use proptest::prelude::*;

fn valid_files() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for jp2 in [false, true] {
        for tlm in [None, Some((1, false)), Some((2, true))] {
            v.push(
                Spec {
                    jp2,
                    tlm,
                    tile: (100, 100),
                    width: 200,
                    height: 150,
                    levels: 2,
                    parts_per_tile: 3,
                    last_psot_zero: tlm.is_none(),
                    ..Spec::default()
                }
                .file(),
            );
        }
    }
    // TLM with ST = 0 means one tile-part per tile.
    v.push(
        Spec {
            parts_per_tile: 1,
            tlm: Some((0, false)),
            ..Spec::default()
        }
        .file(),
    );
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_start(
        which in 0usize..2,
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut f = if which == 0 {
            vec![0xFF, 0x4F, 0xFF, 0x51]
        } else {
            vec![0, 0, 0, 12, b'j', b'P', b' ', b' ', 0x0D, 0x0A, 0x87, 0x0A]
        };
        f.extend_from_slice(&bytes);
        exercise(&f);
    }

    #[test]
    fn truncated_files(which in 0usize..9, cut in 0.0f64..1.0) {
        let files = valid_files();
        let f = &files[which % files.len()];
        exercise(&f[..(f.len() as f64 * cut) as usize]);
    }

    #[test]
    fn mutated_files(
        which in 0usize..9,
        edits in proptest::collection::vec((0.0f64..1.0, any::<u8>(), 0u8..4), 1..8),
    ) {
        let files = valid_files();
        let mut f = files[which % files.len()].clone();
        for (at, byte, kind) in edits {
            // Bias edits towards the headers, where the parsing happens.
            let limit = if kind == 3 { f.len() } else { f.len().min(400) };
            let i = ((limit as f64 * at) as usize).min(f.len().saturating_sub(1));
            match kind {
                0 | 3 => if let Some(b) = f.get_mut(i) { *b = byte },
                1 => f.insert(i, byte),
                _ => { if i < f.len() { f.remove(i); } }
            }
        }
        exercise(&f);
    }
}

/// The seeds are valid, so the properties above start from files that reach the assembler and
/// the interleaver.
#[test]
fn valid_files_go_all_the_way() {
    for f in valid_files() {
        let h = tessera_jp2::Header::parse(&f).unwrap();
        let idx = match tessera_jp2::Jp2Index::from_header(&h) {
            Ok(i) => i,
            Err(_) => {
                let mut w = tessera_jp2::SotWalker::new(&h, f.len() as u64);
                w.feed(h.first_sot, &f[h.first_sot as usize..]).unwrap();
                tessera_jp2::Jp2Index::from_tile_parts(&h, w.finish().unwrap()).unwrap()
            }
        };
        if idx.tile_parts.len() > 6 {
            idx.plan(1, 0).unwrap();
            let main = &f[idx.main_header.start as usize..idx.main_header.end as usize];
            tessera_jp2::interleave(&h, &idx, main, f.len() as u64).unwrap();
        }
        exercise(&f);
    }
}
