//! `tessera index`: build the JP2 header indexes of a whole origin prefix ahead of traffic.
//!
//! The `byte_range` and `info` handlers need an image's header index before they can answer;
//! built on demand, that costs the first request for each image a few ranged reads of the
//! origin. Indexing a collection once, after it is ingested, moves that cost off the request
//! path. The indexes are built by the proxy's own [`IndexStore`], from the same config, so they
//! land in `image_index.dir` under the names `tessera run` looks for.
//!
//! The summary also answers the question an operator has about a collection: how much of it
//! can be served by partial reads, which of those are tiled files written tile by tile (a range
//! per tile for a small view, until `tessera interleave` rewrites them), and why the rest cannot
//! (usually the progression order).

use clap::Args;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_images::resources::{ImageIndex, IndexError, IndexStore, Origins};
use tessera_jp2::Jp2Index;
use tessera_origin::Origin;
use tessera_proxy::runtime::Runtime;
use tessera_proxy::{Builder, ConfigSource};
use tokio::task::JoinSet;

/// Exit status when some objects could not be indexed.
const SOME_FAILED: u8 = 1;
/// Exit status when nothing was done.
const CANNOT_RUN: u8 = 2;
/// Reasons and failure messages shown in the summary, most frequent first.
const TOP: usize = 5;
/// A progress line at least this often, and after every `PROGRESS_EVERY` objects.
const PROGRESS_PERIOD: Duration = Duration::from_secs(1);
const PROGRESS_EVERY: usize = 100;
/// The reduce level whose plan decides "partial-ready": the handlers read at most 1/8 scale.
const PARTIAL_REDUCE: u8 = 3;

pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  every object listed was indexed, or there were none (an index that allows no partial
     reads is still an index: such images are served by reading the whole file)
  1  some objects could not be indexed (not an image format served, damaged, or an origin
     error); the others were, and the summary names the reasons. JPEG, PNG and TIFF masters
     need no index and are counted apart (as other formats), by format
  2  nothing was done: the config is invalid, the origin is unknown, the config has no
     image_index.dir, the directory is not writable, or the listing failed";

#[derive(Args)]
pub struct IndexArgs {
    /// The config file: the one `tessera run` serves with.
    #[arg(long, short)]
    config: PathBuf,
    /// The origin to index, by its name under `origins:`.
    #[arg(long)]
    origin: String,
    /// Index only keys starting with this (a plain string prefix: `a/` is everything in the
    /// folder `a`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Objects indexed at the same time.
    #[arg(long, default_value = "8")]
    concurrency: NonZeroUsize,
}

/// What a run needs, taken from the built config.
struct Job {
    origin_name: String,
    origin: Arc<dyn Origin>,
    store: Arc<IndexStore>,
    dir: PathBuf,
}

/// Why nothing could be done: printed, then exit status 2.
struct CannotRun(String);

