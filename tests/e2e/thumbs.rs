//! `/thumbs/` from pre-made derivatives in a real S3 server: exact sizes streamed as stored,
//! sizes in between resized from the next larger, auth-only sizes behind the `auth` filter,
//! and everything a thumbnail cannot answer handed on without touching S3.

use crate::harness::{get, Tessera};
use crate::s3::S3Server;
use tessera_render::{decode_jpeg, encode, Bitmap, Format};

pub const TOKEN: &str = "a-token-of-16-chars-or-more";
const OPEN: [(u32, u32); 4] = [(1000, 750), (400, 300), (200, 150), (100, 75)];
const AUTH: (u32, u32) = (2000, 1500);

/// The picture every thumbnail shows: smooth gradients, so a resized answer can be checked
/// against the function itself.
fn colour(x: f64, y: f64) -> [f64; 3] {
    [255.0 * x, 255.0 * y, 128.0]
}

fn thumbnail(w: u32, h: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let c = colour(
                (f64::from(x) + 0.5) / f64::from(w),
                (f64::from(y) + 0.5) / f64::from(h),
            );
            pixels.extend(c.map(|v| v.round() as u8));
        }
    }
    encode(&Bitmap::new(w, h, 3, pixels).unwrap(), Format::Jpeg, 90).unwrap()
}

fn put(s3: &S3Server, dir: &tempfile::TempDir, key: &str, bytes: &[u8]) {
    let path = dir.path().join(key.replace('/', "_"));
    std::fs::write(&path, bytes).unwrap();
    s3.put_file(key, &path);
}

/// Image `2/1/img` with open and auth-only thumbnails; `2/1/unlisted` whose listing names a
/// thumbnail that is not there; `2/1/broken` with a malformed listing.
pub fn store(s3: &S3Server) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in OPEN {
        put(
            s3,
            &dir,
            &format!("thumbs/2/1/img/open/{}.jpg", w.max(h)),
            &thumbnail(w, h),
        );
    }
    put(
        s3,
        &dir,
        "thumbs/2/1/img/auth/2000.jpg",
        &thumbnail(AUTH.0, AUTH.1),
    );
    put(
        s3,
        &dir,
        "thumbs/2/1/img/s.json",
        br#"{"o":[[1000,750],[400,300],[200,150],[100,75]],"a":[[2000,1500]]}"#,
    );
    put(
        s3,
        &dir,
        "thumbs/2/1/unlisted/s.json",
        br#"{"o":[[200,150]]}"#,
    );
    put(
        s3,
        &dir,
        "thumbs/2/1/broken/s.json",
        br#"{"o":"two hundred"}"#,
    );
    dir
}

fn config(s3: &S3Server) -> String {
    format!(
        r#"origins:
{origin}routes:
  - name: thumbs
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    filters: [{{ auth: {{ tokens: ["{TOKEN}"], cookie: dlcs-token }} }}]
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}", otherwise: master }} }}
  - name: master
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    handler: {{ respond: {{ status: 299, body: "from the master" }} }}
  - name: thumbs-only
    match: {{ path: "/only/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}", version: 2 }} }}
"#,
        origin = s3.origin_yaml("masters"),
    )
}

pub fn stored(s3: &S3Server, key: &str) -> Vec<u8> {
    std::fs::read(s3.object_path(key)).unwrap()
}

#[test]
fn exact_sizes_are_the_stored_objects() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&config(&s3));
    for (path, key) in [
        ("full/400,/0/default.jpg", "open/400.jpg"),
        ("full/,300/0/default.jpg", "open/400.jpg"),
        ("full/400,300/0/color.jpg", "open/400.jpg"),
        ("full/!200,200/0/default.jpg", "open/200.jpg"),
        ("full/max/0/default.jpg", "open/1000.jpg"),
        ("full/pct:10/0/default.jpg", "open/100.jpg"),
    ] {
        let r = t.get(&format!("/thumbs/2/1/img/{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.body == stored(&s3, &format!("thumbs/2/1/img/{key}")),
            "{path}"
        );
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=86400"));
        assert!(r.header("link").unwrap().contains("level0.json"));
    }
    // The listing was read once for all of them.
    assert_eq!(s3.gets_for("thumbs/2/1/img/s.json").len(), 1);
    assert_eq!(
        t.metric(
            "tessera_thumbs_requests_total",
            &[("route", "thumbs"), ("outcome", "exact")]
        ),
        6.0
    );

    // ETag and If-None-Match.
    let r = t.get("/thumbs/2/1/img/full/400,/0/default.jpg");
    let etag = r.header("etag").expect("an ETag").to_string();
    let again = get("/thumbs/2/1/img/full/400,/0/default.jpg")
        .header("If-None-Match", &etag)
        .send(t.port);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
}

