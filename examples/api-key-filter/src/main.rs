#![forbid(unsafe_code)]
//! A `tessera` binary with the `api_key` filter: the same command line, one more filter.

fn main() -> std::process::ExitCode {
    tessera::main_with(tessera_example_api_key::builder())
}
