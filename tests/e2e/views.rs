//! Small views from byte ranges (`byte_range`) and info.json from the header index (`info`),
//! against a real S3 server, with JP2s made by `opj_compress` and pixels checked against
//! `opj_decompress`.

use crate::harness::{get, Response, Tessera};
use crate::images::{htj2k_jp2, jp2_with, opj_decode};
use crate::s3::S3Server;
use std::path::Path;

/// Single tile, RPCL, tile-parts by resolution, TLM: the layout read partially.
pub fn rpcl(w: u32, h: u32) -> std::path::PathBuf {
    jp2_with(
        w,
        h,
        &["-p", "RPCL", "-TP", "R", "-TLM", "-n", "6", "-r", "10"],
    )
}

pub fn config(s3: &S3Server, extra: &str) -> String {
    format!(
        r#"origins:
{origin}{extra}routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: masters, key: "{{image}}" }} }}
  - name: info-v2
    match: {{ path: "/iiif2/{{image}}/info.json" }}
    handler: {{ info: {{ origin: masters, key: "{{image}}", version: 2 }} }}
  - name: base
    match: {{ path: "/iiif/{{image}}" }}
    handler: {{ info: {{ origin: masters, key: "{{image}}" }} }}
  - name: small
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ byte_range: {{ origin: masters, key: "{{image}}", max_pixels: 250000, otherwise: tiles }} }}
  - name: tiles
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ respond: {{ status: 299, body: "tiles" }} }}
"#,
        origin = s3.origin_yaml("masters"),
    )
}

pub fn png_pixels(body: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(body));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

pub fn ranged_bytes(s3: &S3Server, key: &str) -> u64 {
    s3.gets_for(key)
        .iter()
        .map(|g| {
            let r = g.range.as_deref().expect("only ranged GETs");
            let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
            b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
        })
        .sum()
}

