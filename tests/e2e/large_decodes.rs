//! `render` decodes a large area (more than 4 MP at its resolution: `max`, a large `!w,h`) in
//! horizontal bands, so that the 32-bit samples OpenJPEG holds are one band's per core, not the
//! whole area's. The bands join seamlessly: the answer's pixels are those of `opj_decompress`
//! of the whole file, for a file of many tiles (bands of whole tile rows) and for a file of one
//! tile (bands cut anywhere), at full and at reduced resolution.

use crate::harness::{get, Tessera};
use crate::images::{jp2_with, opj_decode};
use crate::views::png_pixels;

/// `render` over the files `{image}{suffix}` of `dir`, at `/iiif/{image}/…`.
fn server(dir: &std::path::Path, suffix: &str) -> Tessera {
    Tessera::start(&format!(
        r#"origins: {{ folder: {{ dir: "{}" }} }}
routes:
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: folder, key: "{{image}}{suffix}" }} }}
"#,
        dir.display()
    ))
}

/// `request` of `image` (in `dir`) equals `opj_decompress -r reduce` of its file, pixel for pixel.
fn answers_as_opj(t: &Tessera, file: &std::path::Path, image: &str, request: &str, reduce: u8) {
    let r = get(&format!("/iiif/{image}/{request}")).send(t.port);
    assert_eq!(r.status, 200, "{image} {request}: {}", r.text());
    let (w, h, pixels) = png_pixels(&r.body);
    let (rw, rh, reference) = opj_decode(file, reduce);
    assert_eq!((w, h), (rw, rh), "{image} {request}");
    assert!(
        pixels == reference,
        "{image} {request}: pixels differ from opj_decompress -r {reduce}"
    );
}

#[test]
fn a_large_area_decoded_in_bands_is_the_whole_image() {
    let dir = tempfile::tempdir().unwrap();
    // 4.8 MP at full resolution: two bands (tile rows of 512 in the tiled file).
    let tiled = jp2_with(2400, 2000, &["-t", "512,512", "-n", "5"]);
    let single = jp2_with(2400, 2000, &["-n", "5"]);
    // 4.25 MP at reduce 1, one tile: bands of a reduced level.
    let reduced = jp2_with(4600, 3702, &["-n", "5"]);
    for (name, file) in [
        ("tiled", &tiled),
        ("single", &single),
        ("reduced", &reduced),
    ] {
        std::fs::copy(file, dir.path().join(format!("{name}.jp2"))).unwrap();
    }
    let t = server(dir.path(), ".jp2");
    answers_as_opj(&t, &tiled, "tiled", "full/max/0/default.png", 0);
    answers_as_opj(&t, &single, "single", "full/max/0/default.png", 0);
    answers_as_opj(&t, &reduced, "reduced", "full/2300,/0/default.png", 1);
}

/// An HTJ2K master (High-Throughput JPEG 2000, written by OpenJPH's `ojph_compress` as a bare
/// codestream): `render` reads it as any JPEG 2000, whole and by regions, with the pixels of
/// `opj_decompress`.
#[test]
fn an_htj2k_master_renders_like_any_jpeg_2000() {
    let dir = tempfile::tempdir().unwrap();
    let ppm = dir.path().join("src.ppm");
    std::fs::write(&ppm, crate::images::picture(1200, 800, true)).unwrap();
    let file = dir.path().join("ht.j2k");
    let out = std::process::Command::new("ojph_compress")
        .arg("-i")
        .arg(&ppm)
        .arg("-o")
        .arg(dir.path().join("ht.j2c"))
        .args(["-num_decomps", "4", "-tile_size", "{256,256}", "-prog_order", "RPCL"])
        .args(["-qstep", "0.002"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run ojph_compress ({e}); install Debian's openjph-tools (scripts/deps.sh does)")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(dir.path().join("ht.j2c"), &file).unwrap();
    let t = server(dir.path(), ".j2k");
    answers_as_opj(&t, &file, "ht", "full/max/0/default.png", 0);
    answers_as_opj(&t, &file, "ht", "full/300,/0/default.png", 2);
    let tile = get("/iiif/ht/256,256,256,256/256,/0/default.png").send(t.port);
    assert_eq!(tile.status, 200, "{}", tile.text());
    let (w, h, pixels) = png_pixels(&tile.body);
    let (rw, rh, reference) =
        crate::images::opj_decode_region(&file, 0, Some((256, 256, 512, 512)));
    assert_eq!((w, h), (rw, rh));
    assert!(
        pixels == reference,
        "a tile's pixels differ from opj_decompress"
    );
}
