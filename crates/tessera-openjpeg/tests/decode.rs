//! Decodes compared byte for byte with `opj_decompress` (Debian's OpenJPEG 2.5.0 tools; this
//! crate bundles 2.5.3), plus gray, truncated, garbage and size-limit cases.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{fixture, reference};
use tessera_openjpeg::{decode, read_header, Codec, DecodeError, DecodeOptions};

const W: u32 = 1000;
const H: u32 = 800;

fn rgb_tiled() -> std::path::PathBuf {
    fixture("rgb_tiled.jp2", W, H, 3, &["-t", "256,256", "-p", "RPCL"])
}

fn rgb_single() -> std::path::PathBuf {
    fixture(
        "rgb_single.jp2",
        W,
        H,
        3,
        &["-p", "RPCL", "-TP", "R", "-TLM", "-PLT"],
    )
}

fn opts(reduce: u32, region: Option<(u32, u32, u32, u32)>) -> DecodeOptions {
    DecodeOptions {
        reduce,
        region,
        ..Default::default()
    }
}

/// Decodes `file` with this crate and with `opj_decompress`; returns a description of the
/// first difference, if any.
fn compare(
    file: &Path,
    reduce: u32,
    region: Option<(u32, u32, u32, u32)>,
    gray: bool,
) -> Option<String> {
    let data = std::fs::read(file).unwrap();
    let ours = decode(&data, &opts(reduce, region))
        .unwrap_or_else(|e| panic!("{} r{reduce} {region:?}: {e}", file.display()));
    let (w, h, c, px) = reference(file, reduce, region, gray, &[]);
    let what = format!("{} reduce {reduce} region {region:?}", file.display());
    if (ours.width, ours.height, ours.channels) != (w, h, c) {
        return Some(format!(
            "{what}: ours {}x{}x{}, opj_decompress {w}x{h}x{c}",
            ours.width, ours.height, ours.channels
        ));
    }
    let diffs = ours.pixels.iter().zip(&px).filter(|(a, b)| a != b).count();
    if diffs > 0 {
        let max = ours
            .pixels
            .iter()
            .zip(&px)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        return Some(format!("{what}: {diffs} samples differ (max {max})"));
    }
    None
}

fn assert_all_identical(cases: Vec<Option<String>>) {
    let n = cases.len();
    let failures: Vec<String> = cases.into_iter().flatten().collect();
    assert!(
        failures.is_empty(),
        "{} of {n} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{n} decodes identical to opj_decompress");
}

#[test]
fn header_of_tiled_and_single_tile_files() {
    let info = read_header(&std::fs::read(rgb_tiled()).unwrap()).unwrap();
    assert_eq!(info.codec, Codec::Jp2);
    assert_eq!((info.width, info.height, info.components), (W, H, 3));
    assert_eq!(info.levels, 5, "opj_compress default: 6 resolutions");
    assert_eq!((info.tile_width, info.tile_height), (256, 256));
    assert_eq!((info.tiles_x, info.tiles_y), (4, 4));

    let info = read_header(&std::fs::read(rgb_single()).unwrap()).unwrap();
    assert_eq!((info.tile_width, info.tile_height), (W, H));
    assert_eq!((info.tiles_x, info.tiles_y), (1, 1));

    let j2k = fixture("rgb_tiled.j2k", W, H, 3, &["-t", "256,256", "-p", "RPCL"]);
    let info = read_header(&std::fs::read(j2k).unwrap()).unwrap();
    assert_eq!(info.codec, Codec::J2k);
    assert_eq!((info.width, info.height, info.tiles_x), (W, H, 4));
}

/// (1) Whole image at reduce 0..=3, tiled and single-tile, JP2 and J2K.
#[test]
fn whole_image_matches_opj_decompress() {
    let files = [
        rgb_tiled(),
        rgb_single(),
        fixture("rgb_tiled.j2k", W, H, 3, &["-t", "256,256", "-p", "RPCL"]),
        // Odd size and a non-zero image origin: exercises the ceil division of the reduced
        // sizes.
        fixture(
            "rgb_odd.jp2",
            997,
            771,
            3,
            &["-t", "256,256", "-p", "RPCL", "-d", "3,5"],
        ),
    ];
    let mut cases = Vec::new();
    for f in &files {
        for r in 0..=3 {
            cases.push(compare(f, r, None, false));
        }
    }
    let odd = decode(&std::fs::read(&files[3]).unwrap(), &opts(3, None)).unwrap();
    // Reference grid 3..1000 × 5..776: ceil(1000/8) - ceil(3/8) = 124, ceil(776/8) - ceil(5/8) = 96.
    assert_eq!((odd.width, odd.height), (124, 96));
    assert_all_identical(cases);
}

