//! Test JP2s, made by Debian's `opj_compress` (and Grok's `grk_compress` for HTJ2K) from a
//! generated picture, kept in cargo's test scratch directory so that every test (and every run)
//! reuses them.

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
    encode(width, height, args, false)
}

/// As [`jp2_with`], from a picture with fine noise that compresses about as badly as a
/// photograph (the plain picture compresses 16:1 even losslessly, so its tiles are tiny).
pub fn photo_like_jp2_with(width: u32, height: u32, args: &[&str]) -> PathBuf {
    encode(width, height, args, true)
}

/// An HTJ2K JP2 of `width`×`height` as the README's recipe writes one with Grok's
/// `grk_compress`: lossless, one tile, RPCL, tile-parts by resolution, TLM, `resolutions`
/// resolutions (`-n`, as for `opj_compress`: decomposition levels + 1).
pub fn htj2k_jp2(width: u32, height: u32, resolutions: u8) -> PathBuf {
    let resolutions = resolutions.to_string();
    let args = [
        "-M",
        "64",
        "-p",
        "RPCL",
        "-u",
        "R",
        "-X",
        "-n",
        &resolutions,
    ];
    make(width, height, &args, false, "grk_compress", "grokj2k-tools")
}

fn encode(width: u32, height: u32, args: &[&str], noisy: bool) -> PathBuf {
    make(
        width,
        height,
        args,
        noisy,
        "opj_compress",
        "libopenjp2-tools",
    )
}

/// The picture encoded by `encoder` (which takes `-i picture.ppm -o out.jp2` and `args`; Debian
/// has it in `package`).
fn make(
    width: u32,
    height: u32,
    args: &[&str],
    noisy: bool,
    encoder: &str,
    package: &str,
) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jp2-fixtures");
    let name = format!(
        "{width}x{height}{}-{encoder}{}.jp2",
        if noisy { "-photo" } else { "" },
        args.join("").replace([',', ' '], "_")
    );
    let path = dir.join(&name);
    let _guard = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let ppm = dir.join(format!("{name}.ppm"));
    std::fs::write(&ppm, picture(width, height, noisy)).unwrap();
    let tmp = dir.join(format!("{name}.part.jp2"));
    let mut cmd = Command::new(encoder);
    cmd.arg("-i").arg(&ppm).arg("-o").arg(&tmp);
    cmd.args(args);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {encoder} ({e}); install Debian's {package} (scripts/deps.sh does)")
    });
    assert!(
        out.status.success() && tmp.exists(),
        "{encoder} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&ppm).ok();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// A binary PPM with gradients and fine detail, so every tile differs; with `noisy`, each
/// sample also gets up to 15 levels of deterministic noise.
pub fn picture(width: u32, height: u32, noisy: bool) -> Vec<u8> {
    let mut out = format!("P6\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        for x in 0..width {
            let noise = |c: u32| -> u8 {
                if !noisy {
                    return 0;
                }
                let h = (x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ c)
                    .wrapping_mul(0xC2B2_AE3D);
                (h >> 28) as u8
            };
            out.push(((x * 255 / width) as u8).wrapping_add(noise(1)));
            out.push(((y * 255 / height) as u8).wrapping_add(noise(2)));
            out.push((((x / 7) ^ (y / 5)) as u8).wrapping_add(noise(3)));
        }
    }
    out
}

/// Decode `file` at `reduce` with Debian's `opj_decompress` into raw RGB bytes: the reference.
pub fn opj_decode(file: &std::path::Path, reduce: u8) -> (u32, u32, Vec<u8>) {
    opj_decode_region(file, reduce, None)
}

