//! What a viewer in a browser needs of the embedded default: CORS preflights and errors it can
//! read, ids and redirects with the URL the browser used behind a TLS-terminating proxy, and 404
//! for an identifier with an unescaped slash.

use crate::harness::*;

const VIEWER: &str = "https://viewer.example";

#[test]
fn preflights_are_answered_and_errors_carry_cors() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&embedded_default(cache.path()));
    for path in [
        "/iiif/sample/info.json",
        "/iiif/sample",
        "/iiif/sample/full/!400,400/0/default.jpg",
        "/iiif/sample/0,0,512,512/256,/0/default.jpg",
    ] {
        let r = request("OPTIONS", path)
            .header("Origin", VIEWER)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send(t.port);
        assert_eq!(r.status, 204, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("authorization"),
            "{path}"
        );
    }
    // A missing image is a 404 the viewer's script can read, not a CORS failure.
    for path in [
        "/iiif/missing/info.json",
        "/iiif/missing/full/!400,400/0/default.jpg",
        "/iiif/missing/0,0,10,10/10,/0/default.jpg",
    ] {
        let r = get(path).header("Origin", VIEWER).send(t.port);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    let r = get("/iiif/sample/info.json")
        .header("Origin", VIEWER)
        .send(t.port);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn an_identifier_with_an_unescaped_slash_is_not_found() {
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&embedded_default(cache.path()));
    for path in [
        "/iiif/a/b/info.json",
        "/iiif/sample/extra/full/max/0/default.jpg",
        "/iiif/a/b/c/d/e/f/default.jpg",
    ] {
        let r = t.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    // Malformed parameters of a well-formed request stay 400 with the reason.
    let r = t.get("/iiif/sample/full/max/0/fancy.jpg");
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Behind a load balancer that terminates TLS: ids and redirects use what a trusted proxy
/// says; anyone else's forwarded headers change nothing; `public_url` fixes the base.
#[test]
fn ids_and_redirects_use_the_public_url() {
    let cache = tempfile::tempdir().unwrap();
    let yaml = embedded_default(cache.path()) + "trusted_proxies: [\"127.0.0.1\"]\n";
    let t = Tessera::start(&yaml);
    let via_proxy = |path: &str| {
        get(path)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "iiif.example.org")
            .send(t.port)
    };
    let info = via_proxy("/iiif/sample/info.json");
    assert_eq!(info.status, 200, "{}", info.text());
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(json["id"], "https://iiif.example.org/iiif/sample");
    let redirect = via_proxy("/iiif/sample");
    assert_eq!(redirect.status, 303);
    assert_eq!(
        redirect.header("location"),
        Some("https://iiif.example.org/iiif/sample/info.json")
    );
    // The same request without the proxy's word gets its own base, never the kept answer
    // made for the other one.
    let direct = get("/iiif/sample/info.json")
        .header("Host", "127.0.0.1")
        .send(t.port);
    let json: serde_json::Value = serde_json::from_slice(&direct.body).unwrap();
    assert_eq!(json["id"], "http://127.0.0.1/iiif/sample");

    let other_cache = tempfile::tempdir().unwrap();
    let untrusted = Tessera::start(&embedded_default(other_cache.path()));
    let forged = get("/iiif/sample/info.json")
        .header("Host", "127.0.0.1")
        .header("X-Forwarded-Host", "evil.example")
        .header("Forwarded", "host=evil.example;proto=https")
        .send(untrusted.port);
    let json: serde_json::Value = serde_json::from_slice(&forged.body).unwrap();
    assert_eq!(json["id"], "http://127.0.0.1/iiif/sample");
}

#[test]
fn a_fixed_public_url_names_every_id() {
    let cache = tempfile::tempdir().unwrap();
    let yaml =
        embedded_default(cache.path()) + "public_url: \"https://images.example.org/base/\"\n";
    let t = Tessera::start(&yaml);
    let json: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif/sample/info.json").body).unwrap();
    assert_eq!(json["id"], "https://images.example.org/base/iiif/sample");
}

/// info.json says what `render` serves: `max` is the largest size within `maxArea`, and a
/// size beyond it is refused with the reason; the listed `sizes` are all within it.
#[test]
fn info_json_advertises_the_limits_render_enforces() {
    let cache = tempfile::tempdir().unwrap();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let t = Tessera::start(&format!(
        r#"
origins: {{ samples: {{ dir: {repo}/examples/images }} }}
hot_cache: {{ dir: {}, capacity: 1GiB }}
routes:
  - name: info3
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: samples, key: "{{image}}.jp2", max_area: 500000 }} }}
  - name: info2
    match: {{ path: "/iiif2/{{image}}/info.json" }}
    handler: {{ info: {{ origin: samples, key: "{{image}}.jp2", version: 2, max_area: 500000, max_width: 1000 }} }}
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: samples, key: "{{image}}.jp2", max_pixels: 500000 }} }}
"#,
        cache.path().display()
    ));
    let info: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif/sample/info.json").body).unwrap();
    assert_eq!(info["maxArea"], 500000);
    assert_eq!(info["maxWidth"], 65535);
    for size in info["sizes"].as_array().unwrap() {
        let (w, h) = (
            size["width"].as_u64().unwrap(),
            size["height"].as_u64().unwrap(),
        );
        assert!(w * h <= 500000, "{size}");
    }
    let v2: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif2/sample/info.json").body).unwrap();
    assert_eq!(v2["profile"][1]["maxArea"], 500000);
    assert_eq!(v2["profile"][1]["maxWidth"], 1000);

    // The 2048×1536 sample: `max` is the largest 4:3 size within 500 000 pixels.
    let max = t.get("/iiif/sample/full/max/0/default.jpg");
    assert_eq!(max.status, 200, "{}", max.text());
    let bitmap = tessera_render::decode_jpeg(&max.body, 10_000_000).unwrap();
    let (w, h) = (bitmap.width, bitmap.height);
    assert!(u64::from(w) * u64::from(h) <= 500000, "{w}×{h}");
    assert!(
        u64::from(w) * u64::from(h) > 480000,
        "{w}×{h} is not the largest"
    );
    let over = t.get("/iiif/sample/full/1000,/0/default.jpg");
    assert_eq!(over.status, 400);
    assert!(over.text().contains("500000"), "{}", over.text());
}

