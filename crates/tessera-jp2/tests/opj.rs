//! End-to-end checks against OpenJPEG's command-line tools: fixtures are encoded by
//! `opj_compress` from a generated PPM, and every assembled partial codestream must decode with
//! `opj_decompress -r d` to exactly the pixels of the whole file decoded with `-r d`.
//!
//! Skipped (with a message) when `opj_compress` is not installed (Debian: libopenjp2-tools).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use tessera_jp2::{
    as_reduced_image, assemble, interleave, without_last_planes, Header, InterleaveError,
    Interleaved, Jp2Index, ParseError, Plan, Progression, SotWalker, TilePart,
};

const W: usize = 2000;
const H: usize = 1500;

fn have_tools() -> bool {
    static HAVE: OnceLock<bool> = OnceLock::new();
    *HAVE.get_or_init(|| {
        let ok = ["opj_compress", "opj_decompress"]
            .iter()
            .all(|t| Command::new(t).arg("-h").output().is_ok());
        if !ok {
            eprintln!("SKIPPED: opj_compress/opj_decompress not installed");
        }
        ok
    })
}

fn fixture_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-jp2-fixtures");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A deterministic RGB test image with structure at every scale and some noise, so that every
/// resolution costs bytes (like a photograph) and a wrong byte shows in the pixels.
fn source_ppm(w: usize, h: usize) -> PathBuf {
    let path = fixture_dir().join(format!("source-{w}x{h}.ppm"));
    if !path.exists() {
        let mut data = format!("P6\n{w} {h}\n255\n").into_bytes();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for y in 0..h {
            for x in 0..w {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed & 0x1F) as usize;
                let r = (x * 255 / w + n) & 0xFF;
                let g = (((x / 37 + y / 53) % 2) * 160 + (y * 80 / h) + n / 2) & 0xFF;
                let b = ((x * x + y * y) / 97 + n) & 0xFF;
                data.extend_from_slice(&[r as u8, g as u8, b as u8]);
            }
        }
        write_atomic(&path, &data);
    }
    path
}

