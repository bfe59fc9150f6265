#![forbid(unsafe_code)]
//! `cache-sim`: how well does the hot cache's eviction policy keep the images that are viewed?
//!
//! The hot cache (`tessera-hotcache`) holds JPEG2000 masters copied from S3 on local disk
//! within a byte budget; every miss is a whole-object copy from the origin, so the figures
//! that matter are the **byte hit ratio** (bytes served from disk / bytes requested) and the
//! bytes copied from the origin, more than the object hit ratio. Its eviction policy,
//! [`tessera_hotcache::policy::Policy`], is a segmented LRU meant to survive a crawler's one
//! pass over cold images. This program measures that policy against simple and ideal ones
//! on synthetic traces, without any I/O:
//!
//! * **Corpus**: N images with log-normal sizes like JP2 masters (median 40 MB, σ = 1, so
//!   95% fall within 5.6–284 MB; capped at 1 GB).
//! * **Trace**: M views; image popularity is Zipf (s = 0.9) over a random permutation of the
//!   images, so popularity does not depend on size. Each event is one *view* at time = its
//!   index, which is why the policy runs with `reuse_gap = 1` (any later view is a re-use).
//! * **Budget**: a fraction (default 10%) of the corpus bytes, with the hot cache's
//!   watermarks: before inserting an object of size S, if `used + S` exceeds 90% of the
//!   budget, evict down to 80% − S.
//! * **Policies**, all driven through the same calls (see [`sim`]):
//!   Tessera's `Policy` exactly as the hot cache drives it; plain LRU; Belady's offline
//!   policy (evict what is requested furthest in the future — for mixed sizes this is the
//!   classic heuristic, not a proven optimum); and a size-aware offline variant.
//! * **Scenarios**: the Zipf trace alone, and the same trace with a share of its events
//!   (default 20%) replaced by a one-pass scan over never-repeated cold images.
//!
//! Hit ratios are counted over the second half of the trace only; the first half warms the
//! cache. Everything is seeded (`--seed`), so a run is repeatable.

mod sim;
mod workload;

use std::time::Instant;

use clap::Parser;
use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;

use sim::{replay, Belady, BeladySize, Budget, Cache, Lru, Stats, Tessera};
use workload::{SizeModel, MB};

#[derive(Parser, Debug)]
#[command(
    name = "cache-sim",
    about = "Replay synthetic IIIF view traces through the hot cache's eviction policy, LRU and Belady"
)]
struct Args {
    /// Images in the corpus.
    #[arg(long, default_value_t = 20_000)]
    images: u32,
    /// Views in the trace.
    #[arg(long, default_value_t = 500_000)]
    views: u32,
    /// Seed for the corpus, the trace and the crawler.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Zipf exponent of image popularity.
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
    /// Cache budget as a share of the corpus bytes.
    #[arg(long, default_value_t = 0.1)]
    budget_fraction: f64,
    /// Share of the events replaced by the crawler in the second scenario.
    #[arg(long, default_value_t = 0.2)]
    scan_fraction: f64,
    /// Median image size, MB.
    #[arg(long, default_value_t = 40.0)]
    median_mb: f64,
    /// Standard deviation of ln(size).
    #[arg(long, default_value_t = 1.0)]
    sigma: f64,
    /// `Policy`'s protected_share.
    #[arg(long, default_value_t = 0.8)]
    protected_share: f64,
    /// `Policy`'s reuse_gap, in events.
    #[arg(long, default_value_t = 1)]
    reuse_gap: u64,
    /// Skip the size-aware Belady variant.
    #[arg(long)]
    no_size_aware: bool,
}

struct Row {
    name: String,
    stats: Stats,
    secs: f64,
}