/// An image a little over the limit: `max` is its first level, decoded at that resolution, and
/// info.json (2 and 3) advertises that level's area, so what it says and what render does agree.
#[test]
fn max_of_an_image_over_the_limit_is_its_largest_level_within_it() {
    let cache = tempfile::tempdir().unwrap();
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let t = Tessera::start(&format!(
        r#"
origins: {{ samples: {{ dir: {repo}/examples/images }} }}
hot_cache: {{ dir: {}, capacity: 1GiB }}
routes:
  - name: info3
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: samples, key: "{{image}}.jp2", max_area: 1000000 }} }}
  - name: info2
    match: {{ path: "/iiif2/{{image}}/info.json" }}
    handler: {{ info: {{ origin: samples, key: "{{image}}.jp2", version: 2, max_area: 1000000 }} }}
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: samples, key: "{{image}}.jp2", max_pixels: 1000000 }} }}
"#,
        cache.path().display()
    ));
    // The 2048×1536 sample's first level, 1024×768, is 786 432 pixels: over half the limit.
    let info: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif/sample/info.json").body).unwrap();
    assert_eq!(info["maxArea"], 1024 * 768);
    assert!(info["sizes"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"width": 1024, "height": 768})));
    let v2: serde_json::Value =
        serde_json::from_slice(&t.get("/iiif2/sample/info.json").body).unwrap();
    assert_eq!(v2["profile"][1]["maxArea"], 1024 * 768);
    let max = t.get("/iiif/sample/full/max/0/default.jpg");
    assert_eq!(max.status, 200, "{}", max.text());
    let bitmap = tessera_render::decode_jpeg(&max.body, 10_000_000).unwrap();
    assert_eq!((bitmap.width, bitmap.height), (1024, 768));
    let over = t.get("/iiif/sample/full/1100,/0/default.jpg");
    assert_eq!(over.status, 400, "{}", over.text());
}

