//! The `tessera` binary: the command line over the built-in filters and handlers.

fn main() -> std::process::ExitCode {
    tessera::main_with(tessera_proxy::Builder::with_builtins())
}