/// (2) Region decodes of a tiled file (what fails with `jpeg2k`), and of a single-tile file.
#[test]
fn regions_match_opj_decompress() {
    let regions: [(u32, u32, u32, u32); 6] = [
        (300, 200, 812, 712),  // across 3×3 tiles
        (17, 33, 771, 459),    // odd, unaligned
        (513, 511, 1000, 800), // to the right and bottom edges
        (768, 0, 1000, 256),   // exactly one (partial) tile
        (255, 255, 257, 257),  // 2×2 at a tile corner
        (0, 0, 1000, 800),     // the whole image as a region
    ];
    let mut cases = Vec::new();
    for f in [rgb_tiled(), rgb_single()] {
        for r in 0..=3 {
            for &region in &regions {
                let (x0, _, x1, _) = region;
                if x1.div_ceil(1u32 << r) == x0.div_ceil(1u32 << r) {
                    continue; // empty at this resolution: refused, see invalid_options
                }
                cases.push(compare(&f, r, Some(region), false));
            }
        }
    }
    assert_all_identical(cases);
}

/// Lossy (9/7, 20:1) tiled file: compare too, since the two OpenJPEG versions could round
/// differently.
#[test]
fn lossy_matches_opj_decompress() {
    let f = fixture(
        "rgb_lossy.jp2",
        W,
        H,
        3,
        &["-t", "256,256", "-p", "RPCL", "-I", "-r", "20"],
    );
    let mut cases = Vec::new();
    for r in 0..=3 {
        cases.push(compare(&f, r, None, false));
        cases.push(compare(&f, r, Some((300, 200, 812, 712)), false));
    }
    assert_all_identical(cases);
}

/// (3) A gray image decodes to one channel.
#[test]
fn gray_is_one_channel() {
    let f = fixture("gray_tiled.jp2", W, H, 1, &["-t", "256,256", "-p", "RPCL"]);
    let img = decode(&std::fs::read(&f).unwrap(), &opts(0, None)).unwrap();
    assert_eq!((img.width, img.height, img.channels), (W, H, 1));
    assert_eq!(img.pixels.len(), (W * H) as usize);
    assert_eq!(img.pixels, common::pattern(W, H, 1), "lossless round trip");
    assert_all_identical(vec![
        compare(&f, 0, None, true),
        compare(&f, 2, None, true),
        compare(&f, 1, Some((100, 100, 600, 333)), true),
    ]);
}

/// Lossless round trip: the decode equals the generated source.
#[test]
fn lossless_round_trip() {
    let img = decode(&std::fs::read(rgb_tiled()).unwrap(), &opts(0, None)).unwrap();
    assert_eq!((img.width, img.height, img.channels), (W, H, 3));
    assert_eq!(img.pixels, common::pattern(W, H, 3));
    let region = decode(
        &std::fs::read(rgb_tiled()).unwrap(),
        &opts(0, Some((300, 200, 812, 712))),
    )
    .unwrap();
    let row = |y: usize| &img.pixels[(y * W as usize + 300) * 3..][..512 * 3];
    for y in 0..512 {
        assert_eq!(
            &region.pixels[y * 512 * 3..][..512 * 3],
            row(200 + y),
            "row {y}"
        );
    }
}

/// Subsampled components (`-s 2,2` subsamples every component) come out at reference-grid
/// size, upsampled by nearest neighbour.
#[test]
fn subsampled_components_are_upsampled() {
    let f = fixture("rgb_sub.jp2", 400, 300, 3, &["-s", "2,2"]);
    let data = std::fs::read(&f).unwrap();
    let info = read_header(&data).unwrap();
    let img = decode(&data, &opts(0, None)).unwrap();
    assert_eq!((img.width, img.height), (info.width, info.height));
    let (w, h, _, px) = reference(&f, 0, None, false, &[]);
    assert_eq!((w, h), (info.width.div_ceil(2), info.height.div_ceil(2)));
    for y in 0..img.height as usize {
        for x in 0..img.width as usize {
            let ours = &img.pixels[(y * img.width as usize + x) * 3..][..3];
            let theirs = &px[((y / 2) * w as usize + x / 2) * 3..][..3];
            assert_eq!(ours, theirs, "pixel {x},{y}");
        }
    }
}

