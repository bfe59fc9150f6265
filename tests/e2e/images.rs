//! Test JP2s, made by Debian's `opj_compress` from a generated picture, kept in cargo's test
//! scratch directory so that every test (and every run) reuses them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Serialises fixture creation between tests running in parallel.
static MAKING: Mutex<()> = Mutex::new(());

/// A JP2 of `width`×`height`, in 256-pixel tiles or as one tile, RPCL with 5 resolution levels.
pub fn jp2(width: u32, height: u32, tiled: bool) -> PathBuf {
    let mut args = vec!["-p", "RPCL", "-n", "5", "-r", "20"];
    if tiled {
        args.extend(["-t", "256,256"]);
    }
    jp2_with(width, height, &args)
}

/// A JP2 of `width`×`height` made with these `opj_compress` arguments.
pub fn jp2_with(width: u32, height: u32, args: &[&str]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jp2-fixtures");
    let name = format!(
        "{width}x{height}{}.jp2",
        args.join("").replace([',', ' '], "_")
    );
    let path = dir.join(&name);
    let _guard = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let ppm = dir.join(format!("{name}.ppm"));
    std::fs::write(&ppm, picture(width, height)).unwrap();
    let tmp = dir.join(format!("{name}.part.jp2"));
    let mut cmd = Command::new("opj_compress");
    cmd.arg("-i").arg(&ppm).arg("-o").arg(&tmp);
    cmd.args(args);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run opj_compress ({e}); install Debian's libopenjp2-tools (scripts/deps.sh does)")
    });
    assert!(
        out.status.success(),
        "opj_compress failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&ppm).ok();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A binary PPM with gradients and fine detail, so every tile differs.
fn picture(width: u32, height: u32) -> Vec<u8> {
    let mut out = format!("P6\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            out.push((x * 255 / width) as u8);
            out.push((y * 255 / height) as u8);
            out.push(((x / 7) ^ (y / 5)) as u8);
        }
    }
    out
}

/// Decode `file` at `reduce` with Debian's `opj_decompress` into raw RGB bytes: the reference.
pub fn opj_decode(file: &std::path::Path, reduce: u8) -> (u32, u32, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ppm");
    let status = Command::new("opj_decompress")
        .arg("-i")
        .arg(file)
        .arg("-o")
        .arg(&out)
        .args(["-r", &reduce.to_string()])
        .output()
        .expect("run opj_decompress");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(out).unwrap();
    // P6, optional comment lines, width height, maxval, one whitespace, pixels.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i] == b'#' {
            while bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, bytes[i + 1..].to_vec())
}
