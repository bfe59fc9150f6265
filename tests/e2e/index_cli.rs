//! `tessera index`: header indexes built ahead of traffic from an S3 prefix and from a directory,
//! stored where `tessera run` finds them, and a summary that tells partial-ready images from the
//! rest and from what is not an image at all.

use crate::harness::{get, tessera_bin, Tessera};
use crate::images::jp2_with;
use crate::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tile-parts by resolution with TLM: indexed from the header alone, read partially.
fn rpcl(w: u32, h: u32) -> PathBuf {
    jp2_with(w, h, &["-p", "RPCL", "-TP", "R", "-TLM", "-n", "4"])
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The number on the summary line `label: N`.
    fn count(&self, label: &str) -> usize {
        let prefix = format!("{label}:");
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", self.stdout));
        line[prefix.len()..].trim().parse().unwrap()
    }
}

/// Run `tessera index` with `yaml` as its config, and the credentials the test S3 server wants.
fn index(yaml: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = Command::new(tessera_bin())
        .arg("index")
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

fn image_index(dir: &Path) -> String {
    format!("image_index: {{ dir: \"{}\" }}\n", dir.display())
}

#[test]
fn indexes_an_s3_prefix_and_tells_what_can_be_read_partially() {
    let s3 = S3Server::start();
    s3.put_file("a/r1.jp2", &rpcl(300, 200));
    s3.put_file("a/r2.jp2", &rpcl(320, 240));
    s3.put_file("a/r3.jp2", &rpcl(400, 300));
    s3.put_file(
        "a/lrcp.jp2",
        &jp2_with(300, 200, &["-p", "LRCP", "-TP", "R", "-TLM", "-n", "4"]),
    );
    let text = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(text.path(), "not an image\n").unwrap();
    s3.put_file("a/readme.txt", text.path());
    let jpeg = tempfile::NamedTempFile::new().unwrap();
    let picture = tessera_render::Bitmap {
        width: 8,
        height: 8,
        channels: 3,
        pixels: vec![90; 8 * 8 * 3],
    };
    std::fs::write(
        jpeg.path(),
        tessera_render::encode(&picture, tessera_render::Format::Jpeg, 85).unwrap(),
    )
    .unwrap();
    s3.put_file("a/photo.jpg", jpeg.path());
    s3.put_file("b/other.jp2", &rpcl(300, 200));
    let index_dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n{}{}",
        s3.origin_yaml("masters"),
        image_index(index_dir.path())
    );

    let run = index(&yaml, &["--origin", "masters", "--prefix", "a/"]);
    let report = format!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(1), "some objects failed:\n{report}");
    assert_eq!(run.count("objects"), 6, "{report}");
    assert_eq!(run.count("indexed"), 4, "{report}");
    assert_eq!(run.count("partial-ready"), 3, "{report}");
    assert_eq!(run.count("not partial"), 1, "{report}");
    assert_eq!(run.count("other formats"), 1, "{report}");
    assert!(run.stdout.contains("JPEG (e.g. a/photo.jpg)"), "{report}");
    assert_eq!(run.count("failed"), 1, "{report}");
    assert!(
        run.stdout
            .contains("LRCP progression: resolutions are not contiguous (e.g. a/lrcp.jp2)"),
        "{report}"
    );
    // An object that is no image is a failure, and says what it is.
    assert!(
        run.stdout.contains(
            "the image is not an image format this server knows: JPEG 2000, JPEG, PNG and TIFF masters are served (e.g. a/readme.txt)"
        ),
        "{report}"
    );
    assert_eq!(json_files(index_dir.path()), 4);
    assert!(
        s3.requests_for("b/other.jp2").is_empty(),
        "b/ is not listed"
    );

    // The server finds them: info.json needs no read of the object.
    let seen = s3.requests_for("a/r2.jp2").len();
    let t = Tessera::start(&format!(
        r#"{yaml}routes:
  - name: info
    match: {{ path: "/iiif/{{image}}/info.json" }}
    handler: {{ info: {{ origin: masters, key: "a/{{image}}" }} }}
"#
    ));
    let r = get("/iiif/r2.jp2/info.json").send(t.port);
    assert_eq!(r.status, 200, "{}", r.text());
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(info["width"], 320);
    assert_eq!(
        s3.requests_for("a/r2.jp2").len(),
        seen,
        "read from the index dir"
    );

    // A second run finds every index on disk.
    let again = index(&yaml, &["--origin", "masters", "--prefix", "a/"]);
    assert_eq!(again.count("indexed"), 4, "{}", again.stdout);
    assert_eq!(
        s3.requests_for("a/r1.jp2").len(),
        2,
        "HEAD and one header read, once"
    );
}