/// Offsets of the SOT markers of a codestream made by `opj_compress` (walked by `Psot`).
fn tile_part_offsets(data: &[u8]) -> Vec<usize> {
    let mut pos = data.windows(2).position(|w| w == [0xFF, 0x90]).unwrap();
    let mut out = Vec::new();
    while data[pos..].starts_with(&[0xFF, 0x90]) {
        out.push(pos);
        let psot = u32::from_be_bytes(data[pos + 6..pos + 10].try_into().unwrap()) as usize;
        pos += psot;
    }
    assert!(
        data[pos..].starts_with(&[0xFF, 0xD9]),
        "EOC after the last tile-part"
    );
    out
}

fn lenient(reduce: u32) -> DecodeOptions {
    DecodeOptions {
        strict: false,
        ..opts(reduce, None)
    }
}

/// (4) A truncated single-tile RPCL file with tile-parts by resolution: strict mode refuses
/// it; non-strict decodes an image of the right size wherever the cut is — inside the last
/// tile-part (OpenJPEG copes by itself), inside an earlier one or at a boundary (OpenJPEG
/// fails with "Stream too short"; the `truncated` module patches the stream).
#[test]
fn truncated_single_tile() {
    let data = std::fs::read(rgb_single()).unwrap();
    let sots = tile_part_offsets(&data);
    assert_eq!(sots.len(), 6, "-TP R: one tile-part per resolution");
    let cuts = [
        data.len() * 3 / 10,
        data.len() / 2,
        data.len() * 9 / 10,
        data.len() - 3,
        sots[3],       // boundary
        sots[3] + 5,   // inside the SOT marker
        sots[3] + 100, // inside an early tile-part's data
        sots[4] + 20,
        sots[5] + 1,
    ];
    for cut in cuts {
        let cut_data = &data[..cut];
        for r in [0, 2] {
            let strict = decode(cut_data, &opts(r, None));
            assert!(
                matches!(strict, Err(DecodeError::Decode(_))),
                "cut {cut} r{r}: strict gave {:?}",
                strict.map(|d| (d.width, d.height))
            );
            let d = decode(cut_data, &lenient(r))
                .unwrap_or_else(|e| panic!("cut {cut} r{r} non-strict: {e}"));
            assert_eq!(
                (d.width, d.height, d.channels),
                (W.div_ceil(1 << r), H.div_ceil(1 << r), 3)
            );
        }
    }
    println!(
        "strict error: {}",
        decode(&data[..data.len() / 2], &opts(0, None)).unwrap_err()
    );

    // Cut inside the last tile-part: identical to `opj_decompress -allow-partial` (2.5.0).
    let cut = &data[..data.len() / 2];
    assert!(cut.len() > sots[5]);
    let path = common::scratch("rgb_single_half.jp2");
    std::fs::write(&path, cut).unwrap();
    let ours = decode(cut, &lenient(0)).unwrap();
    let (w, h, _, px) = reference(&path, 0, None, false, &["-allow-partial"]);
    std::fs::remove_file(&path).ok();
    assert_eq!((w, h), (ours.width, ours.height));
    assert!(
        px == ours.pixels,
        "differs from opj_decompress -allow-partial"
    );

    // Cut inside an earlier tile-part: opj_decompress -allow-partial itself gives up.
    let path = common::scratch("rgb_single_early.jp2");
    std::fs::write(&path, &data[..sots[3] + 100]).unwrap();
    let out = std::process::Command::new("opj_decompress")
        .arg("-i")
        .arg(&path)
        .arg("-o")
        .arg(common::scratch("early.ppm"))
        .arg("-allow-partial")
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    std::fs::remove_file(common::scratch("early.ppm")).ok();
    println!(
        "opj_decompress -allow-partial on a cut inside tile-part 3 of 6: success={}, stderr tail: {:?}",
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).lines().last()
    );
}

/// A prefix holding the first tile-parts of an RPCL file with tile-parts by resolution gives
/// the low resolutions exactly: what a range request for a small view fetches.
#[test]
fn rpcl_prefix_gives_low_resolutions() {
    let data = std::fs::read(rgb_single()).unwrap();
    let sots = tile_part_offsets(&data);
    // 6 resolutions; reduce 3 needs resolutions 0..=2, i.e. tile-parts 0..=2.
    let prefix = &data[..sots[3]];
    let full = decode(&data, &opts(3, None)).unwrap();
    assert_eq!(decode(prefix, &lenient(3)).unwrap(), full);
    assert!(
        decode(prefix, &opts(3, None)).is_err(),
        "strict refuses the prefix"
    );
    // One tile-part short is not enough.
    assert_ne!(decode(&data[..sots[2]], &lenient(3)).unwrap(), full);
    println!(
        "reduce 3 (125x100) of a {} byte single-tile RPCL -TP R file decodes identically from its first {} bytes",
        data.len(),
        prefix.len()
    );
}

