#![forbid(unsafe_code)]
//! The `tessera` command line: `run`, `check`, `schema`, `index`. A plugin crate builds its own
//! binary with [`main_with`] and a [`tessera_proxy::Builder`] carrying its extra factories,
//! usually [`builder`] (the engine's built-ins and the image application) plus its own.

mod index;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_proxy::{Builder, ConfigSource};

/// The engine's built-in filters and handlers, and the image application (`tessera-images`):
/// what the `tessera` binary serves with.
pub fn builder() -> Builder {
    tessera_images::register(Builder::with_builtins())
}

/// The repository's `proxy.yaml`, compiled in: what `tessera run` serves when there is no
/// `./proxy.yaml` and no `--config`.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../proxy.yaml");

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "An edge proxy for IIIF image delivery, on Pingora"
)]
struct Cli {
    /// Log format: one JSON object per line, or human-readable text. Default: json for `run`,
    /// text for `index`.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Serve. Reads ./proxy.yaml, or the embedded default when there is none.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file; print each problem as file:line:col: message.
    Check { file: PathBuf },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Build the JP2 header indexes of every object under a prefix of an origin, ahead of
    /// traffic.
    ///
    /// Each object's header is read (a few small ranged reads) and its index stored in
    /// `image_index.dir`, where `tessera run` with the same config finds it, so the first request
    /// for an image needs no header reads. Indexes already in the directory are kept and counted
    /// as indexed. Relative paths in the config resolve against the config file's directory,
    /// as they do for `tessera run`.
    ///
    /// Progress goes to stderr about once a second, warnings too; the summary goes to stdout:
    /// objects listed, indexed, partial-ready (a reduced read needs only the leading tile-parts),
    /// not partial (served by reading the whole file) and failed, with the most common reasons.
    #[command(after_help = index::EXIT_STATUS_HELP)]
    Index(index::IndexArgs),
}

/// Logs of the server go to stdout at `info`, through a non-blocking writer so a slow terminal
/// or pipe never stalls a request; a batch command keeps stdout for its result and logs only
/// warnings, straight to stderr (nothing is lost when it exits). `TESSERA_LOG` overrides the
/// level.
fn init_logging(format: LogFormat, level: &str, to_stderr: bool) {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TESSERA_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let writer = if to_stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
        // The proxy runs until the process exits; keep the writer's flush guard for that long.
        std::mem::forget(guard);
        BoxMakeWriter::new(writer)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

/// Run the command line with the factories of `builder`.
pub fn main_with(builder: Builder) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            let schema = builder.schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Command::Check { file } => match builder.check(&ConfigSource::File(file.clone())) {
            Ok(config) => {
                println!(
                    "{}: ok ({} routes, {} clusters)",
                    file.display(),
                    config.routes.len(),
                    config.clusters.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("{e}");
                }
                ExitCode::FAILURE
            }
        },
        Command::Index(args) => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Text), "warn", true);
            index::run(&builder, args)
        }
        Command::Run { config } => {
            init_logging(cli.log_format.unwrap_or(LogFormat::Json), "info", false);
            match run(builder, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tessera: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run(builder: Builder, config: Option<PathBuf>) -> anyhow::Result<()> {
    let local = PathBuf::from("proxy.yaml");
    let source = match config {
        Some(path) => ConfigSource::File(path),
        None if local.exists() => ConfigSource::File(local),
        None => {
            tracing::info!("no ./proxy.yaml: serving the embedded default config");
            ConfigSource::Embedded {
                name: "<embedded proxy.yaml>".into(),
                text: EMBEDDED_DEFAULT,
                // Relative paths in the embedded default (the sample image) are those of the
                // source tree the binary was built from.
                base: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
            }
        }
    };
    let name = source.name();
    builder
        .run(source)
        .with_context(|| format!("cannot start with {name}"))
}