#[test]
fn small_full_views_read_a_few_ranges_and_match_opj_decompress() {
    let s3 = S3Server::start();
    let file = rpcl(2000, 1500);
    s3.put_file("big", &file);
    let t = Tessera::start(&config(&s3, ""));

    full_250_is_opj_decompress_r3(&t, &s3, "big", &file);
    assert!(s3.gets_for("big").iter().all(|g| g.range.is_some()));

    // A confined size: the exact IIIF size, a JPEG, with caching headers.
    let r = t.get("/iiif/big/full/!200,200/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert!(r.body.starts_with(&[0xFF, 0xD8]));
    assert!(r.header("link").unwrap().contains("level2.json"));
    assert!(r.header("cache-control").is_some());
    let etag = r.header("etag").expect("an ETag").to_string();
    let again = get("/iiif/big/full/!200,200/0/default.jpg")
        .header("If-None-Match", &etag)
        .send(t.port);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    // Rotation and quality, PNG to check the size after rotation.
    let r = t.get("/iiif/big/full/!200,200/90/gray.png");
    assert_eq!(r.status, 200, "{}", r.text());
    let (w, h, px) = png_pixels(&r.body);
    assert_eq!((w, h), (150, 200));
    assert_eq!(px.len(), 150 * 200, "gray has one channel");
}

/// An HTJ2K master written as the README's recipe says (Grok: RPCL, tile-parts by resolution,
/// TLM) is read partially as a classic one is, and decoded as `opj_decompress` decodes it.
#[test]
fn an_htj2k_master_made_by_the_recipe_is_read_partially() {
    let s3 = S3Server::start();
    let file = htj2k_jp2(2000, 1500, 6);
    s3.put_file("ht", &file);
    let t = Tessera::start(&config(&s3, ""));

    full_250_is_opj_decompress_r3(&t, &s3, "ht", &file);
}

/// `full/250,` of a 2000×1500 master under `key`: 250×188 is the image at reduce 3, decoded, not
/// resized, so the pixels are exactly `opj_decompress -r 3` of the whole file; and under a tenth
/// of the file was read for it.
fn full_250_is_opj_decompress_r3(t: &Tessera, s3: &S3Server, key: &str, file: &std::path::Path) {
    let r = t.get(&format!("/iiif/{key}/full/250,/0/default.png"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/png"));
    let (w, h, pixels) = png_pixels(&r.body);
    let (rw, rh, reference) = opj_decode(file, 3);
    assert_eq!((w, h), (rw, rh));
    assert!(
        pixels == reference,
        "pixels differ from opj_decompress -r 3"
    );
    let size = std::fs::metadata(file).unwrap().len();
    let read = ranged_bytes(s3, key);
    assert!(read * 10 < size, "read {read} of {size} bytes");
}

/// With `skip_last_bit_planes: 1`, a small view of a lossless master (every bit-plane holds
/// bits) is decoded without each code-block's last one: close to `opj_decompress`'s pixels, not
/// equal to them, read from the same few ranges, and counted.
#[test]
fn a_route_that_skips_the_last_bit_plane_answers_close_to_the_exact_view() {
    let s3 = S3Server::start();
    let file = jp2_with(2000, 1500, &["-p", "RPCL", "-TP", "R", "-TLM", "-n", "6"]);
    s3.put_file("lossless", &file);
    let exact_route = "routes:\n  - name: exact\n    match: { path: \"/exact/{image}/{iiif*}\" }\n    handler: { byte_range: { origin: masters, key: \"{image}\" } }\n";
    let yaml = skipping_config(&s3).replace("routes:\n", exact_route);
    let t = Tessera::start(&yaml);

    let (r, exact) = view_without_last_plane(&t, "lossless", &file);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(ranged_bytes(&s3, "lossless") * 10 < size);
    assert_eq!(
        t.metric("tessera_byte_range_planes_skipped_total", &[]),
        1.0
    );
    // The exact answer is another one, with another tag: a cache never takes one for the other.
    let exact_answer = t.get("/exact/lossless/full/250,/0/default.png");
    assert_eq!(png_pixels(&exact_answer.body).2, exact);
    assert_ne!(exact_answer.header("etag"), r.header("etag"));
}

/// The views route with `skip_last_bit_planes: 1`.
fn skipping_config(s3: &S3Server) -> String {
    config(s3, "").replace(
        "max_pixels: 250000, otherwise: tiles",
        "max_pixels: 250000, otherwise: tiles, skip_last_bit_planes: 1",
    )
}

/// `full/250,` of `image` (the master `file`) from a route that skips the last bit-plane: close
/// to `opj_decompress`'s pixels at reduce 3, not equal to them. The answer, and those pixels.
fn view_without_last_plane(t: &Tessera, image: &str, file: &Path) -> (Response, Vec<u8>) {
    let r = t.get(&format!("/iiif/{image}/full/250,/0/default.png"));
    assert_eq!(r.status, 200, "{}", r.text());
    let (w, h, pixels) = png_pixels(&r.body);
    let (rw, rh, exact) = opj_decode(file, 3);
    assert_eq!((w, h), (rw, rh));
    assert!(pixels != exact, "the last plane was decoded");
    let psnr = psnr_db(&pixels, &exact);
    assert!(psnr > 40.0, "{psnr:.1} dB");
    (r, exact)
}

/// How close two pictures' samples are, in dB PSNR.
fn psnr_db(ours: &[u8], theirs: &[u8]) -> f64 {
    let squared: f64 = ours
        .iter()
        .zip(theirs)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum();
    10.0 * (255.0f64.powi(2) * ours.len() as f64 / squared).log10()
}

/// The same for a tiled master: each tile's packet headers are rewritten.
#[test]
fn a_tiled_master_skips_the_last_bit_plane_too() {
    let s3 = S3Server::start();
    let file = jp2_with(
        2000,
        1500,
        &["-p", "RPCL", "-t", "512,512", "-TP", "R", "-TLM", "-n", "6"],
    );
    s3.put_file("tiled", &file);
    let t = Tessera::start(&skipping_config(&s3));
    view_without_last_plane(&t, "tiled", &file);
    assert_eq!(
        t.metric("tessera_byte_range_planes_skipped_total", &[]),
        1.0
    );
}

#[test]
fn requests_this_route_does_not_serve_go_to_the_otherwise_route() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    s3.put_file("lrcp", &jp2_with(800, 600, &["-p", "LRCP", "-n", "4"]));
    let t = Tessera::start(&config(&s3, ""));
    for path in [
        "/iiif/big/0,0,100,100/100,/0/default.jpg", // a region
        "/iiif/big/full/max/0/default.jpg",         // over max_pixels
        "/iiif/big/full/100,/45/default.jpg",       // a rotation we do not do
        "/iiif/lrcp/full/100,/0/default.jpg",       // a layout we cannot read partially
    ] {
        let r = t.get(path);
        assert_eq!((r.status, r.text().trim()), (299, "tiles"), "{path}");
    }
    assert_eq!(
        t.metric(
            "tessera_requests_total",
            &[("route", "tiles"), ("status", "299")]
        ),
        4.0
    );
}

#[test]
fn bad_requests_missing_and_corrupt_images() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        junk.path(),
        b"this is not a JPEG 2000 file at all, just text",
    )
    .unwrap();
    s3.put_file("junk", junk.path());
    // A JPEG 2000 cut inside its header: a JP2, but not a readable one.
    let cut = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cut.path(), &std::fs::read(rpcl(2000, 1500)).unwrap()[..120]).unwrap();
    s3.put_file("cut", cut.path());
    let t = Tessera::start(&config(&s3, ""));
    for (path, status) in [
        ("/iiif/big/full/!200,200/0/default.tif", 299), // format we do not write: handed on
        ("/iiif/big/full/0,/0/default.jpg", 400),
        ("/iiif/big/full/!200,200/0/sepia.jpg", 400),
        ("/iiif/big/full/300,/0/default", 400),
        ("/iiif/nothing/full/100,/0/default.jpg", 404),
        ("/iiif/nothing/info.json", 404),
        // Not a JPEG 2000 file at all: unsupported, with the reason; a broken one: 502.
        ("/iiif/junk/full/100,/0/default.jpg", 415),
        ("/iiif/junk/info.json", 415),
        ("/iiif/cut/full/100,/0/default.jpg", 502),
        ("/iiif/cut/info.json", 502),
    ] {
        let r = t.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    assert!(t
        .get("/iiif/junk/info.json")
        .text()
        .contains("JPEG 2000, JPEG, PNG and TIFF masters are served"));
    assert!(t.wait_log("cannot read the image header"), "{}", t.log());
    assert!(t.wait_log("image not served"), "{}", t.log());
    assert!(
        t.log().contains("\"key\":\"cut\"") && t.log().contains("\"key\":\"junk\""),
        "the log names the object"
    );
}