#[test]
fn sizes_in_between_are_resized_from_the_next_larger() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&config(&s3));
    for (path, w, h, source) in [
        ("full/300,/0/default.jpg", 300, 225, "open/400.jpg"),
        ("full/!150,150/0/default.jpg", 150, 113, "open/200.jpg"),
        ("full/^1050,/0/default.jpg", 1050, 788, "open/1000.jpg"),
    ] {
        let before = s3.gets_for(&format!("thumbs/2/1/img/{source}")).len();
        let r = t.get(&format!("/thumbs/2/1/img/{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let img = decode_jpeg(&r.body, 10_000_000).unwrap();
        assert_eq!((img.width, img.height), (w, h), "{path}");
        assert_eq!(
            s3.gets_for(&format!("thumbs/2/1/img/{source}")).len(),
            before + 1,
            "{path} is made from {source}"
        );
        // Every pixel close to the picture at that size (JPEG twice, and a resize).
        let mut worst = 0f64;
        for y in 0..h {
            for x in 0..w {
                let want = colour(
                    (f64::from(x) + 0.5) / f64::from(w),
                    (f64::from(y) + 0.5) / f64::from(h),
                );
                let at = ((y * w + x) * 3) as usize;
                for (got, want) in img.pixels[at..at + 3].iter().zip(want) {
                    worst = worst.max((f64::from(*got) - want).abs());
                }
            }
        }
        assert!(worst <= 12.0, "{path}: a pixel is {worst} levels off");
    }
    assert_eq!(
        t.metric(
            "tessera_thumbs_requests_total",
            &[("route", "thumbs"), ("outcome", "resized")]
        ),
        2.0
    );
    assert_eq!(
        t.metric(
            "tessera_thumbs_requests_total",
            &[("route", "thumbs"), ("outcome", "upscaled")]
        ),
        1.0
    );
}

#[test]
fn auth_only_sizes_need_the_auth_filter() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&config(&s3));
    let r = t.get("/thumbs/2/1/img/full/2000,/0/default.jpg");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(s3.gets_for("thumbs/2/1/img/auth/2000.jpg").is_empty());
    let stored_auth = stored(&s3, "thumbs/2/1/img/auth/2000.jpg");
    for (header, value) in [
        ("Authorization", format!("Bearer {TOKEN}")),
        ("Cookie", format!("other=1; dlcs-token={TOKEN}")),
    ] {
        let r = get("/thumbs/2/1/img/full/2000,/0/default.jpg")
            .header(header, &value)
            .send(t.port);
        assert_eq!(r.status, 200, "{header}: {}", r.text());
        assert!(r.body == stored_auth);
        assert_eq!(r.header("cache-control"), Some("private, max-age=86400"));
    }
    let wrong = get("/thumbs/2/1/img/full/2000,/0/default.jpg")
        .header("Authorization", "Bearer not-the-token-at-all")
        .send(t.port);
    assert_eq!(wrong.status, 401);
    // max is the largest size the request may see.
    let r = t.get("/thumbs/2/1/img/full/max/0/default.jpg");
    assert!(r.body == stored(&s3, "thumbs/2/1/img/open/1000.jpg"));
    let r = get("/thumbs/2/1/img/full/max/0/default.jpg")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(t.port);
    assert!(r.body == stored_auth);
}

#[test]
fn info_json_lists_the_sizes_at_level_0() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&config(&s3));
    let r = t.get("/thumbs/2/1/img/info.json");
    assert_eq!(r.status, 200, "{}", r.text());
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["profile"], "level0");
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(1000), Some(750))
    );
    let widths: Vec<u64> = json["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["width"].as_u64().unwrap())
        .collect();
    assert_eq!(widths, [100, 200, 400, 1000]);
    assert!(json["id"].as_str().unwrap().ends_with("/thumbs/2/1/img"));
    assert!(json.get("tiles").is_none());
    let r = get("/thumbs/2/1/img/info.json")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(t.port);
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["width"].as_u64(), Some(2000));
    // Version 2 on the other route.
    let r = t.get("/only/2/1/img/info.json");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(json["profile"][0]
        .as_str()
        .unwrap()
        .ends_with("level0.json"));
}

