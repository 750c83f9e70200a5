//! A ready [`Transfer`] for adapters whose presigned requests are real URLs
//! (feature `testing-http`): it moves bytes with `reqwest` as a browser would,
//! sending the request's bound headers (a test's `extra` headers replace
//! them; `Content-Length` is always the body's).

use async_trait::async_trait;

use super::contract::Transfer;
use crate::ports::PresignedRequest;

/// Moves bytes through presigned URLs over HTTP(S).
#[derive(Debug, Clone, Default)]
pub struct HttpTransfer(pub reqwest::Client);

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[async_trait]
impl Transfer for HttpTransfer {
    async fn put(
        &self,
        req: &PresignedRequest,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Option<String>) {
        let mut r = self.0.put(&req.url);
        for (k, v) in &req.headers {
            let replaced = extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k));
            if !k.eq_ignore_ascii_case("content-length") && !replaced {
                r = r.header(k, v);
            }
        }
        for (k, v) in extra {
            if !k.eq_ignore_ascii_case("content-length") {
                r = r.header(*k, *v);
            }
        }
        match r.body(body).send().await {
            Ok(res) => (res.status().as_u16(), header(&res, "etag")),
            Err(_) => (599, None),
        }
    }

    async fn get(&self, req: &PresignedRequest) -> (u16, Option<String>, Option<String>, Vec<u8>) {
        let Ok(res) = self.0.get(&req.url).send().await else {
            return (599, None, None, Vec::new());
        };
        let (status, ct, cd) = (
            res.status().as_u16(),
            header(&res, "content-type"),
            header(&res, "content-disposition"),
        );
        let body = res.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        (status, ct, cd, body)
    }
}
