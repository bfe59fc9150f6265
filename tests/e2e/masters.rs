//! Masters other than JPEG 2000 — JPEG, PNG, and TIFF striped, tiled and pyramidal (made by
//! vips, as collections make them) — through `info` and `render`: the size and pyramid in
//! info.json, the right pixels for a region, and for a pyramid only the page an output needs.

use crate::harness::*;
use crate::views::png_pixels;
use std::path::Path;
use std::process::Command;
use tessera_render::{encode, Bitmap, Format};

const W: u32 = 1000;
const H: u32 = 700;

/// A picture whose every pixel tells where it is.
fn gradient() -> Bitmap {
    let mut pixels = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H {
        for x in 0..W {
            pixels.extend_from_slice(&[
                (x * 255 / W) as u8,
                (y * 255 / H) as u8,
                ((x ^ y) & 0xFF) as u8,
            ]);
        }
    }
    Bitmap {
        width: W,
        height: H,
        channels: 3,
        pixels,
    }
}

fn vips(args: &[&str]) {
    let ok = Command::new("vips")
        .args(args)
        .status()
        .expect("vips runs (scripts/deps.sh installs libvips-tools)")
        .success();
    assert!(ok, "vips {args:?}");
}

/// The folder: photo.jpg, drawing.png, striped.tif, tiled.tif, pyramid.tif (deflate) and
/// pyramid-jpeg.tif (JPEG-compressed tiles, the README's recipe).
fn masters(dir: &Path) {
    let picture = gradient();
    std::fs::write(
        dir.join("photo.jpg"),
        encode(&picture, Format::Jpeg, 95).unwrap(),
    )
    .unwrap();
    let png = dir.join("drawing.png");
    std::fs::write(&png, encode(&picture, Format::Png, 95).unwrap()).unwrap();
    let src = png.to_str().unwrap();
    // As collections make TIFFs: `vips tiffsave` with these options (the last is the README's
    // recipe, JPEG-compressed tiles).
    for (name, options) in [
        ("striped.tif", ""),
        ("tiled.tif", "--tile --tile-width 256 --tile-height 256"),
        (
            "pyramid.tif",
            "--tile --pyramid --compression deflate --tile-width 256 --tile-height 256",
        ),
        (
            "pyramid-jpeg.tif",
            "--tile --pyramid --compression jpeg --tile-width 256 --tile-height 256",
        ),
    ] {
        let out = dir.join(name);
        let mut args = vec!["tiffsave", src, out.to_str().unwrap()];
        args.extend(options.split_whitespace());
        vips(&args);
    }
}

/// `render` (and `info`) at /iiif/{image}/ over the folder `dir`, read in place.
pub fn serve(dir: &Path, cache: &Path, max_decode_pixels: u64) -> Tessera {
    Tessera::start(&format!(
        r#"origins: {{ folder: {{ dir: "{}" }} }}
hot_cache: {{ dir: "{}", capacity: 1GiB }}
routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: folder, key: "{{image}}" }} }}
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: folder, key: "{{image}}", max_decode_pixels: {max_decode_pixels} }} }}
"#,
        dir.display(),
        cache.display()
    ))
}