#[test]
fn what_thumbnails_cannot_answer_goes_elsewhere_without_asking_s3() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let t = Tessera::start(&config(&s3));
    let before = s3.all_requests().len();
    for path in [
        "0,0,10,10/100,/0/default.jpg",
        "full/100,/90/default.jpg",
        "full/100,/!0/default.jpg",
        "full/100,/0/gray.jpg",
        "full/100,/0/default.png",
    ] {
        let r = t.get(&format!("/thumbs/2/1/img/{path}"));
        assert_eq!(
            (r.status, r.text().trim()),
            (299, "from the master"),
            "{path}"
        );
        let r = t.get(&format!("/only/2/1/img/{path}"));
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(
        s3.all_requests().len(),
        before,
        "no S3 request for non-thumbnail parameters"
    );

    // Malformed IIIF: 400, also without S3.
    for path in [
        "full/0,/0/default.jpg",
        "full/100,/0/sepia.jpg",
        "full/abc/0/default.jpg",
    ] {
        let r = t.get(&format!("/thumbs/2/1/img/{path}"));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
    }
    assert_eq!(s3.all_requests().len(), before);

    // Sizes no thumbnail answers, images without thumbnails, a listed thumbnail missing.
    for path in [
        "img/full/5000,/0/default.jpg",
        "nothing/full/100,/0/default.jpg",
        "unlisted/full/200,/0/default.jpg",
    ] {
        let r = t.get(&format!("/thumbs/2/1/{path}"));
        assert_eq!(r.status, 299, "{path}: {}", r.text());
        let r = t.get(&format!("/only/2/1/{path}"));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    assert!(t.wait_log("a listed thumbnail is missing"), "{}", t.log());

    // A malformed listing: 502 with a log line naming it.
    let r = t.get("/thumbs/2/1/broken/full/200,/0/default.jpg");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        t.wait_log("cannot read a thumbnail size listing"),
        "{}",
        t.log()
    );
    assert!(
        t.log().contains("thumbs/2/1/broken/s.json"),
        "the log names the listing"
    );
}

#[test]
fn exact_thumbnails_are_streamed_whatever_their_size_and_a_cut_one_is_not_passed_off_whole() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    // Sources read into memory (to resize) may be 1 KiB at most; exact ones are streamed.
    let yaml = format!(
        r#"origins:
{origin}routes:
  - name: thumbs
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}", max_thumbnail_bytes: 1KiB }} }}
"#,
        origin = s3.origin_yaml("masters"),
    );
    let t = Tessera::start(&yaml);
    let stored_400 = stored(&s3, "thumbs/2/1/img/open/400.jpg");
    assert!(stored_400.len() > 1024);

    let r = t.get("/thumbs/2/1/img/full/400,/0/default.jpg");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body == stored_400);
    let length = stored_400.len().to_string();
    assert_eq!(r.header("content-length"), Some(length.as_str()));
    // One GET answers both the length and the bytes.
    assert_eq!(s3.requests_for("thumbs/2/1/img/open/400.jpg").len(), 1);
    // A size made from that thumbnail must read it into memory: over the limit, 502.
    assert_eq!(t.get("/thumbs/2/1/img/full/300,/0/default.jpg").status, 502);

    // The object is cut after 1000 bytes. If the cut is seen before the answer starts, 502;
    // if after, the status and length are already sent and the connection closes: either way
    // the client sees a failure, never a short answer that looks whole.
    s3.cut_after("thumbs/2/1/img/open/400.jpg", Some(1000));
    let cut = t.get("/thumbs/2/1/img/full/400,/0/default.jpg");
    match cut.status {
        200 => {
            assert_eq!(cut.header("content-length"), Some(length.as_str()));
            assert!(cut.body.len() < stored_400.len());
            assert!(t.wait_log("a streamed answer was cut"));
        }
        502 => assert!(t.wait_log("cannot read a thumbnail")),
        other => panic!("a cut thumbnail answered {other}"),
    }
}

#[test]
fn resizes_over_the_time_limit_answer_504() {
    let s3 = S3Server::start();
    let _files = store(&s3);
    let yaml = format!(
        r#"origins:
{origin}routes:
  - name: thumbs
    match: {{ path: "/thumbs/{{customer}}/{{space}}/{{image}}/{{iiif*}}" }}
    handler: {{ thumbs: {{ origin: masters, key: "thumbs/{{customer}}/{{space}}/{{image}}", decode_timeout: 1ms }} }}
"#,
        origin = s3.origin_yaml("masters"),
    );
    let t = Tessera::start(&yaml);
    // Decoding a 1000×750 JPEG and resizing it takes far longer than a millisecond.
    let r = t.get("/thumbs/2/1/img/full/800,/0/default.jpg");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(t.wait_log("decoding the image timed out"), "{}", t.log());
    // An exact thumbnail is not decoded at all.
    assert_eq!(
        t.get("/thumbs/2/1/img/full/1000,/0/default.jpg").status,
        200
    );
}