/// [`opj_decode`] of a region `x0,y0,x1,y1` (full-resolution coordinates).
pub fn opj_decode_region(
    file: &std::path::Path,
    reduce: u8,
    region: Option<(u32, u32, u32, u32)>,
) -> (u32, u32, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ppm");
    let mut cmd = Command::new("opj_decompress");
    cmd.arg("-i")
        .arg(file)
        .arg("-o")
        .arg(&out)
        .args(["-r", &reduce.to_string()]);
    if let Some((x0, y0, x1, y1)) = region {
        cmd.args(["-d", &format!("{x0},{y0},{x1},{y1}")]);
    }
    let status = cmd.output().expect("run opj_decompress");
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

/// The IIIF validator's test image (`iiif-validate.py` checks the colour of its 100-pixel
/// squares): 1000×1000, square (x, y) in the colour the validator expects, written lossless.
pub fn validator_image() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jp2-fixtures");
    let path = dir.join("iiif-validator.jp2");
    let _guard = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if path.exists() {
        return path;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let mut ppm = b"P6\n1000 1000\n255\n".to_vec();
    for y in 0..1000 {
        for x in 0..1000 {
            ppm.extend_from_slice(&VALIDATOR_COLOURS[x / 100][y / 100]);
        }
    }
    let src = dir.join("iiif-validator.ppm");
    std::fs::write(&src, ppm).unwrap();
    let tmp = dir.join("iiif-validator.part.jp2");
    let out = Command::new("opj_compress")
        .arg("-i")
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .args(["-p", "RPCL", "-TP", "R", "-TLM", "-n", "5"])
        .output()
        .expect("run opj_compress");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&src).ok();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// `colorInfo` of iiif_validator/validator.py: `[x][y]` is the colour of the square in column
/// x, row y.
const VALIDATOR_COLOURS: [[[u8; 3]; 10]; 10] = [
    [
        [61, 170, 126],
        [61, 107, 178],
        [82, 85, 234],
        [164, 122, 110],
        [129, 226, 88],
        [91, 37, 121],
        [138, 128, 42],
        [6, 85, 234],
        [121, 109, 204],
        [65, 246, 84],
    ],
    [
        [195, 133, 120],
        [171, 43, 102],
        [118, 45, 130],
        [242, 105, 171],
        [5, 85, 105],
        [113, 58, 41],
        [223, 69, 3],
        [45, 79, 140],
        [35, 117, 248],
        [121, 156, 184],
    ],
    [
        [168, 92, 163],
        [28, 91, 143],
        [86, 41, 173],
        [111, 230, 29],
        [174, 189, 7],
        [18, 139, 88],
        [93, 168, 128],
        [35, 2, 14],
        [204, 105, 137],
        [18, 86, 128],
    ],
    [
        [107, 55, 178],
        [251, 40, 184],
        [47, 36, 139],
        [2, 127, 170],
        [224, 12, 114],
        [133, 67, 108],
        [239, 174, 209],
        [85, 29, 156],
        [8, 55, 188],
        [240, 125, 7],
    ],
    [
        [112, 167, 30],
        [166, 63, 161],
        [232, 227, 23],
        [74, 80, 135],
        [79, 97, 47],
        [145, 160, 80],
        [45, 160, 79],
        [12, 54, 215],
        [203, 83, 70],
        [78, 28, 46],
    ],
    [
        [102, 193, 63],
        [225, 55, 91],
        [107, 194, 147],
        [167, 24, 95],
        [249, 214, 96],
        [167, 34, 136],
        [53, 254, 209],
        [172, 222, 21],
        [153, 77, 51],
        [137, 39, 183],
    ],
    [
        [159, 182, 192],
        [128, 252, 173],
        [148, 162, 90],
        [192, 165, 115],
        [154, 102, 2],
        [107, 237, 62],
        [111, 236, 219],
        [129, 113, 172],
        [239, 204, 166],
        [60, 96, 37],
    ],
    [
        [72, 172, 227],
        [119, 51, 100],
        [209, 85, 165],
        [87, 172, 159],
        [188, 42, 162],
        [99, 3, 54],
        [7, 42, 37],
        [105, 155, 100],
        [38, 220, 240],
        [98, 46, 2],
    ],
    [
        [18, 223, 145],
        [189, 121, 17],
        [88, 3, 210],
        [181, 16, 43],
        [189, 39, 244],
        [123, 147, 116],
        [246, 148, 214],
        [223, 177, 199],
        [77, 18, 136],
        [235, 36, 21],
    ],
    [
        [146, 137, 176],
        [84, 248, 55],
        [61, 144, 79],
        [110, 251, 49],
        [43, 105, 132],
        [165, 131, 55],
        [60, 23, 225],
        [147, 197, 226],
        [80, 67, 104],
        [161, 119, 182],
    ],
];

/// A copy of `file` (a single-tile JP2) whose headers declare `width`×`height` (image and
/// tile), as a decompression bomb does: a few kilobytes claiming gigapixels.
pub fn declaring(file: &std::path::Path, width: u32, height: u32) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    let find = |bytes: &[u8], what: &[u8]| {
        bytes
            .windows(what.len())
            .position(|w| w == what)
            .expect("marker")
    };
    let ihdr = find(&bytes, b"ihdr") + 4;
    bytes[ihdr..ihdr + 4].copy_from_slice(&height.to_be_bytes());
    bytes[ihdr + 4..ihdr + 8].copy_from_slice(&width.to_be_bytes());
    let siz = find(&bytes, &[0xFF, 0x51]);
    for (offset, value) in [(6, width), (10, height), (22, width), (26, height)] {
        bytes[siz + offset..siz + offset + 4].copy_from_slice(&value.to_be_bytes());
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("jp2-fixtures")
        .join(format!("declares-{width}x{height}.jp2"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, bytes).unwrap();
    out
}
