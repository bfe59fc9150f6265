//! Parser, index, walker, plan and assembler on synthetic files, whose every byte we know.

mod common;

use std::collections::BTreeMap;

use common::Spec;
use tessera_jp2::{assemble, Header, Jp2Error, Jp2Index, ParseError, SotWalker, TilePart};

fn walk_all(file: &[u8], h: &Header) -> Result<Vec<TilePart>, Jp2Error> {
    let mut w = SotWalker::new(h, file.len() as u64);
    while let Some(r) = w.next_read() {
        w.feed(r.start, &file[r.start as usize..r.end as usize])?;
    }
    w.finish()
}

fn fetch_plan(file: &[u8], ranges: &[std::ops::Range<u64>]) -> BTreeMap<u64, Vec<u8>> {
    ranges
        .iter()
        .map(|r| (r.start, file[r.start as usize..r.end as usize].to_vec()))
        .collect()
}

#[test]
fn parses_every_variant_and_tlm_matches_the_walk() {
    for jp2 in [false, true] {
        for jp2c_to_end in [false, true] {
            for tlm in [
                Some((1, false)),
                Some((2, false)),
                Some((1, true)),
                Some((2, true)),
            ] {
                let spec = Spec {
                    jp2,
                    jp2c_to_end,
                    tlm,
                    ..Spec::default()
                };
                let f = spec.file();
                let h = Header::parse(&f).unwrap();
                assert_eq!((h.siz.width(), h.siz.height()), (300, 200));
                assert_eq!(h.siz.num_tiles(), 6);
                assert_eq!(h.cod.levels, 3);
                assert_eq!(h.siz.components.len(), 3);
                assert_eq!(h.comments[0].text.as_deref(), Some("synthetic"));
                let (st, sp32) = tlm.unwrap();
                assert_eq!((h.tlm[0].st, h.tlm[0].sp), (st, if sp32 { 4 } else { 2 }));
                if jp2 {
                    let b = h.jp2.as_ref().unwrap();
                    assert_eq!(b.brand.as_deref(), Some("jp2 "));
                    assert_eq!(b.ihdr.as_ref().unwrap().width, 300);
                    assert_eq!(b.colr.as_ref().unwrap().enumerated, Some(16));
                    let end = (!jp2c_to_end).then_some(f.len() as u64);
                    assert_eq!(h.codestream_end, end);
                } else {
                    assert_eq!((h.codestream_offset, h.codestream_end), (0, None));
                }
                let idx = Jp2Index::from_header(&h).unwrap();
                assert_eq!(idx.tile_parts, walk_all(&f, &h).unwrap());
                assert_eq!(idx.tile_parts.len(), 6 * 4);
                let tp = idx.tile_parts[5];
                assert_eq!((tp.tile, tp.part, tp.parts), (1, 1, 4));
            }
        }
    }
}