fn write_atomic(path: &Path, data: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes the source image with `opj_compress` and these flags (once; cached on disk).
fn fixture(name: &str, w: usize, h: usize, ext: &str, flags: &[&str]) -> PathBuf {
    // Tests run on several threads of one process: make each fixture once, one at a time.
    static MAKING: Mutex<()> = Mutex::new(());
    let _guard = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let path = fixture_dir().join(format!("{name}-{w}x{h}.{ext}"));
    if !path.exists() {
        let src = source_ppm(w, h);
        let tmp = fixture_dir().join(format!("{name}-{w}x{h}.tmp{}.{ext}", std::process::id()));
        let mut args = vec!["-i", src.to_str().unwrap(), "-o", tmp.to_str().unwrap()];
        args.extend_from_slice(flags);
        run("opj_compress", &args);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// (a) single tile, RPCL, tile-parts by resolution, TLM, 6 resolutions (NL = 5).
fn single_tile() -> PathBuf {
    fixture(
        "a-rpcl-1tile-tlm",
        W,
        H,
        "jp2",
        &["-p", "RPCL", "-TP", "R", "-TLM", "-n", "6"],
    )
}
/// (b) 256-px tiles, RPCL, tile-parts by resolution, TLM.
fn tiled_tlm() -> PathBuf {
    fixture(
        "b-rpcl-256-tlm",
        W,
        H,
        "jp2",
        &["-p", "RPCL", "-t", "256,256", "-TP", "R", "-TLM"],
    )
}
/// (c) as (b) without TLM: the walker's case.
fn tiled_no_tlm() -> PathBuf {
    fixture(
        "c-rpcl-256",
        W,
        H,
        "jp2",
        &["-p", "RPCL", "-t", "256,256", "-TP", "R"],
    )
}
/// (d) LRCP: no partial reads.
fn lrcp() -> PathBuf {
    fixture("d-lrcp", W, H, "jp2", &["-p", "LRCP"])
}
/// (e) RLCP with 512-px tiles, tile-parts by resolution, TLM and PLT, two quality layers.
fn rlcp() -> PathBuf {
    fixture(
        "e-rlcp-512-tlm-plt",
        W,
        H,
        "jp2",
        &[
            "-p", "RLCP", "-t", "512,512", "-TP", "R", "-TLM", "-PLT", "-r", "20,1",
        ],
    )
}
/// (f) a bare J2K codestream, single tile, RPCL by resolution, no TLM, odd size.
fn raw_j2k() -> PathBuf {
    fixture(
        "f-rpcl-raw",
        601,
        401,
        "j2k",
        &["-p", "RPCL", "-TP", "R", "-n", "4"],
    )
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Parses the header the way a caller would: 16 KiB first, then what `NeedMore` asks for.
fn parse_like_a_caller(file: &[u8]) -> Header {
    let mut len = 16 * 1024;
    loop {
        match Header::parse(&file[..len.min(file.len())]) {
            Ok(h) => return h,
            Err(ParseError::NeedMore { total_needed }) => {
                assert!(
                    total_needed as usize > len.min(file.len()),
                    "NeedMore must make progress"
                );
                assert!(
                    (total_needed as usize) <= file.len(),
                    "asked past the end of the file"
                );
                len = total_needed as usize;
            }
            Err(e) => panic!("parse failed: {e}"),
        }
    }
}

/// Walks the SOTs with one small read per tile-part, as a caller would with ranged GETs.
fn walk(file: &[u8], header: &Header) -> (Vec<TilePart>, usize) {
    let mut w = SotWalker::new(header, file.len() as u64);
    let mut reads = 0;
    while let Some(r) = w.next_read() {
        reads += 1;
        let n = w
            .feed(r.start, &file[r.start as usize..r.end as usize])
            .unwrap();
        assert!(n <= 1);
    }
    (w.finish().unwrap(), reads)
}

fn index(file: &[u8]) -> Jp2Index {
    let h = parse_like_a_caller(file);
    match Jp2Index::from_header(&h) {
        Ok(i) => i,
        Err(tessera_jp2::Jp2Error::NoTlm) => {
            Jp2Index::from_tile_parts(&h, walk(file, &h).0).unwrap()
        }
        Err(e) => panic!("{e}"),
    }
}

/// Decodes with `opj_decompress -r reduce` and returns the output PPM's bytes.
fn decode(input: &Path, reduce: u8, dir: &Path, name: &str) -> Vec<u8> {
    let out = dir.join(format!("{name}-r{reduce}.ppm"));
    run(
        "opj_decompress",
        &[
            "-i",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-r",
            &reduce.to_string(),
        ],
    );
    read(&out)
}

fn ppm_size(ppm: &[u8]) -> (u32, u32) {
    // "P6\n# OpenJPEG-2.5.0\n250 188\n255\n": skip the magic and comment lines.
    let text = String::from_utf8_lossy(&ppm[..64.min(ppm.len())]).into_owned();
    let line = text.lines().skip(1).find(|l| !l.starts_with('#')).unwrap();
    let mut it = line.split_ascii_whitespace().map(|v| v.parse().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// The plan's ranges of `file`, as a caller would have fetched them.
fn fetched<'a>(file: &'a [u8], plan: &Plan) -> BTreeMap<u64, &'a [u8]> {
    plan.ranges
        .iter()
        .map(|r| (r.start, &file[r.start as usize..r.end as usize]))
        .collect()
}

/// Plans, "fetches" the ranges from the file, assembles, and compares decodes for each reduce.
fn check_partial_decodes(label: &str, path: &Path, reduces: &[u8]) {
    check_decodes(label, path, reduces, true)
}

/// As [`check_partial_decodes`]; `rewritable`: every reduce above 0 must be rewritten as the
/// smaller image's codestream.
fn check_decodes(label: &str, path: &Path, reduces: &[u8], rewritable: bool) {
    let file = read(path);
    let idx = index(&file);
    let dir = tempfile::tempdir().unwrap();
    for &d in reduces {
        let plan = idx.plan(d, 0).unwrap();
        let part = assemble(&idx, &plan, &fetched(&file, &plan)).unwrap();
        let share = plan.bytes() as f64 / file.len() as f64;
        println!(
            "{label}: reduce {d}: {} of {} bytes ({:.2}%) in {} ranges, {} tile-parts, decoded {:?}",
            plan.bytes(),
            file.len(),
            share * 100.0,
            plan.ranges.len(),
            plan.tile_parts.len(),
            idx.size_at(d),
        );
        let part_path = dir.path().join(format!("part-r{d}.j2k"));
        std::fs::write(&part_path, &part).unwrap();
        let whole = decode(path, d, dir.path(), "whole");
        let partial = decode(&part_path, d, dir.path(), "part");
        assert_eq!(
            ppm_size(&whole),
            idx.size_at(d),
            "{label} reduce {d}: size_at"
        );
        assert!(whole == partial, "{label} reduce {d}: pixels differ");
        // The same codestream as the smaller image's, decoded whole: the same pixels again.
        match as_reduced_image(&part, d) {
            Some(smaller) => {
                let smaller_path = dir.path().join(format!("smaller-r{d}.j2k"));
                std::fs::write(&smaller_path, &smaller).unwrap();
                let decoded = decode(&smaller_path, 0, dir.path(), &format!("smaller-r{d}"));
                assert!(
                    whole == decoded,
                    "{label} reduce {d}: the smaller image's pixels differ"
                );
            }
            None => assert!(d == 0 || !rewritable, "{label} reduce {d}: not rewritten"),
        }
        if d >= 3 {
            assert!(share < 0.10, "{label} reduce {d}: share {share}");
        }
    }
}

#[test]
fn headers_match_what_was_encoded() {
    if !have_tools() {
        return;
    }
    let cases: [(PathBuf, u32, u32, u8, Progression, u32, bool); 6] = [
        (
            single_tile(),
            W as u32,
            H as u32,
            5,
            Progression::Rpcl,
            1,
            true,
        ),
        (
            tiled_tlm(),
            W as u32,
            H as u32,
            5,
            Progression::Rpcl,
            8 * 6,
            true,
        ),
        (
            tiled_no_tlm(),
            W as u32,
            H as u32,
            5,
            Progression::Rpcl,
            8 * 6,
            false,
        ),
        (lrcp(), W as u32, H as u32, 5, Progression::Lrcp, 1, false),
        (
            rlcp(),
            W as u32,
            H as u32,
            5,
            Progression::Rlcp,
            4 * 3,
            true,
        ),
        (raw_j2k(), 601, 401, 3, Progression::Rpcl, 1, false),
    ];
    for (path, w, h, nl, prog, tiles, tlm) in cases {
        let file = read(&path);
        let header = parse_like_a_caller(&file);
        assert_eq!(header, Header::parse(&file).unwrap());
        assert_eq!(
            (header.siz.width(), header.siz.height()),
            (w, h),
            "{path:?}"
        );
        assert_eq!(header.cod.levels, nl, "{path:?}");
        assert_eq!(header.cod.progression, prog, "{path:?}");
        assert_eq!(header.siz.components.len(), 3);
        assert_eq!(header.siz.num_tiles(), u64::from(tiles), "{path:?}");
        assert_eq!(!header.tlm.is_empty(), tlm, "{path:?}");
        assert!(header
            .comments
            .iter()
            .any(|c| c.text.as_deref().is_some_and(|t| t.contains("OpenJPEG"))));
        if path.extension().unwrap() == "jp2" {
            let jp2 = header.jp2.as_ref().unwrap();
            let ihdr = jp2.ihdr.as_ref().unwrap();
            assert_eq!((ihdr.width, ihdr.height, ihdr.components), (w, h, 3));
            assert_eq!(jp2.colr.as_ref().unwrap().enumerated, Some(16));
            assert_eq!(header.codestream_end, Some(file.len() as u64));
        } else {
            assert!(header.jp2.is_none());
            assert_eq!(header.codestream_offset, 0);
        }
        let idx = index(&file);
        assert_eq!((idx.width, idx.height, idx.levels), (w, h, nl));
        assert_eq!(idx.tiles_x * idx.tiles_y, tiles);
        // The tile-parts fill the codestream up to EOC.
        let last = idx.tile_parts.last().unwrap();
        assert_eq!(last.offset + last.length + 2, file.len() as u64);
        assert_eq!(&file[file.len() - 2..], &[0xFF, 0xD9]);
    }
}

#[test]
fn tlm_table_equals_walked_table() {
    if !have_tools() {
        return;
    }
    for path in [single_tile(), tiled_tlm(), rlcp()] {
        let file = read(&path);
        let h = Header::parse(&file).unwrap();
        let from_tlm = Jp2Index::from_header(&h).unwrap();
        let (walked, reads) = walk(&file, &h);
        assert_eq!(reads, walked.len() + 1, "one read per tile-part, plus EOC");
        assert_eq!(from_tlm.tile_parts, walked, "{path:?}");
        println!(
            "{path:?}: {} tile-parts, TNsot {:?}",
            walked.len(),
            walked.iter().map(|t| t.parts).max()
        );
    }
    // (c) is (b) without the TLM segment: same tile-parts, shifted by the TLM's length.
    let b = read(&tiled_tlm());
    let c = read(&tiled_no_tlm());
    let hb = Header::parse(&b).unwrap();
    let hc = Header::parse(&c).unwrap();
    assert_eq!(
        Jp2Index::from_header(&hc),
        Err(tessera_jp2::Jp2Error::NoTlm)
    );
    let tb = Jp2Index::from_header(&hb).unwrap().tile_parts;
    let (tc, _) = walk(&c, &hc);
    let shift = hb.first_sot - hc.first_sot;
    assert_eq!(shift, b.len() as u64 - c.len() as u64);
    assert_eq!(tb.len(), tc.len());
    assert_eq!(tb.len(), 48 * 6);
    for (x, y) in tb.iter().zip(&tc) {
        assert_eq!(
            (x.tile, x.part, x.parts, x.length),
            (y.tile, y.part, y.parts, y.length)
        );
        assert_eq!(x.offset, y.offset + shift);
    }
    // One feed of the whole file walks it in one step.
    let mut w = SotWalker::new(&hc, c.len() as u64);
    let start = w.next_read().unwrap().start;
    assert_eq!(w.feed(start, &c[start as usize..]).unwrap(), tc.len());
    assert!(w.is_done());
    assert_eq!(w.finish().unwrap(), tc);
}

#[test]
fn lrcp_is_unsupported() {
    if !have_tools() {
        return;
    }
    let idx = index(&read(&lrcp()));
    let err = idx.plan(3, 0).unwrap_err();
    assert!(err.reason.contains("LRCP"), "{}", err.reason);
    assert_eq!(idx.tile_parts.len(), 1);
}

#[test]
fn untiled_rpcl_without_tile_parts_is_unsupported() {
    if !have_tools() {
        return;
    }
    let path = fixture("g-rpcl-one-part", 640, 480, "jp2", &["-p", "RPCL"]);
    let idx = index(&read(&path));
    let err = idx.plan(2, 0).unwrap_err();
    assert!(
        err.reason.contains("not split by resolution"),
        "{}",
        err.reason
    );
}

#[test]
fn single_tile_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    let file = read(&single_tile());
    let idx = index(&file);
    // Single tile: the main header and the kept tile-parts are contiguous.
    for d in 0..=idx.levels {
        assert_eq!(idx.plan(d, 0).unwrap().ranges.len(), 1);
    }
    check_partial_decodes("a single tile", &single_tile(), &[0, 1, 2, 3, 4, 5]);
}

#[test]
fn tiled_tlm_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    check_partial_decodes("b 256 tiles TLM", &tiled_tlm(), &[1, 3, 5]);
}

#[test]
fn tiled_walked_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    check_partial_decodes("c 256 tiles walked", &tiled_no_tlm(), &[0, 2, 4]);
    let idx = index(&read(&tiled_no_tlm()));
    // With a gap allowance the per-tile ranges merge into fewer requests.
    for gap in [0, 64 * 1024, 256 * 1024, 1024 * 1024] {
        let p = idx.plan(4, gap).unwrap();
        println!(
            "c reduce 4, max_gap {gap}: {} ranges, {} bytes",
            p.ranges.len(),
            p.bytes()
        );
    }
    let merged = idx.plan(4, 1024 * 1024).unwrap();
    assert!(merged.ranges.len() < idx.plan(4, 0).unwrap().ranges.len());
    // Merged ranges still assemble: each tile-part lies inside one of them.
    let file = read(&tiled_no_tlm());
    let ranges = fetched(&file, &merged);
    assert_eq!(
        assemble(&idx, &merged, &ranges).unwrap(),
        assemble(&idx, &idx.plan(4, 0).unwrap(), &ranges).unwrap()
    );
}

#[test]
fn rlcp_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    check_partial_decodes("e RLCP 512 tiles TLM PLT 2 layers", &rlcp(), &[1, 3]);
}

