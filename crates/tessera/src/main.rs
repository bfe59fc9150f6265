#![forbid(unsafe_code)]
//! The `tessera` binary: the command line over the engine's built-ins and the image application.

fn main() -> std::process::ExitCode {
    tessera::main_with(tessera::builder())
}
