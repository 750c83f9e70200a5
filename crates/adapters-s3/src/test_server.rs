//! An S3-compatible server in-process (s3s-fs on a folder), which verifies SigV4
//! including presigned URLs. For tests and `cargo xtask s3-server`; never used
//! by `stowage` itself.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct TestS3Server {
    /// Bound address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestS3Server {
    /// `http://addr`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestS3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `root` (one folder per bucket) on `addr` (port 0 picks one), with
/// SigV4 authentication for the given key pair.
///
/// # Errors
/// A message when the folder or the socket cannot be used.
pub async fn start(
    root: &Path,
    addr: SocketAddr,
    access_key: &str,
    secret_key: &str,
) -> Result<TestS3Server, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("s3s-fs: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(TestS3Server { addr, task })
}

/// Creates a bucket folder directly (what `CreateBucket` would do).
///
/// # Errors
/// A message when the folder cannot be created.
pub fn create_bucket(root: &Path, bucket: &str) -> Result<(), String> {
    std::fs::create_dir_all(root.join(bucket)).map_err(|e| format!("create bucket {bucket}: {e}"))
}