#[test]
fn jpeg_png_and_tiff_masters_are_served_with_the_right_pixels() {
    let dir = tempfile::tempdir().unwrap();
    masters(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let t = serve(dir.path(), cache.path(), 64_000_000);
    let picture = gradient();
    for (name, exact) in [
        ("photo.jpg", false),
        ("drawing.png", true),
        ("striped.tif", true),
        ("tiled.tif", true),
        ("pyramid.tif", true),
        ("pyramid-jpeg.tif", false),
    ] {
        let info = t.get(&format!("/iiif/{name}/info.json"));
        assert_eq!(info.status, 200, "{name}: {}", info.text());
        let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        assert_eq!(
            (info["width"].as_u64(), info["height"].as_u64()),
            (Some(1000), Some(700)),
            "{name}"
        );

        // A region at full resolution: the picture's own pixels.
        let (x, y, w, h) = (100u32, 200u32, 300u32, 150u32);
        let r = t.get(&format!("/iiif/{name}/{x},{y},{w},{h}/{w},/0/default.png"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let (pw, ph, px) = png_pixels(&r.body);
        assert_eq!((pw, ph), (w, h), "{name}");
        let (mut worst, mut total) = (0u8, 0u64);
        for row in 0..h {
            for col in 0..w {
                for c in 0..3 {
                    let want = picture.pixels[(((y + row) * W + x + col) * 3 + c) as usize];
                    let got = px[((row * w + col) * 3 + c) as usize];
                    worst = worst.max(want.abs_diff(got));
                    total += u64::from(want.abs_diff(got));
                }
            }
        }
        let mean = total as f64 / f64::from(w * h * 3);
        println!("{name}: mean error {mean:.2}, worst {worst}");
        if exact {
            assert_eq!(worst, 0, "{name}: a pixel is off by {worst}");
        } else {
            // JPEG compression: close on average (a wrong colour space would be off by ~100).
            assert!(mean < 4.0, "{name}: pixels are off by {mean:.1} on average");
        }

        // A small view and a tile as a viewer asks for them.
        for path in [
            "full/!200,200/0/default.jpg",
            "512,512,488,188/244,/0/default.jpg",
        ] {
            let r = t.get(&format!("/iiif/{name}/{path}"));
            assert_eq!(r.status, 200, "{name} {path}: {}", r.text());
        }
    }
    // The tiled TIFFs offer their tiles; the pyramid its pages as sizes and scale factors.
    let info: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif/pyramid.tif/info.json").body).unwrap();
    assert_eq!(info["tiles"][0]["width"], 256, "{info}");
    let factors = info["tiles"][0]["scaleFactors"].as_array().unwrap().len();
    assert!(factors >= 3, "{info}");
    assert!(
        info["sizes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["width"] == 500 && s["height"] == 350),
        "{info}"
    );
}

/// With too little room to decode a whole page of 1000×700, a small view of the pyramid is
/// still served (from its smaller page), a tile of any TIFF too (only the tiles or strips it
/// touches are read); the one-page files cannot be, and say why.
#[test]
fn a_small_view_of_a_pyramid_reads_a_small_page() {
    let dir = tempfile::tempdir().unwrap();
    masters(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let t = serve(dir.path(), cache.path(), 200_000);
    let r = t.get("/iiif/pyramid.tif/full/!250,250/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
    for name in ["striped.tif", "tiled.tif", "pyramid.tif"] {
        let r = t.get(&format!("/iiif/{name}/256,256,256,256/256,/0/default.jpg"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    for name in ["striped.tif", "photo.jpg", "drawing.png"] {
        let r = t.get(&format!("/iiif/{name}/full/!250,250/0/default.jpg"));
        assert_eq!(r.status, 501, "{name}: {}", r.text());
        assert!(r.text().contains("max_decode_pixels"), "{}", r.text());
    }
}

/// On a route with `cache:`, answers from these masters are kept like any other.
#[test]
fn answers_from_other_masters_are_kept_in_the_response_cache() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("photo.jpg"),
        encode(&gradient(), Format::Jpeg, 90).unwrap(),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&format!(
        r#"origins: {{ folder: {{ dir: "{}" }} }}
hot_cache: {{ dir: "{}", capacity: 1GiB }}
routes:
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    cache: {{}}
    handler: {{ render: {{ origin: folder, key: "{{image}}" }} }}
"#,
        dir.path().display(),
        cache.path().display()
    ));
    let path = "/iiif/photo.jpg/0,0,256,256/256,/0/default.jpg";
    let first = t.get(path);
    assert_eq!(first.status, 200, "{}", first.text());
    let second = t.get(path);
    assert_eq!(second.body, first.body);
    let kept = |outcome: &str| {
        t.metric(
            "tessera_cache_requests_total",
            &[("route", "render"), ("outcome", outcome)],
        )
    };
    assert_eq!((kept("miss"), kept("hit")), (1.0, 1.0));
}

/// A `dir` origin's files are read in place: nothing goes into the hot cache, even with one
/// configured and `prefetch` on. A file truncated while served fails its requests with 502 and
/// harms nothing else; whole again, it is served again.
#[test]
fn a_folder_is_read_in_place_and_a_file_cut_short_under_it_fails_only_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    masters(dir.path());
    let jp2 = std::fs::read(crate::images::jp2_with(
        1200,
        900,
        &["-t", "256,256", "-n", "4"],
    ))
    .unwrap();
    std::fs::write(dir.path().join("tiled.jp2"), &jp2).unwrap();
    let t = Tessera::start(&format!(
        r#"origins: {{ folder: {{ dir: "{}" }} }}
hot_cache: {{ dir: "{}", capacity: 1GiB }}
routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: folder, key: "{{image}}", prefetch: {{}} }} }}
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: folder, key: "{{image}}" }} }}
"#,
        dir.path().display(),
        cache.path().display()
    ));
    for image in ["tiled.jp2", "pyramid.tif", "photo.jpg"] {
        for path in [
            format!("/iiif/{image}/info.json"),
            format!("/iiif/{image}/0,0,256,256/256,/0/default.jpg"),
        ] {
            let r = t.get(&path);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
    }
    let copies: Vec<_> = walk(cache.path())
        .into_iter()
        .filter(|p| !p.ends_with("lock"))
        .collect();
    assert!(copies.is_empty(), "copied into the hot cache: {copies:?}");
    assert_eq!(t.metric("tessera_hot_cache_requests_total", &[]), 0.0);

    std::fs::write(dir.path().join("tiled.jp2"), &jp2[..jp2.len() / 3]).unwrap();
    let cut = t.get("/iiif/tiled.jp2/768,512,256,256/256,/0/default.jpg");
    assert_eq!(cut.status, 502, "{}", cut.text());
    let other = t.get("/iiif/photo.jpg/0,0,128,128/128,/0/default.jpg");
    assert_eq!(other.status, 200, "{}", other.text());
    std::fs::write(dir.path().join("tiled.jp2"), &jp2).unwrap();
    let whole = t.get("/iiif/tiled.jp2/768,512,256,256/256,/0/default.jpg");
    assert_eq!(whole.status, 200, "{}", whole.text());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
