//! Fixtures: PNM images generated here, compressed with Debian's `opj_compress`, and reference
//! decodes from `opj_decompress` (libopenjp2-tools, installed by scripts/deps.sh).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The fixture directory, under cargo's per-target temp dir. Fixtures are cached across runs
/// (their names include a hash of how they were made), so repeated runs neither regenerate nor
/// accumulate them.
pub fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tessera-openjpeg-fixtures-v1");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Deterministic test content: gradients, a checkerboard and some noise, so that every
/// resolution level and tile carries distinct data.
pub fn pattern(width: u32, height: u32, channels: u32) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity((width * height * channels) as usize);
    for y in 0..height {
        for x in 0..width {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed & 0x0F) as u32;
            let check = if ((x / 37) + (y / 23)) % 2 == 0 {
                60
            } else {
                0
            };
            let r = (x * 190 / width.max(1)) + check + noise;
            let g = (y * 190 / height.max(1)) + noise;
            let b = ((x ^ y) & 0x7F) + check;
            for v in [r, g, b].into_iter().take(channels as usize) {
                out.push(v.min(255) as u8);
            }
        }
    }
    out
}

/// Writes a binary PPM (3 channels) or PGM (1 channel).
pub fn write_pnm(path: &Path, width: u32, height: u32, channels: u32, pixels: &[u8]) {
    let magic = if channels == 1 { "P5" } else { "P6" };
    let mut data = format!("{magic}\n{width} {height}\n255\n").into_bytes();
    data.extend_from_slice(pixels);
    std::fs::write(path, data).unwrap();
}

/// Parses a binary 8-bit PPM/PGM as written by `opj_decompress`.
pub fn read_pnm(path: &Path) -> (u32, u32, u8, Vec<u8>) {
    let data = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if data[pos] == b'#' {
            while data[pos] != b'\n' {
                pos += 1;
            }
            continue;
        }
        let start = pos;
        while !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..pos]).into_owned());
    }
    pos += 1; // the single whitespace after maxval
    let channels = match fields[0].as_str() {
        "P5" => 1,
        "P6" => 3,
        other => panic!("unexpected PNM type {other}"),
    };
    assert_eq!(fields[3], "255", "expected 8-bit PNM");
    let w: u32 = fields[1].parse().unwrap();
    let h: u32 = fields[2].parse().unwrap();
    let pixels = data[pos..].to_vec();
    assert_eq!(pixels.len(), (w * h * channels) as usize);
    (w, h, channels as u8, pixels)
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install libopenjp2-tools: scripts/deps.sh)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generates a `width`×`height` image with `channels` (1 or 3) and compresses it to `name`
/// (extension .jp2 or .j2k) with `opj_compress` and extra `args`. Cached per process.
pub fn fixture(name: &str, width: u32, height: u32, channels: u32, args: &[&str]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (width, height, channels, args).hash(&mut h);
    let out = fixture_dir().join(format!("{:016x}-{name}", h.finish()));
    if out.exists() {
        return out;
    }
    // Tests run in parallel (and several test binaries at once) and may ask for the same
    // fixture: build under a unique name, then rename into place.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = fixture_dir().join(format!("tmp-{}-{n}-{name}", std::process::id()));
    let ext = if channels == 1 { "pgm" } else { "ppm" };
    let src = tmp.with_extension(ext);
    write_pnm(
        &src,
        width,
        height,
        channels,
        &pattern(width, height, channels),
    );
    run(Command::new("opj_compress")
        .arg("-i")
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .args(args));
    std::fs::remove_file(&src).ok();
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// A scratch file path unique to this process.
pub fn scratch(name: &str) -> PathBuf {
    fixture_dir().join(format!("scratch-{}-{name}", std::process::id()))
}

/// The reference decode: `opj_decompress -i file -o out.pnm -r reduce [-d region] [extra]`.
pub fn reference(
    file: &Path,
    reduce: u32,
    region: Option<(u32, u32, u32, u32)>,
    gray: bool,
    extra: &[&str],
) -> (u32, u32, u8, Vec<u8>) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = scratch(&format!("ref-{n}.{}", if gray { "pgm" } else { "ppm" }));
    let mut cmd = Command::new("opj_decompress");
    cmd.arg("-i")
        .arg(file)
        .arg("-o")
        .arg(&out)
        .arg("-r")
        .arg(reduce.to_string())
        .args(extra);
    if let Some((x0, y0, x1, y1)) = region {
        cmd.arg("-d").arg(format!("{x0},{y0},{x1},{y1}"));
    }
    run(&mut cmd);
    let decoded = read_pnm(&out);
    std::fs::remove_file(&out).ok();
    decoded
}
