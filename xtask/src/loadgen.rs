//! The load generator's client: one raw HTTP/1.1 connection per worker
//! (hyper's connection API, no pool, no redirects, no cookie or header
//! machinery), so that what it costs per request stays small next to what
//! the server costs — a general client (reqwest) cost about as much CPU per
//! request as the server's `get` on the same two cores, and halved the
//! figures. The bodies are read to the end and dropped.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper1::client::conn::http1::SendRequest;
use hyper1::Method;

/// One request to send.
pub(crate) struct Req {
    pub(crate) method: Method,
    /// Path and query.
    pub(crate) path: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Option<Vec<u8>>,
}

impl Req {
    /// A request without body or headers.
    pub(crate) fn new(method: Method, path: String) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// A JSON body.
    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.headers
            .push(("content-type", "application/json".to_owned()));
        self.body = Some(body.to_string().into_bytes());
        self
    }
}

/// A kept-alive connection, reopened after an error.
pub(crate) struct Conn {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `base` (`http://host:port`), opened on first use.
    pub(crate) fn new(base: &str) -> Result<Self, String> {
        let host = base.trim_start_matches("http://").trim_end_matches('/');
        let addr = host
            .parse()
            .map_err(|e| format!("load generator: {host} is not an address: {e}"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            sender: None,
        })
    }

    async fn open(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) =
                hyper1::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// Sends `req`, reads the whole answer; its status.
    pub(crate) async fn send(&mut self, req: Req) -> Result<u16, String> {
        let mut builder = hyper1::Request::builder()
            .method(req.method)
            .uri(req.path)
            .header("host", &self.host);
        for (name, value) in req.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(Bytes::from(req.body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let result = async {
            let sender = self.open().await?;
            sender.ready().await.map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            Ok(status)
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}