#[test]
fn info_json_comes_from_the_header_index() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    s3.put_file(
        "tiled",
        &jp2_with(
            1000,
            700,
            &["-p", "RPCL", "-TP", "R", "-t", "256,256", "-n", "4"],
        ),
    );
    let index_dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "image_index: {{ dir: \"{}\" }}\n",
        index_dir.path().display()
    );
    let t = Tessera::start(&config(&s3, &extra));

    let r = get("/iiif/big/info.json")
        .header("Host", "images.example.org")
        .send(t.port);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["id"], "http://images.example.org/iiif/big");
    assert_eq!(info["type"], "ImageService3");
    assert_eq!(
        (info["width"].as_u64(), info["height"].as_u64()),
        (Some(2000), Some(1500))
    );
    assert_eq!(info["profile"], "level2");
    assert_eq!(info["tiles"][0]["width"], 512);
    assert_eq!(
        info["tiles"][0]["scaleFactors"].as_array().unwrap().len(),
        6
    );
    assert!(!info["sizes"].as_array().unwrap().is_empty());

    let tiled: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif2/tiled/info.json").body).unwrap();
    assert_eq!(tiled["@id"], "http://localhost/iiif2/tiled");
    assert_eq!(tiled["tiles"][0]["width"], 256);
    assert_eq!(tiled["protocol"], "http://iiif.io/api/image");

    // The base URI redirects to info.json.
    let r = t.get("/iiif/big");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("http://localhost/iiif/big/info.json")
    );

    // The index is read once, kept in memory and on disk: a restart reads nothing again.
    let gets = s3.gets_for("big").len();
    assert!(t.get("/iiif/big/info.json").status == 200);
    assert_eq!(s3.gets_for("big").len(), gets);
    assert!(std::fs::read_dir(index_dir.path()).unwrap().count() >= 2);
    drop(t);
    let t = Tessera::start(&config(&s3, &extra));
    assert_eq!(t.get("/iiif/big/info.json").status, 200);
    assert_eq!(
        s3.gets_for("big").len(),
        gets,
        "the restarted Tessera read the header again"
    );
}