/// A truncated tiled file decodes (non-strict) to full size.
#[test]
fn truncated_tiled() {
    let data = std::fs::read(rgb_tiled()).unwrap();
    for cut in [data.len() / 7, data.len() / 2, data.len() - 1] {
        assert!(decode(&data[..cut], &opts(1, None)).is_err());
        let d = decode(&data[..cut], &lenient(1)).unwrap();
        assert_eq!((d.width, d.height), (500, 400));
        let d = decode(
            &data[..cut],
            &DecodeOptions {
                region: Some((300, 200, 812, 712)),
                ..lenient(1)
            },
        )
        .unwrap();
        assert_eq!((d.width, d.height), (256, 256));
    }
}

/// (5) Garbage and empty input are errors, not panics.
#[test]
fn garbage_and_empty_input() {
    let noise: Vec<u8> = common::pattern(64, 64, 3);
    let mut jp2_magic = vec![
        0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A,
    ];
    jp2_magic.extend_from_slice(&noise);
    let mut j2k_magic = vec![0xFF, 0x4F, 0xFF, 0x51];
    j2k_magic.extend_from_slice(&noise);
    let inputs: [&[u8]; 7] = [
        &[],
        &[0xFF],
        &[0xFF, 0x4F, 0xFF, 0x51],
        &[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20],
        &noise,
        &jp2_magic,
        &j2k_magic,
    ];
    for input in inputs {
        assert!(read_header(input).is_err(), "{} bytes", input.len());
        for strict in [true, false] {
            let r = decode(
                input,
                &DecodeOptions {
                    strict,
                    ..Default::default()
                },
            );
            assert!(r.is_err(), "{} bytes strict {strict}", input.len());
        }
    }
    assert!(matches!(read_header(&[]), Err(DecodeError::Header(_))));
    println!(
        "garbage J2K: {}",
        decode(&j2k_magic, &Default::default()).unwrap_err()
    );
}

