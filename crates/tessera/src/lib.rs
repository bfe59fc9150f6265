#![forbid(unsafe_code)]
//! The `tessera` command line: `run`, `serve`, `check`, `schema`, `index`, `interleave`. A plugin crate builds its own
//! binary with [`main_with`] and a [`tessera_proxy::Builder`] carrying its extra factories,
//! usually [`builder`] (the engine's built-ins and the image application) plus its own.

mod access_json;
mod index;
mod interleave;
mod json_lines;
mod log_writer;
mod logging;
mod serve;

use logging::LogFormat;

use anyhow::Context;
use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Serve. Reads ./proxy.yaml, or the embedded default when there is none.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen on this `ip:port` (plain HTTP) instead of the config's `listen`; repeat for
        /// more than one.
        #[arg(long)]
        listen: Vec<String>,
        /// Write the process id to this file while serving (for a service manager's
        /// `PIDFile=` and `kill -HUP`); removed on a clean exit.
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// Take the listening sockets over from the running Tessera (same config) instead of
        /// binding them: start this, then send the old process SIGQUIT. No connection is
        /// refused and requests in flight finish on the old one.
        #[arg(long)]
        upgrade: bool,
    },
    /// Serve a folder of images (JPEG 2000, JPEG, PNG, TIFF): IIIF Image API 3 at /iiif/3/, 2
    /// at /iiif/2/, each image named by its file name, and a viewer at / (open
    /// http://127.0.0.1:8080/ in a browser).
    Serve(serve::ServeArgs),
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
    /// objects listed, indexed, partial-ready (a reduced read needs only the leading tile-parts;
    /// tiled files written tile by tile named apart, see `interleave`), not partial (served by
    /// reading the whole file) and failed, with the most common reasons.
    #[command(after_help = index::EXIT_STATUS_HELP)]
    Index(index::IndexArgs),
    /// Rewrite a tiled JPEG 2000 master so that a small view of it is one ranged read.
    ///
    /// Encoders write tiled files tile by tile, so a small view, which needs the low resolutions
    /// of every tile, reads one range per tile. This orders the same tile-parts by resolution
    /// across tiles (every tile's lowest resolution first): every reduced resolution is then one
    /// range. Nothing is re-encoded; decoders give the same pixels. The file must have a
    /// tile-part per resolution (RPCL or RLCP, `-TP R`); the output is checked, then renamed
    /// into place. Prints what a view reads at each scale, before and after.
    Interleave(interleave::InterleaveArgs),
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
        Command::Interleave(args) => {
            logging::init(cli.log_format.unwrap_or(LogFormat::Text), "warn", true);
            interleave::run(args)
        }
        Command::Index(args) => {
            logging::init(cli.log_format.unwrap_or(LogFormat::Text), "warn", true);
            index::run(&builder, args)
        }
        Command::Run {
            config,
            listen,
            pid_file,
            upgrade,
        } => {
            let builder = if upgrade { builder.upgrade() } else { builder };
            let _log = logging::init(cli.log_format.unwrap_or(LogFormat::Json), "info", false);
            let _pid_file = match pid_file.map(PidFile::write).transpose() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("tessera: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            match run(builder, config, listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tessera: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            let _log = logging::init(cli.log_format.unwrap_or(LogFormat::Text), "info", false);
            match serve(builder, &args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("tessera: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The process id in a file for as long as this value lives.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: PathBuf) -> anyhow::Result<Self> {
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --pid-file {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn serve(builder: Builder, args: &serve::ServeArgs) -> anyhow::Result<()> {
    let text = serve::config(args)?;
    tracing::info!(folder = %args.dir.display(), "serving http://{}/", args.listen);
    let source = ConfigSource::Embedded {
        name: "<tessera serve>".into(),
        text: text.into(),
        base: std::env::current_dir().unwrap_or_default(),
    };
    let name = source.name();
    builder
        .run(source)
        .with_context(|| format!("cannot start with {name}"))
}

fn run(builder: Builder, config: Option<PathBuf>, listen: Vec<String>) -> anyhow::Result<()> {
    for address in &listen {
        address
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("--listen {address:?} is not an ip:port address"))?;
    }
    let builder = if listen.is_empty() {
        builder
    } else {
        builder.listen_on(listen)
    };
    let local = PathBuf::from("proxy.yaml");
    let source = match config {
        Some(path) => ConfigSource::File(path),
        None if local.exists() => ConfigSource::File(local),
        None => {
            tracing::info!("no ./proxy.yaml: serving the embedded default config");
            ConfigSource::Embedded {
                name: "<embedded proxy.yaml>".into(),
                text: EMBEDDED_DEFAULT.into(),
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
