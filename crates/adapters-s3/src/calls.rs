//! How every S3 call runs: under a deadline, idempotent ones retried a few
//! times, and rusoto's errors mapped to domain errors.

use super::*;

pub(crate) const RETRIES: u32 = 3;
/// Deadline of `CompleteMultipartUpload`, which assembles the object.
pub(crate) const COMPLETE_TIMEOUT: Duration = Duration::from_secs(300);

/// Maps a rusoto error to a domain error; `op` names the call for the log.
pub(crate) fn store_error<E: std::error::Error + 'static>(op: &str, e: RusotoError<E>) -> Error {
    match e {
        RusotoError::HttpDispatch(d) => Error::unavailable(format!("s3 {op}: {d}")),
        RusotoError::Credentials(c) => Error::internal(format!("s3 {op}: credentials: {c}")),
        RusotoError::Unknown(resp) => {
            let body = String::from_utf8_lossy(&resp.body);
            if body.contains("NoSuchBucket") {
                Error::new(ErrorCode::BucketNotConfigured).with_detail(format!("s3 {op}: {body}"))
            } else if resp.status.is_server_error() {
                Error::unavailable(format!("s3 {op}: {} {body}", resp.status))
            } else {
                Error::internal(format!("s3 {op}: {} {body}", resp.status))
            }
        }
        other => Error::internal(format!("s3 {op}: {other}")),
    }
}

pub(crate) fn is_status<E>(e: &RusotoError<E>, code: u16) -> bool {
    matches!(e, RusotoError::Unknown(resp) if resp.status.as_u16() == code)
}

pub(crate) fn body_has<E>(e: &RusotoError<E>, needle: &str) -> bool {
    matches!(e, RusotoError::Unknown(resp) if String::from_utf8_lossy(&resp.body).contains(needle))
}

impl S3Store {
    /// Runs one call under the timeout.
    pub(crate) async fn timed<T, E, F>(
        &self,
        op: &str,
        fut: F,
    ) -> Result<std::result::Result<T, RusotoError<E>>>
    where
        F: Future<Output = std::result::Result<T, RusotoError<E>>>,
    {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| Error::unavailable(format!("s3 {op}: timed out")))
    }

    /// Runs an idempotent call, retrying when the store is unavailable.
    pub(crate) async fn retried<T, F, Fut>(&self, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            match call().await {
                // Retry only while the whole call stays within one timeout, so a
                // store that is down answers 503 in `timeout`, not `RETRIES × timeout`.
                Err(e)
                    if e.kind() == ErrorKind::Unavailable
                        && attempt + 1 < RETRIES
                        && tokio::time::Instant::now()
                            + Duration::from_millis(100 << (attempt + 1))
                            < deadline =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => return other,
            }
        }
    }
}
