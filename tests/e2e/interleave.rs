//! `tessera interleave`: a tiled master rewritten by resolution across tiles is one ranged GET
//! for a small view (it was one per tile), gives `byte_range` and the real iipsrv the same
//! pixels as the original, and files it cannot rewrite are refused and left alone. A master
//! replaced by its interleaved copy under a running Tessera is indexed again at its next view
//! and served; bytes that do not fit even a fresh index are 502.

use crate::harness::{tessera_bin, Tessera};
use crate::iipsrv::{direct, start_iipsrv};
use crate::images::{jp2_with, photo_like_jp2_with};
use crate::s3::S3Server;
use crate::views::{config, png_pixels};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 2000×1500 in 512² tiles (12), a tile-part per resolution (6), TLM: written tile by tile,
/// from a picture that compresses like a photograph (tiles far enough apart to be read apart).
fn tile_major() -> PathBuf {
    photo_like_jp2_with(
        2000,
        1500,
        &["-p", "RPCL", "-t", "512,512", "-TP", "R", "-TLM", "-n", "6"],
    )
}

fn interleave(input: &Path, output: &Path) -> Output {
    Command::new(tessera_bin())
        .args(["interleave".as_ref(), input.as_os_str(), output.as_os_str()])
        .output()
        .unwrap()
}

fn succeeded(run: &Output) {
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `tessera interleave input out` exits 1 with `reason` on stderr.
fn refused(input: &Path, out: &Path, reason: &str) {
    let run = interleave(input, out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
}

fn entries(dir: &Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The file interleaved into `dir`.
fn interleaved(file: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("interleaved.jp2");
    let run = interleave(file, &out);
    succeeded(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("12 tiles, 72 tile-parts by resolution"),
        "{stdout}"
    );
    out
}

/// Ranged GETs of `key` while `view` is answered (its index already built).
fn gets_for_view(t: &Tessera, s3: &S3Server, key: &str, view: &str) -> (usize, Vec<u8>) {
    assert_eq!(t.get(&format!("/iiif/{key}/info.json")).status, 200);
    let before = s3.gets_for(key).len();
    let r = t.get(&format!("/iiif/{key}/{view}"));
    assert_eq!(r.status, 200, "{key} {view}: {}", r.text());
    (s3.gets_for(key).len() - before, r.body)
}

#[test]
fn a_small_view_of_an_interleaved_master_is_one_read_and_the_same_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let original = tile_major();
    let rewritten = interleaved(&original, dir.path());
    let s3 = S3Server::start();
    s3.put_file("tile-major", &original);
    s3.put_file("interleaved", &rewritten);
    let t = Tessera::start(&config(&s3, ""));
    for view in ["full/!200,200/0/default.png", "full/500,/0/default.png"] {
        let (before, theirs) = gets_for_view(&t, &s3, "tile-major", view);
        let (after, ours) = gets_for_view(&t, &s3, "interleaved", view);
        assert_eq!(
            after, 1,
            "{view}: one ranged GET ({before} for the original)"
        );
        assert!(before > 1, "{view}: the original reads a range per tile");
        assert!(
            png_pixels(&ours) == png_pixels(&theirs),
            "{view}: pixels differ"
        );
    }
}

#[test]
fn iipsrv_serves_an_interleaved_master_as_it_serves_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let original = tile_major();
    let rewritten = interleaved(&original, dir.path());
    let iip = start_iipsrv();
    for iiif in [
        "0,0,512,512/512,/0/default.jpg",
        "1000,500,700,600/350,/0/default.jpg",
        "full/250,/0/default.jpg",
        "full/max/0/gray.jpg",
    ] {
        let (status, theirs) = direct(iip.port, &original, iiif);
        let (rewritten_status, ours) = direct(iip.port, &rewritten, iiif);
        assert_eq!((status, rewritten_status), (200, 200), "{iiif}");
        assert!(ours == theirs, "{iiif}: iipsrv's bytes differ");
    }
}

#[test]
fn a_file_it_cannot_interleave_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A tile-part per tile: nothing says where a tile's resolutions start.
    let whole_tiles = jp2_with(600, 400, &["-p", "RPCL", "-t", "256,256"]);
    let not_an_image = dir.path().join("notes.jp2");
    std::fs::write(&not_an_image, b"plain text, not a JPEG 2000 file").unwrap();
    // Its TLM promises a tile-part where there is none.
    let lying = dir.path().join("lying.jp2");
    std::fs::write(&lying, with_second_sot_broken(&tile_major())).unwrap();
    for (input, reason) in [
        (whole_tiles.as_path(), "tile-parts not split by resolution"),
        (not_an_image.as_path(), "not an image format"),
        (lying.as_path(), "no SOT where the index has one"),
    ] {
        let out = dir.path().join("out.jp2");
        refused(input, &out, reason);
        assert!(!out.exists());
    }
    let left = entries(dir.path());
    assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
}

/// A rewrite that cannot be put in place (OUT is a directory) fails and leaves nothing behind.
#[test]
fn a_rewrite_that_cannot_be_put_in_place_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jp2");
    std::fs::create_dir(&out).unwrap();
    refused(&tile_major(), &out, "renaming");
    let left = entries(dir.path());
    assert_eq!(left.len(), 1, "only the directory: {left:?}");
}

