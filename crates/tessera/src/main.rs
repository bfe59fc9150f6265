#![forbid(unsafe_code)]
//! The `tessera` binary: the command line over the engine's built-ins and the image application.

fn main() -> std::process::ExitCode {
    tessera::main_with(tessera::builder())
}

/// jemalloc, whose background threads hand memory that is no longer used back to the system
/// within seconds. With glibc's allocator, the memory a flood of connections took stayed with
/// the process after the flood was over (docs/reliability.md, "Slow and greedy clients").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