fn main() {
    let args = Args::parse();
    assert!(args.images > 0 && args.views > 1, "need images and views");
    assert!(
        args.views < u32::MAX / 2,
        "views must fit u32 event indices"
    );
    let started = Instant::now();

    let model = SizeModel {
        median: args.median_mb * MB,
        sigma: args.sigma,
        cap: SizeModel::jp2_masters().cap,
    };
    let n = args.images as usize;
    let m = args.views as usize;
    let mut corpus_rng = Xoshiro256PlusPlus::seed_from_u64(args.seed);
    let mut trace_rng = Xoshiro256PlusPlus::seed_from_u64(args.seed.wrapping_add(1));
    let mut crawler_rng = Xoshiro256PlusPlus::seed_from_u64(args.seed.wrapping_add(2));
    let sizes = workload::corpus(n, model, &mut corpus_rng);
    let trace = workload::zipf_trace(n, m, args.zipf, &mut trace_rng);
    let mut sizes_scan = sizes.clone();
    let trace_scan = workload::with_crawler(
        &trace,
        &mut sizes_scan,
        args.scan_fraction,
        model,
        &mut crawler_rng,
    );
    let names: Vec<String> = (0..sizes_scan.len())
        .map(|i| format!("img-{i:06}.jp2"))
        .collect();
    let corpus_bytes: u64 = sizes.iter().sum();
    let capacity = (corpus_bytes as f64 * args.budget_fraction) as u64;
    let budget = Budget::new(capacity);
    let measure_from = m / 2;
    let generated = started.elapsed().as_secs_f64();

    print_header(&args, &sizes, &trace, budget, corpus_bytes, measure_from);

    println!("## Scenario 1: Zipf views\n");
    let rows = run_policies(&args, &trace, &sizes, budget, measure_from, &names);
    print_table(&rows, false);

    let cold = sizes_scan.len() - n;
    let cold_bytes: u64 = sizes_scan[n..].iter().sum();
    println!("## Scenario 2: Zipf views + a crawler\n");
    println!(
        "The same trace with {cold} of its {m} events ({:.1}%) replaced by a one-pass scan over \
         {cold} cold images that are never requested again ({} in all, same size model). The \
         budget is unchanged ({}). \"Viewers\" columns count only requests for the {n} corpus \
         images; every crawler request is a miss for every policy.\n",
        100.0 * cold as f64 / m as f64,
        fmt_bytes(cold_bytes),
        fmt_bytes(capacity),
    );
    let rows = run_policies(
        &args,
        &trace_scan,
        &sizes_scan,
        budget,
        measure_from,
        &names,
    );
    print_table(&rows, true);

    println!("Notes:\n");
    println!(
        "- Warm-up: hit ratios and the \"copied\" column count only the second half of each \
         trace (events {measure_from}..{}); the first half warms the cache. The last column \
         counts copies over the whole trace.",
        m - 1
    );
    println!(
        "- Belady evicts the objects whose next request is furthest away (never = infinitely \
         far). That is optimal for equal sizes; with sizes as different as these it is the \
         classic heuristic, not a proven optimum (the sized problem is NP-hard), so it is a \
         reference point rather than a strict upper bound. All policies admit every miss \
         (the hot cache must hold a file to serve it) and evict only in watermark rounds."
    );
    if !args.no_size_aware {
        println!(
            "- Belady-size evicts never-again objects first, then the largest size × distance \
             to the next request. It targets the object hit ratio, not the byte hit ratio."
        );
    }
    println!(
        "- Time = event index; Tessera's `Policy` runs with protected_share {} and reuse_gap \
         {} (each event is a distinct view), called as the hot cache calls it: `touch` on a \
         hit, `insert` after a miss, `evict_to(low - S, capacity)` first when used + S > high.",
        args.protected_share, args.reuse_gap
    );
    println!(
        "\nRun time: {:.2} s in all ({generated:.2} s generating the corpus and traces).",
        started.elapsed().as_secs_f64()
    );
}

fn run_policies(
    args: &Args,
    trace: &[u32],
    sizes: &[u64],
    budget: Budget,
    measure_from: usize,
    names: &[String],
) -> Vec<Row> {
    let ids = sizes.len();
    let viewer_ids = args.images;
    let next = sim::next_uses(trace, ids);
    let run = |name: String, cache: &mut dyn Cache| {
        let t0 = Instant::now();
        let stats = replay(cache, trace, sizes, budget, measure_from, viewer_ids);
        Row {
            name,
            stats,
            secs: t0.elapsed().as_secs_f64(),
        }
    };
    let mut rows = vec![
        run(
            format!(
                "Tessera SLRU (protected {}, reuse_gap {})",
                args.protected_share, args.reuse_gap
            ),
            &mut Tessera::new(args.protected_share, args.reuse_gap, budget.capacity, names),
        ),
        run("LRU".into(), &mut Lru::new(ids)),
        run(
            "Belady (furthest next use; offline)".into(),
            &mut Belady::new(ids, &next),
        ),
    ];
    if !args.no_size_aware {
        rows.push(run(
            "Belady-size (size × distance; offline)".into(),
            &mut BeladySize::new(&next),
        ));
    }
    rows
}

