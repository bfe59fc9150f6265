//! `small_view_decode MASTER.jp2 BOX [REPEATS] [PAUSE_MS]`: the decode of a small view alone
//! (`full/!BOX,BOX`), as `byte_range` makes and decodes it, timed: the codestream assembled from
//! the master's index for the reduce that view needs (as the smaller image's where it can be),
//! decoded `REPEATS` times on one thread and on two, exactly and without its last 1–3
//! bit-planes (`skip_last_bit_planes`, where the codestream allows it), with the PSNR of each
//! against the exact pixels.
//!
//! Why apart from the server: a request's decode time moves with everything else on a small
//! machine (`bench/views.sh` measures it there); this one measures the decoder alone. With
//! `PAUSE_MS`, each decode follows that long a pause, as a server's does between requests: on
//! a machine whose cores fall idle, a second thread then starts late (`docs/benchmarks.md`,
//! "Small views decoded alone"). Used by `bench/small_view_decode.sh`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_iiif::{ImageLimits, ImageRequest, Version};
use tessera_images::imaging::pipeline;
use tessera_images::resources::Indexed;
use tessera_openjpeg::{decode, DecodeOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(fit)) = (args.get(1), args.get(2).and_then(|b| b.parse::<u32>().ok()))
    else {
        eprintln!("usage: small_view_decode MASTER.jp2 BOX [REPEATS] [PAUSE_MS]");
        std::process::exit(2);
    };
    let repeats: usize = args
        .get(3)
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
        .max(1);
    let pause = Duration::from_millis(args.get(4).and_then(|p| p.parse().ok()).unwrap_or(0));

    let data = std::fs::read(path).expect("read the master");
    let (codestream, reduce, decoded_at) = small_view(&data, fit);
    let exact = time(&codestream, decoded_at, 1, 1, Duration::ZERO).1;
    println!(
        "{path}, full/!{fit},{fit} at reduce {reduce}: a codestream of {} bytes \
         (decoded at reduce {decoded_at}), {repeats} decodes each, {} ms pause before each",
        codestream.len(),
        pause.as_millis()
    );
    println!("| threads | planes left out | median ms | fastest ms | PSNR dB |");
    println!("|---:|---:|---:|---:|---:|");
    for threads in [1, 2] {
        for planes in 0..=3 {
            let lighter = match planes {
                0 => codestream.clone(),
                n => match tessera_jp2::without_last_planes(&codestream, n) {
                    Some(c) => c,
                    None => continue, // HTJ2K, layers, …: decoded exactly only
                },
            };
            let (times, pixels) = time(&lighter, decoded_at, threads, repeats, pause);
            println!(
                "| {threads} | {planes} | {:.2} | {:.2} | {} |",
                times[times.len() / 2],
                times[0],
                psnr(&pixels, &exact)
            );
        }
    }
}

/// The codestream `byte_range` decodes for `full/!fit,fit`, made by its own steps: the IIIF
/// request resolved, the index's plan for it (`pipeline::plan`), its ranges read from `data`,
/// assembled, and rewritten as the smaller image's where it can be (`pipeline::smaller_image`);
/// with the plan's reduce and the one to decode the codestream at.
fn small_view(data: &[u8], fit: u32) -> (Vec<u8>, u8, u8) {
    let prefix = &data[..data.len().min(8 << 20)];
    let header = tessera_jp2::Header::parse(prefix).expect("a JP2 header");
    let index = tessera_jp2::Jp2Index::from_header(&header).expect("a JP2 with TLM");
    let limits = ImageLimits::new(index.width, index.height);
    let indexed = Indexed {
        index: Arc::new(index),
        size: data.len() as u64,
        etag: None,
    };
    let request = format!("full/!{fit},{fit}/0/default.jpg");
    let resolved = ImageRequest::parse(Version::V2, &request)
        .and_then(|r| r.resolve(Version::V2, &limits))
        .expect("a IIIF request");
    let (reduce, plan) =
        pipeline::plan(&indexed, resolved.width, resolved.height).expect("a partial plan");
    let fetched: BTreeMap<u64, &[u8]> = plan
        .ranges
        .iter()
        .map(|r| (r.start, &data[r.start as usize..r.end as usize]))
        .collect();
    let assembled = tessera_jp2::assemble(&indexed.index, &plan, &fetched).expect("assembled");
    let (codestream, decoded_at) = pipeline::smaller_image(assembled, reduce);
    (codestream, reduce, decoded_at)
}

/// Decode `codestream` `repeats` times: the times in ms, sorted, and the last pixels.
fn time(
    codestream: &[u8],
    reduce: u8,
    threads: u32,
    repeats: usize,
    pause: Duration,
) -> (Vec<f64>, Vec<u8>) {
    let opts = DecodeOptions {
        reduce: u32::from(reduce),
        threads,
        strict: false,
        ..Default::default()
    };
    let mut times = Vec::with_capacity(repeats);
    let mut pixels = Vec::new();
    for _ in 0..repeats {
        std::thread::sleep(pause);
        let start = Instant::now();
        pixels = decode(codestream, &opts).expect("decoded").pixels;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (times, pixels)
}

fn psnr(a: &[u8], b: &[u8]) -> String {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    match se {
        0.0 => "exact".into(),
        se => format!(
            "{:.1}",
            10.0 * (255.0f64.powi(2) / (se / a.len() as f64)).log10()
        ),
    }
}
