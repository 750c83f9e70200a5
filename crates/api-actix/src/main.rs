//! The `stowage` binary.

/// jemalloc with background purging: after a burst of connections it gives
/// the freed memory back to the system within seconds, where glibc malloc
/// kept it in its arenas (docs/decisions.md 41, docs/performance.md
/// "Slow-body attack").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    stowage_api_actix::cli::main()
}