fn print_header(
    args: &Args,
    sizes: &[u64],
    trace: &[u32],
    budget: Budget,
    corpus_bytes: u64,
    measure_from: usize,
) {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2] as f64 / MB;
    let mean = corpus_bytes as f64 / sizes.len() as f64 / MB;
    let within = sorted
        .iter()
        .filter(|&&s| (5.0 * MB..=300.0 * MB).contains(&(s as f64)))
        .count();
    let mut seen = vec![false; sizes.len()];
    for &id in trace {
        seen[id as usize] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    let hot_set = {
        // Byte hit ratio of a fixed set of the most viewed images (known in advance) that fits
        // in the low watermark: what a perfect frequency-based cache could reach.
        let measured = &trace[measure_from..];
        let mut counts = vec![0u32; sizes.len()];
        for &id in measured {
            counts[id as usize] += 1;
        }
        let mut by_count: Vec<usize> = (0..sizes.len()).collect();
        by_count.sort_unstable_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
        let total: u64 = measured.iter().map(|&id| sizes[id as usize]).sum();
        let (mut held, mut bytes_served) = (0u64, 0u64);
        for id in by_count {
            if held + sizes[id] > budget.low {
                continue;
            }
            held += sizes[id];
            bytes_served += u64::from(counts[id]) * sizes[id];
        }
        bytes_served as f64 / total.max(1) as f64
    };

    println!("# cache-sim: hot cache eviction policies\n");
    println!(
        "Parameters: --images {} --views {} --seed {} --zipf {} --budget-fraction {} \
         --scan-fraction {} --median-mb {} --sigma {} --protected-share {} --reuse-gap {}\n",
        args.images,
        args.views,
        args.seed,
        args.zipf,
        args.budget_fraction,
        args.scan_fraction,
        args.median_mb,
        args.sigma,
        args.protected_share,
        args.reuse_gap,
    );
    println!(
        "- Corpus: {} images, {} in all. Sizes log-normal (median {} MB, σ {}, cap 1 GB): \
         median {median:.1} MB, mean {mean:.1} MB, {:.1}% between 5 and 300 MB, largest {:.0} MB.",
        sizes.len(),
        fmt_bytes(corpus_bytes),
        args.median_mb,
        args.sigma,
        100.0 * within as f64 / sizes.len() as f64,
        *sorted.last().unwrap_or(&0) as f64 / MB,
    );
    println!(
        "- Trace: {} views, Zipf s = {} over the images (ranks shuffled, so size and \
         popularity are independent); {distinct} distinct images viewed.",
        trace.len(),
        args.zipf,
    );
    println!(
        "- Budget: {} of the corpus = {}; eviction when a copy would take use over 90% ({}), \
         down to 80% ({}) minus the incoming object.",
        args.budget_fraction,
        fmt_bytes(budget.capacity),
        fmt_bytes(budget.high),
        fmt_bytes(budget.low),
    );
    println!(
        "- Reference (static, offline): the images most viewed in the second half that fit in \
         80% of the budget would serve {:.1}% of that half's requested bytes.",
        100.0 * hot_set
    );
    println!(
        "- Warm-up: hit ratios count only the second half of the trace (events {measure_from} \
         on).\n"
    );
}

fn print_table(rows: &[Row], viewers: bool) {
    if viewers {
        println!(
            "| Policy | Byte hit ratio | Object hit ratio | Byte hit ratio (viewers) | \
             Object hit ratio (viewers) | Copied from origin (2nd half) | Copied (whole trace) | Sim time |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    } else {
        println!(
            "| Policy | Byte hit ratio | Object hit ratio | Copied from origin (2nd half) | \
             Copied (whole trace) | Sim time |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for r in rows {
        let m = r.stats.measured;
        let v = r.stats.measured_viewers;
        let mut cells = vec![
            r.name.clone(),
            pct(m.byte_hit_ratio()),
            pct(m.object_hit_ratio()),
        ];
        if viewers {
            cells.push(pct(v.byte_hit_ratio()));
            cells.push(pct(v.object_hit_ratio()));
        }
        cells.push(fmt_bytes(m.origin_bytes()));
        cells.push(fmt_bytes(r.stats.whole.origin_bytes()));
        cells.push(format!("{:.2} s", r.secs));
        println!("| {} |", cells.join(" | "));
    }
    let too_large: u64 = rows.iter().map(|r| r.stats.too_large).max().unwrap_or(0);
    if too_large > 0 {
        println!("\n{too_large} requests were for objects over the high watermark (never cached).");
    }
    println!();
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Decimal units, like the MB of the size model.
fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e12 {
        format!("{:.2} TB", b / 1e12)
    } else if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}
