//! Views of images of tens of megapixels in 512 tiles, with and without TLM markers: the sizes
//! and layouts archives hold. Without TLM the header index is built by walking the SOT markers
//! with ranged reads; either way a small view reads a small share of the file and its pixels
//! equal `opj_decompress -r d` of the whole file.

use crate::harness::Tessera;
use crate::images::{opj_decode, photo_like_jp2_with};
use crate::s3::S3Server;
use crate::views::{config, png_pixels, ranged_bytes};

/// 8192×4096 in 256-pixel tiles: 512 tiles, RPCL, tile-parts by resolution, 6 resolutions,
/// lossless from a noisy picture so that tiles are as large as a photograph's (about 100 KB):
/// the ranges a small view needs are then far enough apart to be read separately. (With tiles
/// of a few KB the planner rightly reads one span covering all of them: one GET of a few MB
/// is faster than hundreds of small ones.)
fn tiled_33mp(tlm: bool) -> std::path::PathBuf {
    let mut args = vec!["-p", "RPCL", "-t", "256,256", "-TP", "R", "-n", "6"];
    if tlm {
        args.push("-TLM");
    }
    photo_like_jp2_with(8192, 4096, &args)
}

fn small_view_of(tlm: bool) {
    let s3 = S3Server::start();
    let file = tiled_33mp(tlm);
    let size = std::fs::metadata(&file).unwrap().len();
    s3.put_file("big", &file);
    let t = Tessera::start(&config(&s3, ""));

    // The index first (for the no-TLM file, the SOT walk), then the view on its own.
    let info = t.get("/iiif/big/info.json");
    assert_eq!(info.status, 200, "{}", info.text());
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(8192), Some(4096))
    );
    let index_reads = s3.gets_for("big").len();
    let index_bytes = ranged_bytes(&s3, "big");

    // 512×256 is the image at reduce 4: pixels exactly those of opj_decompress -r 4.
    let r = t.get("/iiif/big/full/512,/0/default.png");
    assert_eq!(r.status, 200, "{}", r.text());
    let (w, h, pixels) = png_pixels(&r.body);
    let (rw, rh, reference) = opj_decode(&file, 4);
    assert_eq!((w, h), (rw, rh));
    assert!(
        pixels == reference,
        "pixels differ from opj_decompress -r 4"
    );

    let view_bytes = ranged_bytes(&s3, "big") - index_bytes;
    let view_reads = s3.gets_for("big").len() - index_reads;
    eprintln!(
        "33 MP, 512 tiles, TLM {tlm}: file {size} B; index {index_reads} reads, {index_bytes} B; \
         view 512x256 {view_reads} reads, {view_bytes} B ({:.1}%)",
        view_bytes as f64 * 100.0 / size as f64
    );
    assert!(
        view_bytes * 10 < size,
        "the view read {view_bytes} of {size} bytes"
    );
    assert!(
        s3.gets_for("big").iter().all(|g| g.range.is_some()),
        "only ranged reads"
    );
    if tlm {
        assert!(
            index_reads <= 2,
            "a header with TLM is one or two reads, not {index_reads}"
        );
    } else {
        // 3072 tile-parts; the walk reads windows, finding the small ones several at a time.
        assert!(
            index_reads < 3072,
            "{index_reads} reads to walk 3072 tile-parts"
        );
    }
}

#[test]
fn tiled_33_megapixels_with_tlm() {
    small_view_of(true);
}

#[test]
fn tiled_33_megapixels_without_tlm_walks_the_tile_parts() {
    small_view_of(false);
}