/// (6) `max_pixels` is checked from the header, before any tile is decoded: a file whose tile
/// data is missing gets `TooLarge`, not a decode error.
#[test]
fn max_pixels_refuses_before_decoding() {
    let data = std::fs::read(rgb_tiled()).unwrap();
    let limit = |max_pixels, reduce, region| DecodeOptions {
        max_pixels,
        reduce,
        region,
        ..Default::default()
    };
    match decode(&data, &limit(799_999, 0, None)) {
        Err(DecodeError::TooLarge {
            width: 1000,
            height: 800,
            max_pixels: 799_999,
        }) => {}
        other => panic!("{:?}", other.map(|d| (d.width, d.height))),
    }
    assert!(decode(&data, &limit(800_000, 0, None)).is_ok());
    assert!(decode(&data, &limit(125 * 100, 3, None)).is_ok());
    assert!(matches!(
        decode(&data, &limit(125 * 100 - 1, 3, None)),
        Err(DecodeError::TooLarge {
            width: 125,
            height: 100,
            ..
        })
    ));
    assert!(decode(&data, &limit(100 * 100, 0, Some((0, 0, 100, 100)))).is_ok());
    assert!(matches!(
        decode(&data, &limit(100 * 100 - 1, 0, Some((0, 0, 100, 100)))),
        Err(DecodeError::TooLarge { .. })
    ));

    // Only the main header and the first tile-part header survive: decoding would fail.
    let cut = &data[..data.len() / 20];
    assert!(matches!(
        decode(cut, &limit(u64::MAX, 0, None)),
        Err(DecodeError::Decode(_))
    ));
    assert!(matches!(
        decode(cut, &limit(1000, 0, None)),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn invalid_options() {
    let data = std::fs::read(rgb_tiled()).unwrap();
    for bad in [
        opts(6, None),                      // 5 levels
        opts(0, Some((1000, 0, 1100, 10))), // right of the image
        opts(0, Some((10, 10, 10, 20))),    // empty
        opts(3, Some((257, 0, 258, 100))),  // empty at 1/8
    ] {
        assert!(
            matches!(decode(&data, &bad), Err(DecodeError::InvalidOptions(_))),
            "{bad:?}"
        );
    }
    // reduce == levels is allowed: 1000/32 → 32×25.
    let d = decode(&data, &opts(5, None)).unwrap();
    assert_eq!((d.width, d.height), (32, 25));
    // A region reaching past the image is clamped to it.
    let d = decode(&data, &opts(0, Some((900, 700, 5000, 5000)))).unwrap();
    assert_eq!((d.width, d.height), (100, 100));
}

#[test]
fn threads_give_the_same_pixels() {
    let data = std::fs::read(rgb_tiled()).unwrap();
    let one = decode(&data, &opts(0, Some((100, 100, 900, 700)))).unwrap();
    let two = decode(
        &data,
        &DecodeOptions {
            threads: 2,
            ..opts(0, Some((100, 100, 900, 700)))
        },
    )
    .unwrap();
    assert_eq!(one, two);
}

/// With threads, a decode of several tile rows is shared out in bands of whole tile rows, a
/// decoder each: the same pixels as one decoder, whatever the tile grid's origin and size, the
/// image offset, subsampling, reduce and region.
#[test]
fn bands_of_tile_rows_give_the_pixels_of_one_decode() {
    let files = [
        rgb_tiled(),
        fixture(
            "rgb_offsets.jp2",
            777,
            555,
            3,
            &["-t", "200,150", "-d", "37,21", "-T", "11,7", "-n", "4"],
        ),
        fixture(
            "rgb_sub_tiled.jp2",
            600,
            500,
            3,
            &["-s", "2,2", "-t", "128,96"],
        ),
        fixture("gray_tiled.jp2", 500, 700, 1, &["-t", "100,64", "-r", "20"]),
    ];
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let info = read_header(&data).unwrap();
        let (x0, y0) = (info.x0, info.y0);
        let (x1, y1) = (x0 + info.width, y0 + info.height);
        let regions = [
            None,
            Some((x0 + 13, y0 + 50, x1 - 90, y1 - 37)),
            Some((x0, y0 + 3, x0 + 40, y1)),
        ];
        for reduce in 0..=info.levels.min(3) {
            for region in regions {
                let one = decode(&data, &opts(reduce, region)).unwrap();
                for threads in [2, 3, 5] {
                    let banded = decode(
                        &data,
                        &DecodeOptions {
                            threads,
                            ..opts(reduce, region)
                        },
                    )
                    .unwrap();
                    assert!(
                        one == banded,
                        "{}: reduce {reduce}, region {region:?}, {threads} threads",
                        file.display()
                    );
                }
            }
        }
    }
}

/// Timings on a 4000×3000 lossless RGB file (printed; run with `--nocapture`). No assertion on
/// time.
#[test]
fn timing_4000x3000() {
    let files = [
        (
            "single tile",
            fixture("big_single.jp2", 4000, 3000, 3, &["-p", "RPCL", "-TP", "R"]),
        ),
        (
            "512 tiles",
            fixture(
                "big_tiled.jp2",
                4000,
                3000,
                3,
                &["-t", "512,512", "-p", "RPCL"],
            ),
        ),
    ];
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    for (name, f) in &files {
        let data = std::fs::read(f).unwrap();
        let cases = [
            ("whole, reduce 3", opts(3, None)),
            (
                "whole, reduce 3, 2 threads",
                DecodeOptions {
                    threads: 2,
                    ..opts(3, None)
                },
            ),
            (
                "512² region, reduce 0",
                opts(0, Some((1700, 1300, 2212, 1812))),
            ),
            (
                "2048² region, reduce 2",
                opts(2, Some((1000, 500, 3048, 2548))),
            ),
            ("4000² region, reduce 3", opts(3, Some((0, 0, 4000, 3000)))),
        ];
        let mut cases = cases.to_vec();
        if !cfg!(debug_assertions) {
            // ~2.4 s in release, ~5 s in a debug build: only measured in release.
            cases.push(("whole, reduce 0", opts(0, None)));
        }
        for (what, o) in &cases {
            let t = Instant::now();
            let d = decode(&data, o).unwrap();
            println!(
                "[{profile}] 4000x3000 {name} ({} KB): {what} -> {}x{} in {:.1} ms",
                data.len() / 1024,
                d.width,
                d.height,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
        let t = Instant::now();
        read_header(&data).unwrap();
        println!(
            "[{profile}] 4000x3000 {name}: read_header in {:.2} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let t = Instant::now();
        let refused = decode(
            &data,
            &DecodeOptions {
                max_pixels: 1_000_000,
                ..opts(0, None)
            },
        );
        assert!(matches!(refused, Err(DecodeError::TooLarge { .. })));
        println!(
            "[{profile}] 4000x3000 {name}: max_pixels refusal in {:.2} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