#[test]
fn raw_codestream_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    check_partial_decodes("f raw j2k", &raw_j2k(), &[0, 1, 2, 3]);
}

#[test]
fn reduce_for_picks_the_smallest_resolution_that_covers_the_target() {
    if !have_tools() {
        return;
    }
    let idx = index(&read(&single_tile()));
    assert_eq!(idx.size_at(0), (2000, 1500));
    assert_eq!(idx.size_at(3), (250, 188));
    assert_eq!(idx.reduce_for(2000, 1500), 0);
    assert_eq!(idx.reduce_for(1000, 750), 1);
    assert_eq!(idx.reduce_for(1001, 10), 0);
    assert_eq!(idx.reduce_for(250, 188), 3);
    assert_eq!(idx.reduce_for(250, 189), 2);
    assert_eq!(idx.reduce_for(1, 1), 5, "clamped to NL");
    assert_eq!(idx.reduce_for(5000, 5000), 0);
    for (tw, th) in [(256, 192), (100, 100), (700, 20), (1, 1500)] {
        let d = idx.reduce_for(tw, th);
        let (w, h) = idx.size_at(d);
        assert!(w >= tw && h >= th);
        if d < idx.levels {
            let (w2, h2) = idx.size_at(d + 1);
            assert!(w2 < tw || h2 < th);
        }
    }
}