#[test]
fn tlm_without_tile_indices_means_one_part_per_tile() {
    let spec = Spec {
        parts_per_tile: 1,
        tlm: Some((0, false)),
        ..Spec::default()
    };
    let f = spec.file();
    let h = Header::parse(&f).unwrap();
    let idx = Jp2Index::from_header(&h).unwrap();
    assert_eq!(idx.tile_parts, walk_all(&f, &h).unwrap());
    assert_eq!(
        idx.tile_parts.iter().map(|t| t.tile).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
}

#[test]
fn need_more_always_makes_progress_and_stays_inside_the_header() {
    for jp2 in [false, true] {
        let f = Spec {
            jp2,
            ..Spec::default()
        }
        .file();
        let full = Header::parse(&f).unwrap();
        for k in 0..f.len().min(full.first_sot as usize + 64) {
            match Header::parse(&f[..k]) {
                Ok(h) => {
                    assert_eq!(h, full);
                    assert!(k >= full.first_sot as usize + 2);
                }
                Err(ParseError::NeedMore { total_needed }) => {
                    assert!(total_needed as usize > k, "k = {k}");
                    assert!(
                        total_needed <= full.first_sot + 2,
                        "k = {k}: {total_needed}"
                    );
                }
                Err(e) => panic!("prefix of {k} bytes: {e}"),
            }
        }
    }
}

#[test]
fn recognises_what_is_not_jp2() {
    assert_eq!(
        Header::parse(b""),
        Err(ParseError::NeedMore { total_needed: 12 })
    );
    assert_eq!(
        Header::parse(&[0xFF]),
        Err(ParseError::NeedMore { total_needed: 4 })
    );
    assert_eq!(
        Header::parse(&[0, 0, 0]),
        Err(ParseError::NeedMore { total_needed: 12 })
    );
    assert_eq!(
        Header::parse(b"GIF89a......"),
        Err(ParseError::Invalid(Jp2Error::NotJp2))
    );
    // A JP2 whose codestream box is shorter than its main header.
    let mut f = Spec::default().file();
    let at = f.windows(4).position(|w| w == b"jp2c").unwrap() + 4;
    f[at..at + 8].copy_from_slice(&(16u64 + 40).to_be_bytes());
    assert!(matches!(
        Header::parse(&f),
        Err(ParseError::Invalid(Jp2Error::Marker { .. }))
    ));
}

#[test]
fn psot_zero_runs_to_the_end_of_the_codestream() {
    for jp2c_to_end in [false, true] {
        let spec = Spec {
            tlm: None,
            last_psot_zero: true,
            jp2c_to_end,
            ..Spec::default()
        };
        let f = spec.file();
        let h = Header::parse(&f).unwrap();
        assert_eq!(Jp2Index::from_header(&h), Err(Jp2Error::NoTlm));
        let parts = walk_all(&f, &h).unwrap();
        let last = *parts.last().unwrap();
        assert_eq!(last.length as usize, 14 + spec.payload(5, 3));
        assert_eq!(last.offset + last.length + 2, f.len() as u64);
        let idx = Jp2Index::from_tile_parts(&h, parts).unwrap();
        let plan = idx.plan(0, 0).unwrap();
        let cs = assemble(&idx, &plan, &fetch_plan(&f, &plan.ranges)).unwrap();
        let h2 = Header::parse(&cs).unwrap();
        let again = walk_all(&cs, &h2).unwrap();
        // Psot is written out, the SOTs say nothing about the number of tile-parts.
        assert_eq!(again.last().unwrap().length, last.length);
        assert!(again.iter().all(|t| t.parts == 0));
    }
}

#[test]
fn plans_keep_the_low_resolution_tile_parts() {
    let spec = Spec::default();
    let f = spec.file();
    let idx = Jp2Index::from_header(&Header::parse(&f).unwrap()).unwrap();
    let mut last_bytes = u64::MAX;
    for reduce in 0..=3u8 {
        let plan = idx.plan(reduce, 0).unwrap();
        assert_eq!(plan.tile_parts.len(), 6 * usize::from(4 - reduce));
        assert!(plan.tile_parts.iter().all(|t| t.part <= 3 - reduce));
        assert!(plan.bytes() < last_bytes);
        last_bytes = plan.bytes();
        // Every kept tile-part and the main header are inside exactly one range.
        for r in std::iter::once(plan.main_header.clone())
            .chain(plan.tile_parts.iter().map(|t| t.range()))
        {
            assert_eq!(
                plan.ranges
                    .iter()
                    .filter(|x| x.start <= r.start && r.end <= x.end)
                    .count(),
                1
            );
        }
        // Tiles are contiguous, so at reduce 0 it is one range; otherwise one per tile.
        assert_eq!(plan.ranges.len(), if reduce == 0 { 1 } else { 6 });
        // A large enough gap merges everything.
        assert_eq!(idx.plan(reduce, 1 << 20).unwrap().ranges.len(), 1);
    }
}

#[test]
fn assembled_codestream_is_clean() {
    let spec = Spec::default();
    let f = spec.file();
    let h = Header::parse(&f).unwrap();
    let idx = Jp2Index::from_header(&h).unwrap();
    let plan = idx.plan(2, 0).unwrap();
    let cs = assemble(&idx, &plan, &fetch_plan(&f, &plan.ranges)).unwrap();
    assert_eq!(&cs[cs.len() - 2..], &[0xFF, 0xD9]);
    let h2 = Header::parse(&cs).unwrap();
    assert!(h2.tlm.is_empty());
    assert_eq!(
        (h2.siz.clone(), h2.cod.clone()),
        (h.siz.clone(), h.cod.clone())
    );
    assert_eq!(h2.comments.len(), 1);
    let parts = walk_all(&cs, &h2).unwrap();
    assert_eq!(parts.len(), plan.tile_parts.len());
    for (new, old) in parts.iter().zip(&plan.tile_parts) {
        assert_eq!(
            (new.tile, new.part, new.parts, new.length),
            (old.tile, old.part, 0, old.length)
        );
        let a = &cs[new.offset as usize + 12..(new.offset + new.length) as usize];
        let b = &f[old.offset as usize + 12..(old.offset + old.length) as usize];
        assert_eq!(a, b);
    }
    // One big buffer holding everything works as well as the exact ranges.
    let whole: BTreeMap<u64, &[u8]> = [(0, &f[..])].into();
    assert_eq!(assemble(&idx, &plan, &whole).unwrap(), cs);
}

#[test]
fn assemble_refuses_missing_or_changed_bytes() {
    let f = Spec::default().file();
    let idx = Jp2Index::from_header(&Header::parse(&f).unwrap()).unwrap();
    let plan = idx.plan(1, 0).unwrap();
    let mut fetched = fetch_plan(&f, &plan.ranges);
    let last = *fetched.keys().last().unwrap();
    fetched.remove(&last);
    assert!(matches!(
        assemble(&idx, &plan, &fetched),
        Err(Jp2Error::MissingBytes { .. })
    ));

    let mut fetched = fetch_plan(&f, &plan.ranges);
    let tp = plan.tile_parts[3];
    let (&start, buf) = fetched.range_mut(..=tp.offset).next_back().unwrap();
    buf[(tp.offset - start) as usize + 5] ^= 1; // Isot
    assert!(matches!(
        assemble(&idx, &plan, &fetched),
        Err(Jp2Error::Sot { .. })
    ));
}

#[test]
fn layouts_that_cannot_be_read_partially() {
    let reason = |spec: Spec| {
        let f = spec.file();
        let h = Header::parse(&f).unwrap();
        let idx = Jp2Index::from_tile_parts(&h, walk_all(&f, &h).unwrap()).unwrap();
        idx.plan(1, 0).unwrap_err().reason
    };
    assert!(reason(Spec {
        progression: 0,
        ..Spec::default()
    })
    .contains("LRCP progression"));
    assert!(reason(Spec {
        progression: 3,
        ..Spec::default()
    })
    .contains("PCRL progression"));
    assert!(reason(Spec {
        parts_per_tile: 1,
        ..Spec::default()
    })
    .contains("not split by resolution"));
    assert!(reason(Spec {
        parts_per_tile: 5,
        ..Spec::default()
    })
    .contains("not split by resolution"));
    let poc = (0xFF5F, vec![0, 0, 0, 0, 1, 3, 0]);
    assert!(reason(Spec {
        extra: vec![poc],
        ..Spec::default()
    })
    .contains("POC"));
    let coc = (0xFF53, vec![1, 0, 2, 4, 4, 0, 1]);
    assert!(reason(Spec {
        extra: vec![coc],
        ..Spec::default()
    })
    .contains("decomposition levels"));
    // RLCP is as good as RPCL.
    let f = Spec {
        progression: 1,
        ..Spec::default()
    }
    .file();
    let idx = Jp2Index::from_header(&Header::parse(&f).unwrap()).unwrap();
    assert!(idx.plan(1, 0).is_ok());
    assert!(idx.plan(4, 0).unwrap_err().reason.contains("exceeds"));
    // A tile missing its last tile-part.
    let mut broken = idx.clone();
    broken.tile_parts.remove(7);
    assert!(broken
        .plan(1, 0)
        .unwrap_err()
        .reason
        .contains("tile 1 has 3 tile-parts"));
}

#[test]
fn tlm_that_does_not_add_up_is_rejected() {
    let mut f = Spec {
        tlm: Some((2, true)),
        ..Spec::default()
    }
    .file();
    let at = f.windows(2).position(|w| w == [0xFF, 0x55]).unwrap();
    // First entry: Ttlm (2 bytes) then Ptlm (4 bytes), after marker, Ltlm, Ztlm, Stlm.
    f[at + 6 + 2 + 3] ^= 0x10;
    let h = Header::parse(&f).unwrap();
    assert!(matches!(Jp2Index::from_header(&h), Err(Jp2Error::Tlm(_))));
}

#[test]
fn walker_checks_its_input() {
    let f = Spec {
        tlm: None,
        ..Spec::default()
    }
    .file();
    let h = Header::parse(&f).unwrap();
    let mut w = SotWalker::new(&h, f.len() as u64);
    let r = w.next_read().unwrap();
    assert_eq!(r, h.first_sot..h.first_sot + 12);
    assert!(matches!(
        w.feed(r.start + 1, &f[r.start as usize + 1..]),
        Err(Jp2Error::ShortRead { .. })
    ));
    assert!(matches!(
        w.feed(r.start, &f[r.start as usize..r.end as usize - 1]),
        Err(Jp2Error::ShortRead { .. })
    ));
    // Garbage where a SOT should be.
    assert!(matches!(
        w.clone().feed(r.start, &[0u8; 12]),
        Err(Jp2Error::Sot { .. })
    ));
    // A buffer holding several tile-parts consumes them all.
    let n = w
        .feed(r.start, &f[r.start as usize..r.start as usize + 2000])
        .unwrap();
    assert!(n > 1);
    assert_eq!(w.tile_parts().len(), n);
    assert!(!w.is_done());
    // A file cut short in the middle of the tile-parts.
    let cut = &f[..f.len() - 300];
    let mut w = SotWalker::new(&h, cut.len() as u64);
    let mut result = Ok(0);
    while let Some(r) = w.next_read() {
        result = w.feed(r.start, &cut[r.start as usize..r.end as usize]);
        if result.is_err() {
            break;
        }
    }
    assert!(result.is_err());
}

#[test]
fn reduce_for_respects_the_image_origin() {
    let spec = Spec {
        x0: 3,
        y0: 5,
        width: 301,
        height: 203,
        tile: (512, 512),
        ..Spec::default()
    };
    let f = spec.file();
    let idx = Jp2Index::from_header(&Header::parse(&f).unwrap()).unwrap();
    // ceil(304/2) - ceil(3/2) = 150, ceil(208/2) - ceil(5/2) = 101
    assert_eq!(idx.size_at(1), (150, 101));
    assert_eq!(idx.reduce_for(150, 101), 1);
    assert_eq!(idx.reduce_for(151, 101), 0);
    assert_eq!(idx.reduce_for(0, 0), 3);
}
