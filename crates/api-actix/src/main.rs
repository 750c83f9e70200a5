//! The `stowage` binary.

fn main() -> std::process::ExitCode {
    stowage_api_actix::cli::main()
}