#[test]
fn index_round_trips_through_json() {
    if !have_tools() {
        return;
    }
    for path in [tiled_tlm(), raw_j2k()] {
        let idx = index(&read(&path));
        let json = serde_json::to_string(&idx).unwrap();
        let back: Jp2Index = serde_json::from_str(&json).unwrap();
        assert_eq!(back, idx);
        assert!(json.contains("\"progression\":\"RPCL\""));
        println!("{path:?}: index JSON is {} bytes", json.len());
    }
}

/// (h) 9/7 irreversible (a step size per sub-band), user precincts, 512-px tiles, an image
/// offset and an odd size: every field the smaller image's header rewrites.
fn irreversible() -> PathBuf {
    fixture(
        "h-rpcl-97-precincts",
        1203,
        901,
        "j2k",
        &[
            "-p",
            "RPCL",
            "-t",
            "512,512",
            "-TP",
            "R",
            "-I",
            "-c",
            "[128,128],[64,64]",
            "-d",
            "8,4",
            "-n",
            "5",
        ],
    )
}

#[test]
fn irreversible_partial_decodes_are_identical() {
    if !have_tools() {
        return;
    }
    check_partial_decodes("h 9/7 precincts offset", &irreversible(), &[1, 2, 4]);
}

#[test]
fn a_tile_grid_not_divisible_is_not_rewritten() {
    if !have_tools() {
        return;
    }
    // 300-px tiles: divisible by 2² but not by 2³.
    let path = fixture(
        "i-rpcl-300",
        1000,
        700,
        "j2k",
        &["-p", "RPCL", "-t", "300,300", "-TP", "R", "-n", "4"],
    );
    check_decodes("i 300 tiles", &path, &[1, 2], true);
    let file = read(&path);
    let idx = index(&file);
    let plan = idx.plan(3, 0).unwrap();
    let part = assemble(&idx, &plan, &fetched(&file, &plan)).unwrap();
    assert!(as_reduced_image(&part, 3).is_none());
}

