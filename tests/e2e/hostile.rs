//! Hostile input, thousands of times: generated IIIF URLs (traversal in every encoding,
//! overlong segments, huge and negative numbers, odd unicode, long queries, many headers)
//! through `info`, `byte_range` and `render` get no 5xx (but IIIF's 501 for what is valid
//! and not implemented); malformed JP2s (truncations, bit
//! flips, lying lengths, huge declared sizes) get an answer (a file that cannot be read is the
//! documented 502, a declared bomb 415) and never take the process down; and — watched with
//! strace — no file outside the origin and cache directories is ever opened, or tried.

use crate::harness::{get, Tessera};
use crate::images::{declaring, jp2_with};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// A small deterministic generator (xorshift64*): the same URLs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Identifiers of the URL flood: good images, a missing one, and traversal in every spelling.
const IDS: &[&str] = &[
    "sample",
    "wide",
    "missing",
    "..",
    "%2e%2e",
    "%252e%252e",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5cetc",
    "%c0%ae%c0%ae",
    ".%2e",
    "%00",
    "sample%00.jp2",
    "sample%2F..%2F..%2Fsecret",
    "a%0d%0aX-Injected:%201",
    "%F0%9F%98%80",
    "%E2%80%AEgpj.elpmas",
    "~root",
    "..;",
    "%u002e%u002e",
];
const REGIONS: &[&str] = &[
    "full",
    "square",
    "0,0,1,1",
    "-1,0,10,10",
    "0,0,0,0",
    "99999999999999999999,0,1,1",
    "pct:0,0,100,100",
    "pct:-5,0,200,200",
    "pct:1e308,0,1,1",
    "1.5,2,3,4",
    "0,0,1,1,1",
    "x,y,w,h",
    "4294967295,4294967295,4294967295,4294967295",
    "pct:0,0,0.0000001,0.0000001",
];
const SIZES: &[&str] = &[
    "max",
    "full",
    "1,",
    ",1",
    "0,",
    "^99999,",
    "!1,1",
    "!0,0",
    "pct:0",
    "pct:1000",
    "^pct:1000",
    "18446744073709551616,",
    "-1,",
    "50,50",
    "^max",
    "1e3,",
    "!4294967295,4294967295",
];
const ROTATIONS: &[&str] = &[
    "0", "90", "!180", "360", "-90", "45.5", "NaN", "1e999", "!", "00",
];
const QUALITIES: &[&str] = &[
    "default.jpg",
    "color.png",
    "gray.webp",
    "bitonal.jpg",
    "default.tif",
    "default",
    ".jpg",
    "default.jpg.exe",
    "default.JPG",
    "default.pdf",
];

/// One generated request path: mostly IIIF-shaped, sometimes not at all.
fn url(rng: &mut Rng) -> String {
    let id = rng.pick(IDS);
    let mut path = match rng.next() % 10 {
        0 => format!("/iiif/{id}/info.json"),
        1 => format!("/iiif/{id}"),
        2 => format!(
            "/iiif/{}/info.json",
            "x".repeat(1 + (rng.next() % 5000) as usize)
        ),
        3 => format!(
            "/iiif/{id}/{}/0/default.jpg",
            "9".repeat(1 + (rng.next() % 400) as usize)
        ),
        4 => format!("/iiif/{id}/a/b/c/d/e/f/g"),
        _ => format!(
            "/iiif/{id}/{}/{}/{}/{}",
            rng.pick(REGIONS),
            rng.pick(SIZES),
            rng.pick(ROTATIONS),
            rng.pick(QUALITIES)
        ),
    };
    if rng.next().is_multiple_of(8) {
        path.push_str(&format!(
            "?{}",
            "q=1&".repeat(1 + (rng.next() % 1000) as usize)
        ));
    }
    path
}

/// Paths strace saw opened (or tried) after `since` (seconds since the epoch).
fn opened_since(trace: &Path, since: f64) -> Vec<String> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            // "PID SECONDS.MICROS openat(AT_FDCWD, "/path", ...) = ..."
            let mut words = line.split_whitespace();
            let _pid = words.next()?;
            let at: f64 = words.next()?.parse().ok()?;
            let rest = line.split_once("open")?.1;
            let path = rest.split('"').nth(1)?;
            (at >= since).then(|| path.to_string())
        })
        .collect()
}

