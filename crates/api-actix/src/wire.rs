//! The connection under actix-http: the envelope for the requests it refuses
//! before any middleware runs.
//!
//! A request line or header section actix-http cannot parse (`GARBAGE`, a
//! bare `\n`, headers beyond its limit) is answered by its HTTP/1 dispatcher
//! itself with a bodiless `400` (or `431`) and the connection closed; no
//! service, so no middleware, ever sees it. docs/api.md §12 wants every answer
//! in the JSON envelope, so [`EnvelopedIo`] recognises that one answer on its
//! way to the socket and writes the envelope in its place. It cannot be
//! mistaken for an answer of the application: every error response of ours
//! has a JSON body ([`crate::middleware::envelope`]), so a `400`/`431` with
//! `content-length: 0` comes only from the parser. Only the connection's
//! first write is looked at: it starts with a response head for certain,
//! whereas a later write may be part of a body (a downloaded file whose bytes
//! spell such a head must never be rewritten: a proxy reusing the connection
//! would lose track of where answers end). A malformed request after others
//! on a kept-alive connection therefore still gets the bare answer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use stowage_domain::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{ErrorBody, ErrorDetail};

/// A connection whose parser-error answers are rewritten into the envelope.
pub struct EnvelopedIo<T> {
    io: T,
    /// A rewritten answer still to be written, and how much of it was.
    out: Vec<u8>,
    sent: usize,
    /// Nothing was written yet.
    fresh: bool,
}

impl<T> EnvelopedIo<T> {
    /// Wraps a connection.
    pub fn new(io: T) -> Self {
        Self {
            io,
            out: Vec::new(),
            sent: 0,
            fresh: true,
        }
    }
}

impl<T: AsyncWrite + Unpin> EnvelopedIo<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EnvelopedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EnvelopedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let first = std::mem::replace(&mut this.fresh, false);
        if let Some(answer) = first.then(|| enveloped_parser_error(buf)).flatten() {
            // Taken whole: what the socket does not take now goes with the
            // next write, flush or shutdown.
            this.out = answer;
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The envelope in place of `written` when `written` is exactly the parser's
/// bodiless `400`/`431` answer; `None` for anything else.
fn enveloped_parser_error(written: &[u8]) -> Option<Vec<u8>> {
    let message = if written.starts_with(b"HTTP/1.1 400 ") {
        "The request is not valid HTTP"
    } else if written.starts_with(b"HTTP/1.1 431 ") {
        "The request's headers are too large"
    } else {
        return None;
    };
    let end = find(written, b"\r\n\r\n")? + 4;
    if end != written.len() {
        return None;
    }
    let status_line_end = find(written, b"\r\n")? + 2;
    let mut headers: Vec<&[u8]> = Vec::new();
    let mut bodiless = false;
    for line in written[status_line_end..end - 4].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.eq_ignore_ascii_case(b"content-length: 0") {
            bodiless = true;
        } else if !line.is_empty() {
            headers.push(line);
        }
    }
    if !bodiless {
        return None;
    }
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code: ErrorCode::InvalidRequest.as_str(),
            message: message.to_owned(),
            request_id: uuid::Uuid::now_v7().to_string(),
        },
    })
    .ok()?;
    let mut answer = Vec::with_capacity(end + body.len() + 64);
    answer.extend_from_slice(&written[..status_line_end]);
    for h in headers {
        answer.extend_from_slice(h);
        answer.extend_from_slice(b"\r\n");
    }
    answer.extend_from_slice(b"content-type: application/json\r\n");
    answer.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARSER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";

    #[test]
    fn the_parsers_bodiless_answers_become_the_envelope() {
        let answer = enveloped_parser_error(PARSER_400).expect("rewritten");
        let text = String::from_utf8(answer).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}", body.len())),
            "{head}"
        );
        assert!(!head.contains("content-length: 0"), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["error"]["code"], "common/invalid-request");
        assert!(v["error"]["requestId"]
            .as_str()
            .is_some_and(|s| !s.is_empty()));

        let too_large =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let answer = enveloped_parser_error(too_large).expect("rewritten");
        assert!(String::from_utf8_lossy(&answer).contains("common/invalid-request"));
    }

    #[test]
    fn every_other_answer_passes_unchanged() {
        for written in [
            // An answer with a body (ours are JSON).
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"[..],
            // A HEAD answer: a length, no body.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 120\r\n\r\n",
            // Another status, bodiless.
            b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n",
            // Part of an answer, or an answer followed by another.
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            // Body bytes that merely look like an answer are never alone in a
            // write that starts a response; a chunk of a body is not matched
            // unless it is exactly such a head, which no JSON body is.
            b"{\"error\":{}}",
        ] {
            assert!(
                enveloped_parser_error(written).is_none(),
                "{}",
                String::from_utf8_lossy(written)
            );
        }
    }
}
