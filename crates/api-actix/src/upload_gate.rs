//! Bounds on what gateway uploads can make the process hold (docs/api.md §12 and
//! the hostile-client review): at most `max_in_flight` bodies at once (more
//! get `503` + `Retry-After`), one body per upload URL at a time (a second
//! concurrent PUT gets `429` + `Retry-After`), and a body that sends nothing
//! for `idle` is cut off (its temp file goes with it).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use stowage_domain::{Error, ErrorCode};

/// The gate every gateway PUT passes.
pub struct UploadGate {
    permits: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    idle: Duration,
}

/// Held for the life of one upload body; lets the next one in when dropped.
pub struct UploadPass {
    _permit: OwnedSemaphorePermit,
    in_flight: Arc<Mutex<HashSet<String>>>,
    url: String,
}

impl Drop for UploadPass {
    fn drop(&mut self) {
        lock(&self.in_flight).remove(&self.url);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl UploadGate {
    /// A gate for `max_in_flight` bodies, cutting off bodies idle for `idle`.
    pub fn new(max_in_flight: usize, idle: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            in_flight: Arc::default(),
            idle,
        }
    }

    /// Lets one body through for the upload URL named `url`.
    ///
    /// # Errors
    /// `503 common/service-unavailable` (with `Retry-After`) when the process
    /// already receives its maximum of bodies; `429 common/rate-limited` when
    /// another body for the same URL is still arriving.
    pub fn enter(&self, url: String) -> Result<UploadPass, ApiError> {
        let permit = Arc::clone(&self.permits).try_acquire_owned().map_err(|_| {
            ApiError::from(Error::unavailable(
                "Too many uploads in flight; try again shortly",
            ))
        })?;
        if !lock(&self.in_flight).insert(url.clone()) {
            return Err(ApiError {
                error: Error::with_message(
                    ErrorCode::RateLimited,
                    "Another upload through this URL is still in progress",
                ),
                retry_after: Some(1),
                allow: None,
            });
        }
        Ok(UploadPass {
            _permit: permit,
            in_flight: Arc::clone(&self.in_flight),
            url,
        })
    }

    /// `body`, ending in an error once no bytes arrived for the idle limit.
    pub fn idle_limited<S>(&self, body: S) -> IdleLimited<S> {
        IdleLimited {
            inner: body,
            idle: self.idle,
            timer: Box::pin(tokio::time::sleep(self.idle)),
        }
    }
}

/// A body stream cut off after a silence (see [`UploadGate::idle_limited`]).
pub struct IdleLimited<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<S, B, E> Stream for IdleLimited<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<B, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(item.map_err(|e| e.to_string())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "no bytes arrived for {} s",
                    self.idle.as_secs()
                )))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn one_body_per_url_and_a_bounded_number_in_all() {
        let gate = UploadGate::new(2, Duration::from_secs(1));
        let a = gate.enter("a".into()).ok();
        assert!(a.is_some());
        let again = gate.enter("a".into()).err().map(|e| e.error.code());
        assert_eq!(again, Some(ErrorCode::RateLimited));
        let b = gate.enter("b".into()).ok();
        assert!(b.is_some());
        let full = gate.enter("c".into()).err().map(|e| e.error.code());
        assert_eq!(full, Some(ErrorCode::ServiceUnavailable));
        drop(a);
        assert!(
            gate.enter("a".into()).is_ok(),
            "a finished body frees its URL and its slot"
        );
    }

    #[tokio::test]
    async fn silent_bodies_are_cut_off() {
        let gate = UploadGate::new(1, Duration::from_millis(50));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(1);
        let body = tokio_util_stream(rx);
        let mut limited = gate.idle_limited(Box::pin(body));
        tx.send(Ok(vec![1])).await.expect("send");
        assert!(matches!(limited.next().await, Some(Ok(_))));
        // Nothing more: cut off once the idle limit has passed.
        assert!(matches!(limited.next().await, Some(Err(_))));
        drop(tx);
    }

    fn tokio_util_stream(
        mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    ) -> impl Stream<Item = Result<Vec<u8>, String>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