// --- Fewer bit-planes: `without_last_planes` ---

/// The pixels of an `opj_decompress` PPM (after its header).
fn pixels(ppm: &[u8]) -> &[u8] {
    let (w, h) = ppm_size(ppm);
    &ppm[ppm.len() - (w * h * 3) as usize..]
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    match se {
        0.0 => f64::INFINITY,
        se => 10.0 * (255.0f64.powi(2) / (se / a.len() as f64)).log10(),
    }
}

/// A fewer-planes fixture, as (name, `opj_compress` flags); those used by several tests.
type PlanesFixture = (&'static str, &'static [&'static str]);
const RPCL_LOSSY: PlanesFixture = ("p-rpcl-lossy", &["-p", "RPCL", "-n", "5", "-r", "10"]);
const IRREVERSIBLE_ALL: PlanesFixture = ("p-irreversible-all", &["-I", "-p", "RPCL"]);
const TILED_LOSSY: PlanesFixture = ("p-tiled", &["-t", "256,256", "-p", "RPCL", "-r", "10"]);

/// The 640×480 J2K codestream of a fewer-planes fixture.
fn planes_fixture((name, flags): PlanesFixture) -> Vec<u8> {
    read(&fixture(name, 640, 480, "j2k", flags))
}

/// `cs` rewritten with none and with one of its last bit-planes left out: the first decodes to
/// exactly `cs`'s pixels, the second to pixels close to them.
fn check_fewer_planes(label: &str, cs: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.j2k");
    std::fs::write(&original, cs).unwrap();
    let exact = decode(&original, 0, dir.path(), "original");
    let same = without_last_planes(cs, 0).unwrap_or_else(|| panic!("{label}: not rewritten"));
    let same_path = dir.path().join("same.j2k");
    std::fs::write(&same_path, &same).unwrap();
    assert!(
        pixels(&decode(&same_path, 0, dir.path(), "same")) == pixels(&exact),
        "{label}: the rewrite that leaves nothing out changed the pixels"
    );
    let lighter = without_last_planes(cs, 1).unwrap();
    let lighter_path = dir.path().join("lighter.j2k");
    std::fs::write(&lighter_path, &lighter).unwrap();
    let decoded = decode(&lighter_path, 0, dir.path(), "lighter");
    let quality = psnr(pixels(&decoded), pixels(&exact));
    println!("{label}: one plane left out: {quality:.1} dB");
    assert!(quality > 38.0, "{label}: {quality:.1} dB");
}

#[test]
fn fewer_planes_decode_close_to_every_progression_and_marker() {
    if !have_tools() {
        return;
    }
    let cases: &[PlanesFixture] = &[
        RPCL_LOSSY,
        ("p-lrcp-sop-eph", &["-p", "LRCP", "-SOP", "-EPH", "-n", "5"]),
        ("p-rlcp-tp", &["-p", "RLCP", "-TP", "R", "-r", "8"]),
        ("p-pcrl", &["-p", "PCRL", "-r", "12"]),
        ("p-cprl-plt", &["-p", "CPRL", "-PLT", "-TLM", "-TP", "C"]),
        // 9-7 wavelet: quantized, every band's step size written out (QCD style 2); every
        // plane coded, and the encoder's rate control cutting the last ones.
        IRREVERSIBLE_ALL,
        ("p-irreversible-10", &["-I", "-p", "RPCL", "-r", "10"]),
        // The image away from the grid's origin: bands that start between code-blocks.
        ("p-offset", &["-d", "7,3", "-p", "LRCP"]),
        ("p-subsampled", &["-s", "2,2", "-p", "RPCL"]),
        // Tiles, each followed on its own: a grid away from the image's origin, tiles cut by
        // the image's edges, tile-parts by resolution.
        TILED_LOSSY,
        (
            "p-tiled-offsets",
            &[
                "-t", "200,150", "-d", "37,21", "-T", "11,7", "-p", "LRCP", "-TP", "R",
            ],
        ),
    ];
    for &(name, flags) in cases {
        check_fewer_planes(name, &planes_fixture((name, flags)));
    }
}

/// The step sizes derived from the LL band's (QCD style 1, which `opj_compress` does not
/// write): the irreversible fixture with its QCD cut down to the first step size.
#[test]
fn fewer_planes_with_derived_step_sizes() {
    if !have_tools() {
        return;
    }
    let cs = planes_fixture(IRREVERSIBLE_ALL);
    let qcd = cs.windows(2).position(|w| w == [0xFF, 0x5C]).unwrap();
    let length = usize::from(u16::from_be_bytes([cs[qcd + 2], cs[qcd + 3]]));
    let sqcd = cs[qcd + 4];
    assert_eq!(sqcd & 0x1F, 2, "expounded step sizes");
    let mut derived = cs[..qcd].to_vec();
    derived.extend_from_slice(&[
        0xFF,
        0x5C,
        0,
        5,
        (sqcd & 0xE0) | 1,
        cs[qcd + 5],
        cs[qcd + 6],
    ]);
    derived.extend_from_slice(&cs[qcd + 2 + length..]);
    check_fewer_planes("derived step sizes", &derived);
}

#[test]
fn fewer_planes_of_the_smaller_image_a_small_view_decodes() {
    if !have_tools() {
        return;
    }
    for (name, path) in [("raw j2k", raw_j2k()), ("256 tiles", tiled_tlm())] {
        let file = read(&path);
        let idx = index(&file);
        for d in [1, 2] {
            let plan = idx.plan(d, 0).unwrap();
            let part = assemble(&idx, &plan, &fetched(&file, &plan)).unwrap();
            let smaller = as_reduced_image(&part, d).unwrap();
            check_fewer_planes(&format!("{name}, reduce {d}"), &smaller);
        }
    }
}

/// `cs` with its tile-parts (from its index) as `pick` chooses and orders them.
fn with_tile_parts(cs: &[u8], pick: impl FnOnce(Vec<TilePart>) -> Vec<TilePart>) -> Vec<u8> {
    let parts = index(cs).tile_parts;
    let first = parts[0].offset as usize;
    let last = parts[parts.len() - 1].range().end as usize;
    let mut out = cs[..first].to_vec();
    for tp in pick(parts) {
        out.extend_from_slice(&cs[tp.range().start as usize..tp.range().end as usize]);
    }
    out.extend_from_slice(&cs[last..]);
    out
}

/// Tile-parts of different tiles interleaved (every tile's first, then every tile's second,
/// as a file written by resolution across tiles is): each tile's packets carry on where its
/// last tile-part left them.
#[test]
fn fewer_planes_follow_each_tile_across_interleaved_tile_parts() {
    if !have_tools() {
        return;
    }
    let cs = planes_fixture((
        "p-tiled-tp",
        &["-t", "256,256", "-p", "RPCL", "-TP", "R", "-r", "10"],
    ));
    let interleaved = with_tile_parts(&cs, |mut parts| {
        parts.sort_by_key(|tp| (tp.part, tp.tile));
        parts
    });
    assert_ne!(interleaved, cs);
    check_fewer_planes("tile-parts interleaved", &interleaved);
}

#[test]
fn fewer_planes_decline_what_they_cannot_rewrite() {
    if !have_tools() {
        return;
    }
    let cases: &[PlanesFixture] = &[
        ("q-layers", &["-r", "40,20,10"]),
        ("q-precincts", &["-c", "[64,64]"]),
        ("q-bypass", &["-M", "1"]),
    ];
    for &(name, flags) in cases {
        assert!(
            without_last_planes(&planes_fixture((name, flags)), 1).is_none(),
            "{name}"
        );
    }
    // A tile missing: every tile must be there.
    let tiled = planes_fixture(TILED_LOSSY);
    let one_missing = with_tile_parts(&tiled, |parts| {
        parts.into_iter().filter(|tp| tp.tile != 2).collect()
    });
    assert!(
        without_last_planes(&one_missing, 1).is_none(),
        "a tile missing"
    );
    // Not a codestream at all, or one cut short.
    assert!(without_last_planes(b"not a codestream", 1).is_none());
    let cs = planes_fixture(RPCL_LOSSY);
    for cut in [3, 100, cs.len() / 2, cs.len() - 3] {
        assert!(without_last_planes(&cs[..cut], 1).is_none(), "cut at {cut}");
    }
    // A last tile-part (Psot 0: to the end) cut inside its SOT.
    let sot = cs.windows(2).position(|w| w == [0xFF, 0x90]).unwrap();
    let mut short = cs[..sot + 10].to_vec();
    short[sot + 6..sot + 10].copy_from_slice(&[0; 4]);
    short.extend_from_slice(&[0xFF, 0xD9]);
    assert!(without_last_planes(&short, 1).is_none());
    // Any byte changed, of a single tile or of tiles: an answer or a refusal, never a panic.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for good in [&cs, &tiled] {
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bad = good.clone();
            let at = (seed % bad.len() as u64) as usize;
            bad[at] ^= (seed >> 32) as u8 | 1;
            let _ = without_last_planes(&bad, 1);
        }
    }
}