/// A folder of files that are not images this server reads: each is answered 415 with what it
/// is, never 502, through info, byte_range and render; JPEG and PNG beside them are served.
#[test]
fn files_that_are_not_images_it_reads_are_415_with_the_reason() {
    use tessera_render::{encode, Bitmap, Format};
    let folder = tempfile::tempdir().unwrap();
    let picture = Bitmap {
        width: 64,
        height: 48,
        channels: 3,
        pixels: vec![128; 64 * 48 * 3],
    };
    let write = |name: &str, bytes: &[u8]| std::fs::write(folder.path().join(name), bytes).unwrap();
    write("photo.jpg", &encode(&picture, Format::Jpeg, 85).unwrap());
    write("drawing.png", &encode(&picture, Format::Png, 85).unwrap());
    write("anim.gif", b"GIF89a\x40\0\x30\0 and no more");
    write("paper.pdf", b"%PDF-1.7 not an image");
    write("notes.txt", b"just some text");
    let t = crate::browser::Served::start(folder.path());
    for name in ["photo.jpg", "drawing.png"] {
        for path in [
            format!("/iiif/3/{name}/info.json"),
            format!("/iiif/3/{name}/full/!200,200/0/default.jpg"),
            format!("/iiif/3/{name}/0,0,32,32/32,/0/default.jpg"),
        ] {
            let r = get(&path).send(t.port);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
        }
    }
    for (name, what) in [
        ("anim.gif", "a GIF"),
        ("paper.pdf", "a PDF"),
        ("notes.txt", "not an image format this server knows"),
    ] {
        for path in [
            format!("/iiif/3/{name}/info.json"),
            format!("/iiif/3/{name}/full/!200,200/0/default.jpg"),
            format!("/iiif/3/{name}/0,0,32,32/32,/0/default.jpg"),
        ] {
            let r = get(&path).send(t.port);
            assert_eq!(r.status, 415, "{path}: {}", r.text());
            assert!(r.text().contains(what), "{path}: {}", r.text());
        }
    }
}

/// With `prefetch` on the info route, the info.json a viewer asks for first starts the copy
/// its tiles need: the first tile finds the image in the hot cache (or joins its copy), and
/// the image is copied once.
#[test]
fn info_json_prefetches_the_image_for_its_tiles() {
    let s3 = crate::s3::S3Server::start();
    s3.put_file(
        "img",
        &crate::images::jp2_with(1200, 900, &["-t", "256,256", "-n", "4"]),
    );
    let cache = tempfile::tempdir().unwrap();
    let t = Tessera::start(&format!(
        r#"origins:
{}hot_cache: {{ dir: "{}", capacity: 1GiB }}
routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: masters, key: "{{image}}", prefetch: {{}} }} }}
  - name: tiles
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: masters, key: "{{image}}" }} }}
"#,
        s3.origin_yaml("masters"),
        cache.path().display()
    ));
    let prefetched =
        |outcome: &str| t.metric("tessera_hot_cache_prefetch_total", &[("outcome", outcome)]);
    assert_eq!(t.get("/iiif/img/info.json").status, 200);
    assert!(
        eventually(10, || prefetched("copied") == 1.0),
        "{}",
        t.metrics()
    );
    let tile = t.get("/iiif/img/0,0,256,256/256,/0/default.jpg");
    assert_eq!(tile.status, 200, "{}", tile.text());
    let lookups =
        |outcome: &str| t.metric("tessera_hot_cache_requests_total", &[("outcome", outcome)]);
    assert_eq!(
        (lookups("miss"), lookups("hit")),
        (1.0, 1.0),
        "the tile found the copy"
    );
    // Asked again, info.json finds the image there and copies nothing.
    assert_eq!(t.get("/iiif/img/info.json").status, 200);
    assert!(eventually(10, || prefetched("present") == 1.0));
    assert_eq!(lookups("miss"), 1.0);
}
