//! `cargo run -p stowage-example-axum -- <data folder> [address]`: the example
//! service on its own (default 127.0.0.1:8090).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let data = std::path::PathBuf::from(args.next().unwrap_or_else(|| "./example-data".into()));
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let served = async {
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("bind {addr}: {e}"))?;
        let router = stowage_example_axum::app(&data, &format!("http://{addr}"))
            .await
            .map_err(|e| format!("{e:#}"))?;
        println!("example listening on http://{addr}");
        axum::serve(listener, router)
            .await
            .map_err(|e| e.to_string())
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
