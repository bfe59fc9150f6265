//! `tessera serve DIR` looked at in a real browser: Debian's Chromium, headless, loads the
//! gallery and the viewer page, and OpenSeadragon asks for info.json and tiles as it would for
//! a person. What the browser asked for is read back from Tessera's access log; its console is
//! read from Chromium's log.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// `tessera serve` on a folder, its JSON log collected.
pub struct Served {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
    _cache: tempfile::TempDir,
}

impl Served {
    pub fn start(dir: &std::path::Path) -> Self {
        let port = free_port();
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(tessera_bin())
            .args(["--log-format", "json", "serve"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("XDG_CACHE_HOME", cache.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let served = Served {
            child,
            port,
            log,
            _cache: cache,
        };
        assert!(
            eventually(20, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "tessera serve did not start"
        );
        served
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Access-log lines (method, path, status) so far, and forget them.
    fn take_requests(&self) -> Vec<(String, String, u64)> {
        let mut log = self.log.lock().unwrap();
        let requests = log
            .iter()
            .filter(|v| v["target"] == "tessera::access")
            .map(|v| {
                (
                    v["method"].as_str().unwrap_or("").to_string(),
                    v["path"].as_str().unwrap_or("").to_string(),
                    v["status"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        log.clear();
        requests
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Load `url` in headless Chromium until the page is quiet (virtual time), returning its
/// console messages, less the GPU-emulation notices a machine without a GPU gives.
fn browse(url: &str) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=15000",
            "--window-size=1200,900",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium runs (scripts/deps.sh installs it)");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .filter(|l| !l.contains("WebGL") && !l.contains("GL Driver Message"))
        .map(str::to_string)
        .collect()
}

/// The `w,h` of an image request's size, and whether its region is at full resolution
/// (region width = output width).
fn tile(path: &str) -> Option<((u32, u32), bool)> {
    let parts: Vec<&str> = path.split('/').collect();
    let [.., region, size, _, _] = parts[..] else {
        return None;
    };
    let (w, h) = size.split_once(',')?;
    let (w, h) = (w.parse().ok()?, h.parse().ok()?);
    let region_w: Option<u32> = region.split(',').nth(2).and_then(|v| v.parse().ok());
    Some(((w, h), region_w == Some(w)))
}

/// A folder holding the embedded default's sample image, `sample.jp2`.
fn folder_with_the_sample() -> tempfile::TempDir {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{repo}/examples/images/sample.jp2"),
        folder.path().join("sample.jp2"),
    )
    .unwrap();
    folder
}

#[test]
fn the_viewer_shows_a_folder_in_a_real_browser() {
    let folder = folder_with_the_sample();
    std::fs::write(folder.path().join("notes.txt"), "not an image").unwrap();
    let t = Served::start(folder.path());

    // The gallery: one image with its thumbnail, and a word about the other file.
    let console = browse(&t.url("/"));
    assert!(console.is_empty(), "console: {console:#?}");
    let requests = t.take_requests();
    assert!(
        requests.contains(&(
            "GET".into(),
            "/iiif/3/sample.jp2/full/!200,200/0/default.jpg".into(),
            200
        )),
        "{requests:#?}"
    );
    let page = get("/").send(t.port).text();
    assert!(page.contains("href=\"/view/sample.jp2\""), "{page}");
    assert!(page.contains("1 other files are not shown"), "{page}");

    // The viewer page: info.json, then tiles, every one 200 and of the size it was asked.
    let console = browse(&t.url("/view/sample.jp2"));
    assert!(console.is_empty(), "console: {console:#?}");
    let first = t.take_requests();
    assert!(
        first.iter().all(|(_, _, status)| *status == 200),
        "{first:#?}"
    );
    assert!(first
        .iter()
        .any(|(_, p, _)| p == "/viewer/openseadragon.min.js"));
    assert!(first
        .iter()
        .any(|(_, p, _)| p == "/iiif/3/sample.jp2/info.json"));
    let tiles: Vec<&String> = first
        .iter()
        .map(|(_, p, _)| p)
        .filter(|p| p.starts_with("/iiif/3/sample.jp2/") && tile(p).is_some())
        .collect();
    assert!(tiles.len() >= 2, "{first:#?}");
    for path in &tiles {
        let ((w, h), _) = tile(path).unwrap();
        let body = get(path).send(t.port).body;
        let image = tessera_render::decode_jpeg(&body, 10_000_000).unwrap();
        assert_eq!((image.width, image.height), (w, h), "{path}");
    }
    let deepest_at_first = tiles.iter().any(|p| tile(p).unwrap().1);

    // A zoom step loads tiles at full resolution, which the first screen did not need.
    let console = browse(&t.url("/view/sample.jp2?zoom=4"));
    assert!(console.is_empty(), "console: {console:#?}");
    let zoomed = t.take_requests();
    assert!(
        zoomed.iter().all(|(_, _, status)| *status == 200),
        "{zoomed:#?}"
    );
    assert!(
        !deepest_at_first,
        "the first screen asked for full-resolution tiles"
    );
    assert!(
        zoomed
            .iter()
            .any(|(_, p, _)| tile(p).is_some_and(|(_, full_resolution)| full_resolution)),
        "{zoomed:#?}"
    );
}

/// A page on another origin whose viewer sends a header of its own with every request: the
/// browser asks first (CORS preflight), Tessera answers, and the tiles load.
#[test]
fn a_page_on_another_origin_loads_tiles_with_preflights() {
    let folder = folder_with_the_sample();
    let t = Served::start(folder.path());

    let site = tempfile::tempdir().unwrap();
    let base = t.url("");
    std::fs::write(
        site.path().join("page.html"),
        format!(
            r#"<!doctype html><html><body style="margin:0">
<div id="v" style="width:1000px;height:700px"></div>
<script src="{base}/viewer/openseadragon.min.js"></script>
<script>
OpenSeadragon({{ id: "v", prefixUrl: "{base}/viewer/images/", tileSources: "{base}/iiif/3/sample.jp2/info.json",
  loadTilesWithAjax: true, ajaxHeaders: {{ "X-Viewer": "another-site" }}, crossOriginPolicy: "Anonymous" }});
</script></body></html>"#
        ),
    )
    .unwrap();
    let site_port = free_port();
    let mut other_origin = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &site_port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(site.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(10, || std::net::TcpStream::connect((
        "127.0.0.1",
        site_port
    ))
    .is_ok()));

    let console = browse(&format!("http://127.0.0.1:{site_port}/page.html"));
    let _ = other_origin.kill();
    let _ = other_origin.wait();
    assert!(console.is_empty(), "console: {console:#?}");
    let requests = t.take_requests();
    let preflights: Vec<_> = requests.iter().filter(|(m, _, _)| m == "OPTIONS").collect();
    assert!(!preflights.is_empty(), "{requests:#?}");
    assert!(
        preflights.iter().all(|(_, _, s)| *s == 204),
        "{requests:#?}"
    );
    let tiles = requests
        .iter()
        .filter(|(m, p, s)| m == "GET" && tile(p).is_some() && *s == 200)
        .count();
    assert!(tiles >= 2, "{requests:#?}");
    assert!(
        requests.iter().all(|(_, _, s)| *s == 200 || *s == 204),
        "{requests:#?}"
    );
}