#[test]
fn indexes_a_directory_origin() {
    let images = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(images.path().join("deep/er")).unwrap();
    std::fs::copy(rpcl(300, 200), images.path().join("one.jp2")).unwrap();
    // No TLM: indexed by walking the tile-part headers.
    let no_tlm = jp2_with(320, 240, &["-p", "RPCL", "-TP", "R", "-n", "4"]);
    std::fs::copy(no_tlm, images.path().join("deep/er/two.jp2")).unwrap();
    let index_dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n  local: {{ dir: \"{}\" }}\n{}",
        images.path().display(),
        image_index(&index_dir.path().join("made-on-demand"))
    );

    let run = index(&yaml, &["--origin", "local", "--concurrency", "1"]);
    let report = format!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{report}");
    assert_eq!(run.count("objects"), 2, "{report}");
    assert_eq!(run.count("indexed"), 2, "{report}");
    assert_eq!(run.count("partial-ready"), 2, "{report}");
    assert_eq!(run.count("failed"), 0, "{report}");
    assert_eq!(json_files(&index_dir.path().join("made-on-demand")), 2);
}

/// Tiled files written tile by tile are partial-ready, but a small view reads a range per tile:
/// the summary counts them and names the command that makes it one; interleaved, a file is not
/// counted.
#[test]
fn names_tiled_files_written_tile_by_tile() {
    let images = tempfile::tempdir().unwrap();
    let by_tile = images.path().join("by-tile.jp2");
    let tiled = &["-p", "RPCL", "-t", "256,256", "-TP", "R", "-TLM", "-n", "4"];
    std::fs::copy(jp2_with(1200, 900, tiled), &by_tile).unwrap();
    let interleaved = Command::new(tessera_bin())
        .arg("interleave")
        .arg(&by_tile)
        .arg(images.path().join("interleaved.jp2"))
        .status()
        .unwrap();
    assert!(interleaved.success());
    std::fs::copy(rpcl(300, 200), images.path().join("single-tile.jp2")).unwrap();
    let index_dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "origins:\n  local: {{ dir: \"{}\" }}\n{}",
        images.path().display(),
        image_index(index_dir.path())
    );

    let run = index(&yaml, &["--origin", "local"]);
    let report = format!("{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, Some(0), "{report}");
    assert_eq!(run.count("partial-ready"), 3, "{report}");
    let by_tile_lines: Vec<_> = run
        .stdout
        .lines()
        .filter(|l| l.contains("written tile by tile"))
        .collect();
    assert_eq!(by_tile_lines.len(), 1, "{report}");
    let line = by_tile_lines[0].trim();
    assert!(line.starts_with("1  "), "{report}");
    assert!(
        line.contains("`tessera interleave` makes it one"),
        "{report}"
    );
    assert!(line.ends_with("(e.g. by-tile.jp2)"), "{report}");
}

#[test]
fn refuses_to_run_when_indexes_would_be_lost_or_the_origin_is_unknown() {
    let images = tempfile::tempdir().unwrap();
    let origin = format!(
        "origins:\n  local: {{ dir: \"{}\" }}\n",
        images.path().display()
    );

    let run = index(&origin, &["--origin", "local"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no image_index.dir"),
        "{}",
        run.stderr
    );

    let with_dir = format!("{origin}{}", image_index(images.path()));
    let run = index(&with_dir, &["--origin", "elsewhere"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("no origin \"elsewhere\"") && run.stderr.contains("(it has: local)"),
        "{}",
        run.stderr
    );
}