pub fn run(builder: &Builder, args: IndexArgs) -> ExitCode {
    match run_inner(builder, &args) {
        Ok(tally) if tally.failed.count() > 0 => ExitCode::from(SOME_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(CannotRun(message)) => {
            eprintln!("tessera index: {message}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

fn run_inner(builder: &Builder, args: &IndexArgs) -> Result<Tally, CannotRun> {
    let job = prepare(builder, args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CannotRun(format!("cannot start a runtime: {e}")))?;
    let started = Instant::now();
    let tally = rt.block_on(async {
        eprintln!(
            "listing {} ({}) under {:?}",
            job.origin_name,
            job.origin.describe(),
            args.prefix
        );
        let keys = job
            .origin
            .list(&args.prefix)
            .await
            .map_err(|e| CannotRun(format!("cannot list origin {:?}: {e}", job.origin_name)))?;
        eprintln!("{} objects to index", keys.len());
        Ok(index_all(&job, keys, args.concurrency.get()).await)
    })?;
    print_summary(&job, &args.prefix, &tally, started.elapsed());
    Ok(tally)
}

/// Load and build the config, find the origin, and make sure indexes will be kept.
fn prepare(builder: &Builder, args: &IndexArgs) -> Result<Job, CannotRun> {
    let config_errors = |e: tessera_proxy::config::ConfigErrors| {
        // One problem a line, as `tessera check` prints them.
        CannotRun(format!(
            "{} is not a valid config:\n{e}",
            args.config.display()
        ))
    };
    let (config, source) = ConfigSource::File(args.config.clone())
        .load()
        .map_err(config_errors)?;
    let runtime =
        Runtime::build(config, &source, builder.registry(), None).map_err(config_errors)?;
    let resource = |what: &str| CannotRun(format!("this binary has no {what}"));
    let origins = runtime
        .resources
        .get::<Origins>()
        .ok_or_else(|| resource("origins"))?;
    let origin = origins.get(&args.origin).map_err(|_| {
        let known: Vec<&str> = origins.names().collect();
        CannotRun(format!(
            "no origin {:?} in {} (it has: {})",
            args.origin,
            args.config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let index = runtime
        .resources
        .get::<ImageIndex>()
        .ok_or_else(|| resource("image index"))?;
    let dir = index.config.dir.clone().ok_or_else(|| {
        CannotRun(format!(
            "{} has no image_index.dir: the indexes would be built in memory and lost when \
             this command exits; set `image_index: {{ dir: ... }}`",
            args.config.display()
        ))
    })?;
    let dir = PathBuf::from(dir);
    check_writable(&dir)?;
    Ok(Job {
        origin_name: args.origin.clone(),
        origin,
        store: index.store.clone(),
        dir,
    })
}

/// The store logs a failed write and carries on; a batch run should refuse to start instead.
fn check_writable(dir: &Path) -> Result<(), CannotRun> {
    let probe = dir.join(format!(".tessera-index-probe.{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            CannotRun(format!(
                "the index directory {} is not writable: {e}",
                dir.display()
            ))
        })
}

/// What became of one object.
enum Outcome {
    /// Indexed, and a reduced read needs only some of the file; `by_tile`: a tiled file written
    /// tile by tile, whose small views read a range per tile (`tessera interleave` makes it one).
    Partial { by_tile: bool },
    /// Indexed, but only whole-file reads can serve it; why.
    WholeOnly(String),
    /// A JPEG, PNG or TIFF master: nothing to index (info and render read its local copy).
    OtherFormat(String),
    /// Not indexed; why.
    Failed(String),
}

async fn index_one(
    store: Arc<IndexStore>,
    origin: Arc<dyn Origin>,
    key: String,
) -> (String, Outcome) {
    // The store refuses truncated files itself (their tile-parts run past the end).
    let outcome = match store.get(&origin, &key).await {
        Ok(indexed) => partial_or_not(&indexed.index),
        Err(IndexError::Raster(format)) => Outcome::OtherFormat(format.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    (key, outcome)
}

fn partial_or_not(index: &Jp2Index) -> Outcome {
    match index.plan(index.levels.min(PARTIAL_REDUCE), 0) {
        Ok(_) => Outcome::Partial {
            by_tile: !index.is_interleaved(),
        },
        Err(unsupported) => Outcome::WholeOnly(unsupported.reason),
    }
}

/// How the summary names partial-ready files written tile by tile.
const BY_TILE: &str =
    "written tile by tile: a small view reads a range per tile (`tessera interleave` makes it one)";

/// Index `keys`, `concurrency` at a time, reporting progress on stderr.
async fn index_all(job: &Job, keys: Vec<String>, concurrency: usize) -> Tally {
    let mut tally = Tally {
        total: keys.len(),
        ..Tally::default()
    };
    let mut pending = keys.into_iter();
    let mut running = JoinSet::new();
    let mut tick = tokio::time::interval(PROGRESS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    loop {
        while running.len() < concurrency {
            let Some(key) = pending.next() else { break };
            running.spawn(index_one(job.store.clone(), job.origin.clone(), key));
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some(done) = running.join_next() => {
                match done {
                    Ok((key, outcome)) => tally.record(&key, outcome),
                    Err(e) => tally.record("?", Outcome::Failed(format!("internal error: {e}"))),
                }
                if tally.done.is_multiple_of(PROGRESS_EVERY) {
                    eprintln!("{}", tally.progress());
                    tick.reset();
                }
            }
            _ = tick.tick() => eprintln!("{}", tally.progress()),
        }
    }
    tally
}

/// Counts, and the reasons behind the ones that are not simply "indexed".
#[derive(Default)]
struct Tally {
    total: usize,
    done: usize,
    indexed: usize,
    partial: usize,
    /// Partial-ready files written tile by tile.
    by_tile: Reasons,
    whole_only: Reasons,
    other_formats: Reasons,
    failed: Reasons,
}

impl Tally {
    fn record(&mut self, key: &str, outcome: Outcome) {
        self.done += 1;
        match outcome {
            Outcome::Partial { by_tile } => {
                self.indexed += 1;
                self.partial += 1;
                if by_tile {
                    self.by_tile.add(BY_TILE.into(), key);
                }
            }
            Outcome::WholeOnly(reason) => {
                self.indexed += 1;
                self.whole_only.add(reason, key);
            }
            Outcome::OtherFormat(format) => self.other_formats.add(format, key),
            Outcome::Failed(reason) => self.failed.add(reason, key),
        }
    }

    fn progress(&self) -> String {
        format!(
            "{}/{} done: {} indexed ({} partial-ready), {} failed",
            self.done,
            self.total,
            self.indexed,
            self.partial,
            self.failed.count()
        )
    }
}

/// Objects grouped by a reason, each group with its count and the first key seen.
#[derive(Default)]
struct Reasons(BTreeMap<String, (usize, String)>);

impl Reasons {
    fn add(&mut self, reason: String, key: &str) {
        self.0.entry(reason).or_insert((0, key.to_string())).0 += 1;
    }

    fn count(&self) -> usize {
        self.0.values().map(|(n, _)| n).sum()
    }

    /// `(count, reason, example key)`, most frequent first.
    fn ranked(&self) -> Vec<(usize, &str, &str)> {
        let mut all: Vec<_> = self
            .0
            .iter()
            .map(|(reason, (n, key))| (*n, reason.as_str(), key.as_str()))
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        all
    }

    fn print(&self) {
        let ranked = self.ranked();
        for (n, reason, key) in ranked.iter().take(TOP) {
            println!("  {n:>6}  {reason} (e.g. {key})");
        }
        if ranked.len() > TOP {
            let rest: usize = ranked[TOP..].iter().map(|r| r.0).sum();
            println!("  {rest:>6}  ... for {} other reasons", ranked.len() - TOP);
        }
    }
}

fn print_summary(job: &Job, prefix: &str, tally: &Tally, elapsed: Duration) {
    println!(
        "origin:        {} ({}), prefix {prefix:?}",
        job.origin_name,
        job.origin.describe()
    );
    println!("index dir:     {}", job.dir.display());
    println!("objects:       {}", tally.total);
    println!("indexed:       {}", tally.indexed);
    println!("partial-ready: {}", tally.partial);
    tally.by_tile.print();
    println!("not partial:   {}", tally.whole_only.count());
    tally.whole_only.print();
    println!("other formats: {}", tally.other_formats.count());
    tally.other_formats.print();
    println!("failed:        {}", tally.failed.count());
    tally.failed.print();
    println!("elapsed:       {:.1}s", elapsed.as_secs_f64());
}
