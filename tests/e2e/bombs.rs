//! Files that lie about their size: a few kilobytes declaring gigapixels cost no more than a
//! normal image, because what an image declares is checked from its header before anything is
//! fetched or decoded.

use crate::harness::Tessera;
use crate::images::{declaring, jp2_with};
use std::time::{Duration, Instant};

#[test]
fn images_declaring_huge_sizes_are_refused_before_any_decode() {
    let small = jp2_with(64, 64, &["-n", "3"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        declaring(&small, 100_000, 100_000),
        dir.path().join("bomb.jp2"),
    )
    .unwrap();
    std::fs::copy(
        declaring(&small, 40_000, 40_000),
        dir.path().join("big.jp2"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n  local: {{ dir: \"{}\" }}\nhot_cache: {{ dir: \"{}\", capacity: 1GiB }}\nroutes:\n  - name: info\n    match: {{ path: \"/iiif/{{image}}/info.json\" }}\n    handler: {{ info: {{ origin: local, key: \"{{image}}.jp2\" }} }}\n  - name: small\n    match: {{ path: \"/small/{{image}}/{{iiif*}}\" }}\n    handler: {{ byte_range: {{ origin: local, key: \"{{image}}.jp2\" }} }}\n  - name: render\n    match: {{ path: \"/iiif/{{image}}/{{iiif*}}\" }}\n    handler: {{ render: {{ origin: local, key: \"{{image}}.jp2\" }} }}\n",
        dir.path().display(),
        cache.path().display()
    );
    let t = Tessera::start(&yaml);
    let started = Instant::now();
    for path in [
        "/iiif/bomb/info.json",
        "/iiif/bomb/0,0,256,256/256,/0/default.jpg",
        "/iiif/bomb/full/max/0/default.jpg",
        "/small/bomb/full/200,/0/default.jpg",
    ] {
        let r = t.get(path);
        assert_eq!(r.status, 415, "{path}: {}", r.text());
        assert!(
            r.text().contains("max_image_pixels"),
            "{path}: {}",
            r.text()
        );
    }
    // Under the declared limit, but one tile of 40000×40000: a full-resolution region of it
    // is refused before the tile is decoded.
    let r = t.get("/iiif/big/0,0,256,256/256,/0/default.jpg");
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(r.text().contains("max_decode_pixels"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!t.log().contains("\"level\":\"ERROR\""), "{}", t.log());
}
