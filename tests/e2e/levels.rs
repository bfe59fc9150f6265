//! `render`'s kept levels (`level_cache`): a large image's small levels are decoded whole once
//! and cropped by each request. The answers are byte for byte those of decoding each region
//! (a route with `level_cache: 0` beside), for tiled and single-tile files, at the edges too;
//! concurrent requests for one level decode it once; a file cut short under a running server
//! fails its requests as before, and whole again is served again.

use crate::harness::{get, Tessera};
use crate::images::jp2_with;

/// 3000×2000 (6 MP: larger than a kept level may be), tiled and in one tile.
fn masters(dir: &std::path::Path) {
    let tiled = jp2_with(3000, 2000, &["-t", "512,512", "-n", "6"]);
    let single = jp2_with(3000, 2000, &["-n", "6"]);
    std::fs::copy(tiled, dir.join("tiled.jp2")).unwrap();
    std::fs::copy(single, dir.join("single.jp2")).unwrap();
}

fn server(dir: &std::path::Path) -> Tessera {
    Tessera::start(&format!(
        r#"origins: {{ folder: {{ dir: "{}" }} }}
routes:
  - name: kept
    match: {{ path: "/kept/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: folder, key: "{{image}}.jp2" }} }}
  - name: plain
    match: {{ path: "/plain/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: folder, key: "{{image}}.jp2", level_cache: 0 }} }}
"#,
        dir.display()
    ))
}

/// Requests whose level is at most 4 MP: level 1 (1500×1000) and smaller, edges included.
const AT_SMALL_LEVELS: &[&str] = &[
    "0,0,1024,1024/512,/0/default.png",
    "2048,1024,952,976/476,/0/default.png",
    "1024,0,1024,1024/256,/0/default.png",
    "full/375,/0/default.png",
    "full/750,/90/gray.png",
    "1000,500,1000,1000/500,/0/default.jpg",
    "1,1,1999,1333/1000,/0/default.png",
];

#[test]
fn a_kept_level_answers_what_decoding_the_region_answers() {
    let dir = tempfile::tempdir().unwrap();
    masters(dir.path());
    let t = server(dir.path());
    for image in ["tiled", "single"] {
        for iiif in AT_SMALL_LEVELS {
            let kept = get(&format!("/kept/{image}/{iiif}")).send(t.port);
            let plain = get(&format!("/plain/{image}/{iiif}")).send(t.port);
            assert_eq!(kept.status, 200, "{image} {iiif}: {}", kept.text());
            assert_eq!(plain.status, 200, "{image} {iiif}: {}", plain.text());
            assert!(
                kept.body == plain.body,
                "{image} {iiif}: the answers differ"
            );
        }
    }
    // Levels 1, 2 and 3 of each image were decoded once and cropped by the other requests at
    // them; the last request (1999 px into 1000) needs the full resolution, which is not kept.
    let levels = |outcome| t.metric("tessera_decoded_levels_total", &[("outcome", outcome)]);
    assert_eq!(levels("decoded"), 6.0);
    assert_eq!(levels("kept"), 6.0);
}

#[test]
fn the_tiles_of_one_level_asked_at_once_decode_it_once() {
    let dir = tempfile::tempdir().unwrap();
    masters(dir.path());
    let t = server(dir.path());
    let port = t.port;
    let tiles: Vec<_> = (0..3)
        .flat_map(|x| (0..2).map(move |y| (x * 1024, y * 1024)))
        .map(|(x, y)| {
            std::thread::spawn(move || {
                let (w, h): (u32, u32) = ((3000 - x).min(1024), (2000 - y).min(1024));
                get(&format!(
                    "/kept/single/{x},{y},{w},{h}/{},/0/default.jpg",
                    w.div_ceil(2)
                ))
                .send(port)
                .status
            })
        })
        .collect();
    for tile in tiles {
        assert_eq!(tile.join().unwrap(), 200);
    }
    assert_eq!(
        t.metric("tessera_decoded_levels_total", &[("outcome", "decoded")]),
        1.0
    );
    assert_eq!(
        t.metric("tessera_decoded_levels_total", &[("outcome", "kept")]),
        5.0
    );
}

#[test]
fn a_file_cut_short_fails_its_requests_and_whole_again_is_served() {
    let dir = tempfile::tempdir().unwrap();
    masters(dir.path());
    let t = server(dir.path());
    let path = dir.path().join("tiled.jp2");
    let whole = std::fs::read(&path).unwrap();
    let bottom = "/kept/tiled/2048,1536,952,464/476,/0/default.jpg";
    assert_eq!(t.get(bottom).status, 200);
    std::fs::write(&path, &whole[..whole.len() / 3]).unwrap();
    let cut = t.get(bottom);
    assert_eq!(cut.status, 502, "{}", cut.text());
    std::fs::write(&path, &whole).unwrap();
    let again = t.get(bottom);
    assert_eq!(again.status, 200, "{}", again.text());
}