#[test]
fn thousands_of_hostile_requests_no_5xx_and_no_file_outside() {
    let origin = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let sample = jp2_with(640, 480, &["-p", "RPCL", "-t", "256,256", "-n", "4"]);
    std::fs::copy(&sample, origin.path().join("sample.jp2")).unwrap();
    std::fs::copy(
        jp2_with(70000, 8, &["-n", "3"]),
        origin.path().join("wide.jp2"),
    )
    .unwrap();
    // Malformed masters: cut short, bits flipped, lengths that lie, a declared bomb.
    let bytes = std::fs::read(&sample).unwrap();
    std::fs::write(origin.path().join("trunc.jp2"), &bytes[..bytes.len() / 3]).unwrap();
    let mut flipped = bytes.clone();
    let mut rng = Rng(7);
    for _ in 0..200 {
        let i = (rng.next() % flipped.len() as u64) as usize;
        flipped[i] ^= 1 << (rng.next() % 8);
    }
    std::fs::write(origin.path().join("flipped.jp2"), &flipped).unwrap();
    let mut lying = bytes.clone();
    if let Some(sot) = lying.windows(2).position(|w| w == [0xFF, 0x90]) {
        // Psot: the first tile-part claims to run far past the end of the file.
        lying[sot + 6..sot + 10].copy_from_slice(&u32::MAX.to_be_bytes());
    }
    std::fs::write(origin.path().join("lying.jp2"), &lying).unwrap();
    let small = jp2_with(64, 64, &["-n", "3"]);
    std::fs::copy(
        declaring(&small, 100_000, 100_000),
        origin.path().join("bomb.jp2"),
    )
    .unwrap();

    let (origin_dir, cache_dir) = (
        std::fs::canonicalize(origin.path()).unwrap(),
        std::fs::canonicalize(cache.path()).unwrap(),
    );
    let yaml = format!(
        r#"
access_log: false
origins:
  local: {{ dir: "{origin}" }}
hot_cache: {{ dir: "{cache}", capacity: 1GiB }}
routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: local, key: "{{image}}.jp2" }} }}
  - name: base
    match: {{ path: "/iiif/{{image}}" }}
    handler: {{ info: {{ origin: local, key: "{{image}}.jp2" }} }}
  - name: small
    match: {{ path: "/iiif/{{image}}/full/{{size}}/{{rotation}}/{{quality}}.{{format}}" }}
    handler: {{ byte_range: {{ origin: local, key: "{{image}}.jp2", request: "full/{{size}}/{{rotation}}/{{quality}}.{{format}}", otherwise: render }} }}
  - name: render
    match: {{ path: "/iiif/{{image}}/{{iiif*}}" }}
    handler: {{ render: {{ origin: local, key: "{{image}}.jp2" }} }}
"#,
        origin = origin_dir.display(),
        cache = cache_dir.display(),
    );
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("opens");
    let wrapper: Vec<String> = [
        "strace",
        "-f",
        "-ttt",
        "-e",
        "trace=open,openat,openat2,creat",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([trace.display().to_string()])
    .collect();
    let t = Tessera::start_under(&yaml, &wrapper);
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let mut rng = Rng(0x7e55_e7a0);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..2000u32 {
        let path = url(&mut rng);
        let mut req = get(&path);
        if i.is_multiple_of(50) {
            for h in 0..100 {
                req = req.header(&format!("x-many-{h}"), "v");
            }
        }
        let status = req.send(t.port).status;
        // 501 is IIIF's answer to a valid request a server does not implement (a TIFF, a
        // rotation of 45°): the client's choice, not a failure.
        assert!(
            status < 500 || status == 501,
            "{path}: {status}\n{}",
            t.log()
        );
        *statuses.entry(status).or_insert(0u32) += 1;
    }
    assert_eq!(t.get("/iiif/sample/info.json").status, 200, "still serving");
    assert!(
        statuses.contains_key(&200) && statuses.contains_key(&400),
        "{statuses:?}"
    );

    let allowed = |p: &str| {
        p.starts_with(&*origin_dir.to_string_lossy())
            || p.starts_with(&*cache_dir.to_string_lossy())
            || p.starts_with("/proc/")
            || p.starts_with("/sys/")
    };
    let opened = opened_since(&trace, since);
    assert!(
        opened
            .iter()
            .any(|p| p.starts_with(&*origin_dir.to_string_lossy())),
        "strace saw the origin's files opened (the watch works)"
    );
    let outside: Vec<String> = opened.into_iter().filter(|p| !allowed(p)).collect();
    assert!(
        outside.is_empty(),
        "opened outside the origin and cache: {outside:?}"
    );
}
