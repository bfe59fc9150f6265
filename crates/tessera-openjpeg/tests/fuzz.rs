//! Mutated and truncated inputs must give `Ok` or `Err`, never a panic, crash or hang.
//! Small fixtures (64×48, 16-px tiles) and bounded case counts keep this fast.

mod common;

use proptest::prelude::*;
use tessera_openjpeg::{decode, read_header, DecodeOptions};

fn fixtures() -> &'static [Vec<u8>; 3] {
    static F: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
        [
            read(common::fixture(
                "fz_tiled.jp2",
                64,
                48,
                3,
                &["-t", "16,16", "-p", "RPCL", "-n", "3"],
            )),
            read(common::fixture(
                "fz_single.j2k",
                64,
                48,
                3,
                &["-p", "RPCL", "-n", "4", "-TP", "R", "-PLT", "-TLM"],
            )),
            read(common::fixture(
                "fz_lossy.jp2",
                64,
                48,
                1,
                &["-t", "32,32", "-I", "-r", "10,5", "-n", "3"],
            )),
        ]
    })
}

fn options() -> impl Strategy<Value = DecodeOptions> {
    (
        0u32..=3,
        any::<bool>(),
        proptest::option::of((0u32..64, 0u32..48, 1u32..80, 1u32..60)),
    )
        .prop_map(|(reduce, strict, region)| DecodeOptions {
            reduce,
            strict,
            region: region.map(|(x0, y0, w, h)| (x0, y0, x0 + w, y0 + h)),
            // Mutated sizes must not make the test allocate gigabytes.
            max_pixels: 1 << 20,
            threads: 1,
        })
}

fn check(data: &[u8], opts: &DecodeOptions) {
    let _ = read_header(data);
    if let Ok(d) = decode(data, opts) {
        assert_eq!(
            d.pixels.len(),
            d.width as usize * d.height as usize * d.channels as usize
        );
        assert!(u64::from(d.width) * u64::from(d.height) <= opts.max_pixels);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// A few bytes overwritten; positions favour the headers (first 300 bytes), where a flip
    /// changes sizes, tile counts, marker lengths and coding parameters.
    #[test]
    fn mutated(which in 0usize..3,
               edits in proptest::collection::vec((any::<bool>(), any::<usize>(), any::<u8>()), 1..6),
               opts in options()) {
        let mut data = fixtures()[which].clone();
        for (header, pos, byte) in edits {
            let limit = if header { data.len().min(300) } else { data.len() };
            let i = pos % limit;
            data[i] = byte;
        }
        check(&data, &opts);
    }

    /// Any prefix of a valid file.
    #[test]
    fn truncated(which in 0usize..3, frac in 0.0f64..1.0, opts in options()) {
        let data = &fixtures()[which];
        let cut = &data[..(data.len() as f64 * frac) as usize];
        check(cut, &opts);
    }

    /// Random bytes after a valid magic.
    #[test]
    fn random_after_magic(jp2 in any::<bool>(), tail in proptest::collection::vec(any::<u8>(), 0..400), opts in options()) {
        let mut data: Vec<u8> = if jp2 {
            vec![0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A]
        } else {
            vec![0xFF, 0x4F, 0xFF, 0x51]
        };
        data.extend(tail);
        check(&data, &opts);
    }
}