#[test]
fn render_decodes_regions_from_the_hot_cache_like_opj_decompress() {
    use crate::images::opj_decode_region;
    let s3 = S3Server::start();
    let file = jp2_with(1000, 700, &["-p", "RPCL", "-t", "256,256", "-n", "4"]);
    s3.put_file("tiled", &file);
    let cache = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n{}hot_cache: {{ dir: \"{}\", capacity: 1GiB }}\nroutes:\n  - name: render\n    match: {{ path: \"/iiif/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: masters, key: \"{{image}}\", max_pixels: 1000000 }} }}\n",
        s3.origin_yaml("masters"),
        cache.path().display()
    );
    let t = Tessera::start(&yaml);
    // (request, reduce, region): decoded at exactly the requested size, so no resizing.
    for (iiif, reduce, region) in [
        (
            "256,256,256,256/256,256/0/default.png",
            0,
            (256, 256, 512, 512),
        ),
        (
            "100,50,300,200/300,200/0/default.png",
            0,
            (100, 50, 400, 250),
        ),
        ("0,0,512,512/128,128/0/default.png", 2, (0, 0, 512, 512)),
    ] {
        let r = t.get(&format!("/iiif/tiled/{iiif}"));
        assert_eq!(r.status, 200, "{iiif}: {}", r.text());
        let (w, h, px) = png_pixels(&r.body);
        let (rw, rh, reference) = opj_decode_region(&file, reduce, Some(region));
        assert_eq!((w, h), (rw, rh), "{iiif}");
        assert!(px == reference, "{iiif}: pixels differ from opj_decompress");
    }
    // One copy into the hot cache for all of them.
    assert_eq!(
        s3.gets_for("tiled")
            .iter()
            .filter(|g| g.range.is_none())
            .count(),
        1
    );
    // Bounded work.
    let r = t.get("/iiif/tiled/full/^5000,5000/0/default.jpg");
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Regions of a few pixels anywhere in the image, even where they vanish at a reduced
/// resolution, are decoded at one where they do not: 200 with the right pixels, never 502.
#[test]
fn tiny_regions_are_served_wherever_they_are() {
    use crate::images::opj_decode_region;
    let s3 = S3Server::start();
    let file = jp2_with(1000, 700, &["-p", "RPCL", "-t", "256,256", "-n", "6"]);
    s3.put_file("tiled", &file);
    let cache = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n{}hot_cache: {{ dir: \"{}\", capacity: 1GiB }}\nroutes:\n  - name: render\n    match: {{ path: \"/iiif/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: masters, key: \"{{image}}\" }} }}\n",
        s3.origin_yaml("masters"),
        cache.path().display()
    );
    let t = Tessera::start(&yaml);
    for (x, y, w, h) in [
        (500, 500, 1, 1),
        (999, 699, 1, 1),
        (998, 0, 2, 2),
        (992, 0, 8, 8),
        (0, 0, 1, 1),
        (333, 17, 3, 5),
    ] {
        let iiif = format!("{x},{y},{w},{h}/{w},{h}/0/default.png");
        let r = t.get(&format!("/iiif/tiled/{iiif}"));
        assert_eq!(r.status, 200, "{iiif}: {}", r.text());
        let (pw, ph, px) = png_pixels(&r.body);
        let (rw, rh, reference) = opj_decode_region(&file, 0, Some((x, y, x + w, y + h)));
        assert_eq!((pw, ph), (rw, rh), "{iiif}");
        assert!(px == reference, "{iiif}: pixels differ from opj_decompress");
    }
    assert!(!t.log().contains("\"level\":\"ERROR\""), "{}", t.log());
}

/// The widest JPEG (65535 pixels) is the limit `render` serves and info.json advertises as
/// `maxWidth`: `max` of a wider image is that wide, an explicit wider size is 400 with the
/// reason, whatever the format. An identifier longer than a file name may be is no such image.
#[test]
fn format_limits_are_advertised_and_long_identifiers_404() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        jp2_with(70000, 8, &["-n", "3"]),
        dir.path().join("wide.jp2"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n  local: {{ dir: \"{}\" }}\nhot_cache: {{ dir: \"{}\", capacity: 1GiB }}\nroutes:\n  - name: info\n    match: {{ path: \"/iiif/{{image}}/info.json\" }}\n    handler: {{ info: {{ origin: local, key: \"{{image}}.jp2\" }} }}\n  - name: render\n    match: {{ path: \"/iiif/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: local, key: \"{{image}}.jp2\" }} }}\n",
        dir.path().display(),
        cache.path().display()
    );
    let t = Tessera::start(&yaml);
    let info: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif/wide/info.json").body).unwrap();
    assert_eq!(info["maxWidth"], 65535);
    let r = t.get("/iiif/wide/full/max/0/default.png");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(png_pixels(&r.body).0, 65535);
    for format in ["jpg", "png"] {
        let r = t.get(&format!("/iiif/wide/full/70000,/0/default.{format}"));
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("65535"), "{}", r.text());
    }

    let long = "x".repeat(300);
    for path in [
        format!("/iiif/{long}/info.json"),
        format!("/iiif/{long}/full/max/0/default.jpg"),
    ] {
        let r = t.get(&path);
        assert_eq!(r.status, 404, "{}", r.text());
    }
    assert!(!t.log().contains("\"level\":\"ERROR\""), "{}", t.log());
}

/// A decode that overruns `decode_timeout` answers 504 with a log line; a later request whose
/// decode fits the limit is served.
#[test]
fn decodes_over_the_time_limit_answer_504() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    let cache = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n{}hot_cache: {{ dir: \"{}\", capacity: 1GiB }}\nroutes:\n  - name: render\n    match: {{ path: \"/iiif/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: masters, key: \"{{image}}\", decode_timeout: 1ms }} }}\n  - name: patient\n    match: {{ path: \"/patient/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: masters, key: \"{{image}}\" }} }}\n",
        s3.origin_yaml("masters"),
        cache.path().display()
    );
    let t = Tessera::start(&yaml);
    // A full-resolution decode of 3 MP takes far longer than a millisecond.
    let r = t.get("/iiif/big/full/max/0/default.jpg");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t.wait_log("decoding the image timed out"), "{}", t.log());
    assert!(
        t.log().contains("\"key\":\"big\""),
        "the log names the object"
    );
    let r = t.get("/patient/big/full/max/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
}

/// With `image_index.beside_image`, the index is written as an object beside the image, and a
/// second Tessera (a fleet member, or a restart without an index directory) reads it instead
/// of the image's header.
#[test]
fn indexes_kept_beside_the_image_are_shared() {
    let s3 = S3Server::start();
    s3.put_file("big", &rpcl(2000, 1500));
    let extra = "image_index: { beside_image: true }\n";
    let first = Tessera::start(&config(&s3, extra));
    assert_eq!(first.get("/iiif/big/info.json").status, 200);
    let puts: Vec<_> = s3
        .requests_for("big.tessera-index.json")
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1, "{:?}", s3.all_requests());
    let image_reads = s3.requests_for("big").len();

    let second = Tessera::start(&config(&s3, extra));
    let r = second.get("/iiif/big/info.json");
    assert_eq!(r.status, 200);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["width"], 2000);
    assert_eq!(
        s3.requests_for("big").len(),
        image_reads,
        "the header was read again"
    );
    // And the small view still decodes from the ranges the shared index points to.
    assert_eq!(
        second.get("/iiif/big/full/!100,100/0/default.jpg").status,
        200
    );
}