/// `file` rewritten with its tile-parts interleaved by resolution, and whether their order was
/// already that.
fn interleaved(file: &[u8]) -> (Vec<u8>, bool) {
    let rewrite = rewrite(file).unwrap();
    let out = rewrite.apply(file).unwrap();
    assert_eq!(out.len() as u64, rewrite.len());
    (out, rewrite.order_unchanged)
}

/// [`interleave`] as a caller that has the whole file would call it.
fn rewrite(file: &[u8]) -> Result<Interleaved, InterleaveError> {
    let idx = index(file);
    let header = parse_like_a_caller(file);
    let main = &file[idx.main_header.start as usize..idx.main_header.end as usize];
    interleave(&header, &idx, main, file.len() as u64)
}

/// Interleaved, a tiled file's tile-parts of every reduce are one range, found from its TLM
/// alone; it decodes to the pixels of the original, whole and at each reduce, and partially.
#[test]
fn interleaved_files_read_every_reduce_in_one_range_and_decode_the_same() {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, path, tiled) in [
        ("tiled, TLM", tiled_tlm(), true),
        ("tiled, no TLM", tiled_no_tlm(), true),
        ("RLCP, PLT, 2 layers", rlcp(), true),
        ("single tile, raw", raw_j2k(), false),
    ] {
        let file = read(&path);
        let (out, already) = interleaved(&file);
        assert_eq!(already, !tiled, "{name}");
        let header = parse_like_a_caller(&out);
        let by_tlm = Jp2Index::from_header(&header).unwrap();
        let (walked, _) = walk(&out, &header);
        assert_eq!(by_tlm.tile_parts, walked, "{name}: TLM and SOTs agree");
        let order: Vec<_> = by_tlm
            .tile_parts
            .iter()
            .map(|tp| (tp.part, tp.tile))
            .collect();
        assert!(order.is_sorted(), "{name}: by resolution, then tile");
        assert_eq!(by_tlm.tile_parts.len(), index(&file).tile_parts.len());
        for d in 0..=by_tlm.levels {
            let before = index(&file).plan(d, 0).unwrap().ranges.len();
            let after = by_tlm.plan(d, 0).unwrap().ranges;
            assert_eq!(
                after.len(),
                1,
                "{name}, reduce {d}: {after:?} ({before} before)"
            );
        }
        let out_path = dir.path().join(format!(
            "{}.{}",
            name.replace([' ', ','], ""),
            path.extension().unwrap().to_str().unwrap()
        ));
        std::fs::write(&out_path, &out).unwrap();
        for d in [0, 2] {
            assert!(
                decode(&path, d, dir.path(), "original")
                    == decode(&out_path, d, dir.path(), "interleaved"),
                "{name}, reduce {d}: pixels differ"
            );
        }
        check_partial_decodes(&format!("{name}, interleaved"), &out_path, &[1, 3]);
        assert_eq!(
            interleaved(&out).0,
            out,
            "{name}: a second rewrite changes nothing"
        );
    }
}