#[test]
fn interleaving_in_place_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.jp2");
    std::fs::copy(tile_major(), &file).unwrap();
    let before = std::fs::read(&file).unwrap();
    succeeded(&interleave(&file, &file));
    let after = std::fs::read(&file).unwrap();
    assert_ne!(after, before);
    // Interleaved again: the same bytes.
    assert!(interleave(&file, &file).status.success());
    assert_eq!(std::fs::read(&file).unwrap(), after);
    assert_eq!(entries(dir.path()).len(), 1);
}

/// A master replaced in S3 by its interleaved copy while Tessera holds its index: the first view
/// after finds the bytes do not fit the index, indexes the image again and answers, with the
/// same pixels; nobody sees an error.
#[test]
fn a_master_replaced_under_its_index_is_indexed_again_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let original = tile_major();
    let rewritten = interleaved(&original, dir.path());
    let s3 = S3Server::start();
    s3.put_file("master", &original);
    let t = Tessera::start(&config(&s3, ""));
    let view = "/iiif/master/full/!200,200/0/default.png";
    let before = t.get(view);
    assert_eq!(before.status, 200, "{}", before.text());
    s3.put_file("master", &rewritten);
    let after = t.get(view);
    assert_eq!(after.status, 200, "{}", after.text());
    assert!(png_pixels(&after.body) == png_pixels(&before.body));
    assert!(t.wait_log("indexing it again"), "{}", t.log());
    let built = t.metric("tessera_index_lookups_total", &[("source", "built")]);
    assert_eq!(
        built, 2.0,
        "indexed once, and once more after the replacement"
    );
    // From the fresh index: one ranged GET.
    let gets = s3.gets_for("master").len();
    assert_eq!(
        t.get("/iiif/master/full/!100,100/0/default.png").status,
        200
    );
    assert_eq!(s3.gets_for("master").len(), gets + 1);
}

/// A file whose tile-parts do not fit its own header is not a replaced master: indexed again
/// to the same index, it is answered 502 without being read a second time.
#[test]
fn bytes_that_do_not_fit_an_unchanged_header_are_502_after_one_more_look() {
    let file = with_second_sot_broken(&crate::views::rpcl(800, 600));
    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(broken.path(), &file).unwrap();
    let s3 = S3Server::start();
    s3.put_file("broken", broken.path());
    let t = Tessera::start(&config(&s3, ""));
    assert_eq!(t.get("/iiif/broken/info.json").status, 200);
    let gets = s3.gets_for("broken").len();
    let r = t.get("/iiif/broken/full/!200,200/0/default.png");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        s3.gets_for("broken").len(),
        gets + 2,
        "one fetch for the view and one header read, no second fetch"
    );
}

/// `path`'s bytes with the second tile-part's SOT marker overwritten (the first ends the main
/// header, which must stay readable): the header and its TLM promise a tile-part that is not
/// there.
fn with_second_sot_broken(path: &Path) -> Vec<u8> {
    let mut file = std::fs::read(path).unwrap();
    let sot = b"\xff\x90\x00\x0a";
    let first = file.windows(4).position(|w| w == sot).unwrap();
    let second = first + 4 + file[first + 4..].windows(4).position(|w| w == sot).unwrap();
    file[second..second + 4].copy_from_slice(b"junk");
    file
}

/// `render` (OpenJPEG 2.5.3 in process, which seeks to the tile-parts a region needs by the
/// TLM) decodes regions of an interleaved master to the bytes it decodes from the original.
#[test]
fn render_serves_an_interleaved_master_as_it_serves_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let masters = dir.path().join("masters");
    std::fs::create_dir(&masters).unwrap();
    std::fs::copy(tile_major(), masters.join("original.jp2")).unwrap();
    succeeded(&interleave(
        &masters.join("original.jp2"),
        &masters.join("interleaved.jp2"),
    ));
    let t = crate::masters::serve(&masters, &dir.path().join("cache"), 64_000_000);
    for iiif in [
        "0,0,512,512/512,/0/default.png",
        "400,300,900,700/450,/0/default.png",
        "1536,1024,464,476/max/0/default.png",
        "full/600,/0/default.png",
    ] {
        let theirs = t.get(&format!("/iiif/original.jp2/{iiif}"));
        let ours = t.get(&format!("/iiif/interleaved.jp2/{iiif}"));
        assert_eq!(
            (theirs.status, ours.status),
            (200, 200),
            "{iiif}: {}",
            ours.text()
        );
        assert!(
            png_pixels(&ours.body) == png_pixels(&theirs.body),
            "{iiif}: pixels differ"
        );
    }
}

/// A master replaced by a smaller file: the ranges its old index plans lie past the new end
/// (S3 answers 416), which is the same news, and the next view is the new image's.
#[test]
fn a_master_replaced_by_a_smaller_file_is_indexed_again_and_served() {
    let s3 = S3Server::start();
    s3.put_file("master", &tile_major());
    let t = Tessera::start(&config(&s3, ""));
    let view = "/iiif/master/full/!200,200/0/default.png";
    assert_eq!(t.get(view).status, 200);
    s3.put_file("master", &crate::views::rpcl(300, 200));
    let after = t.get(view);
    assert_eq!(after.status, 200, "{}", after.text());
    let (width, height, _) = png_pixels(&after.body);
    assert_eq!((width, height), (200, 133), "the new image's shape");
}