/// Boxes after the codestream (XML metadata, say) are kept, after the rewritten `jp2c`.
#[test]
fn interleaving_keeps_the_boxes_after_the_codestream() {
    if !have_tools() {
        return;
    }
    let mut file = read(&tiled_tlm());
    let xml = b"<meta>kept</meta>";
    file.extend_from_slice(&(8 + xml.len() as u32).to_be_bytes());
    file.extend_from_slice(b"xml ");
    file.extend_from_slice(xml);
    let (out, _) = interleaved(&file);
    assert!(out.ends_with(xml));
    let header = parse_like_a_caller(&out);
    let boxes = header.jp2.as_ref().unwrap();
    assert_eq!(
        boxes.jp2c_end,
        Some(out.len() as u64 - 8 - xml.len() as u64)
    );
    assert_eq!(
        Jp2Index::from_header(&header).unwrap().tile_parts.len(),
        index(&file).tile_parts.len()
    );
}

/// Only a file with a tile-part per resolution can be interleaved; others are refused whole.
#[test]
fn interleaving_refuses_files_not_split_by_resolution() {
    if !have_tools() {
        return;
    }
    for (name, file) in [
        ("LRCP", read(&lrcp())),
        ("a tile-part per tile", planes_fixture(TILED_LOSSY)),
    ] {
        let err = rewrite(&file).unwrap_err();
        assert!(matches!(err, InterleaveError::Layout(_)), "{name}: {err}");
    }
}

/// A `jp2c` box may give its length as 0 ("to the end of the file") or in 64 bits: the rewrite
/// reads either and writes the same file as from the usual 32-bit length.
#[test]
fn interleaving_reads_every_form_of_the_codestream_box() {
    if !have_tools() {
        return;
    }
    let file = read(&tiled_tlm());
    let start = parse_like_a_caller(&file).jp2.unwrap().jp2c_start as usize;
    assert_eq!(&file[start + 4..start + 8], b"jp2c");
    let (before, codestream) = (&file[..start], &file[start + 8..]);
    let boxed = |header: &[&[u8]]| -> Vec<u8> {
        let mut f = before.to_vec();
        header.iter().for_each(|h| f.extend_from_slice(h));
        f.extend_from_slice(codestream);
        f
    };
    let long = (codestream.len() as u64 + 16).to_be_bytes();
    let to_the_end = boxed(&[&0u32.to_be_bytes(), b"jp2c"]);
    let with_xl = boxed(&[&1u32.to_be_bytes(), b"jp2c", &long]);
    let (reference, _) = interleaved(&file);
    for (name, variant) in [("LBox 0", to_the_end), ("XLBox", with_xl)] {
        assert!(interleaved(&variant).0 == reference, "{name}");
    }
}
