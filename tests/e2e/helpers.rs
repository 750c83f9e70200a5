//! Starting the server, running its CLI, and typed request helpers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};

const BUILT: &str = env!("CARGO_BIN_EXE_stowage");

/// The binary under test: this build's, or `STOWAGE_E2E_BIN` (to run the
/// suite against another build, e.g. to show a new test fails on the old one).
pub fn bin() -> String {
    std::env::var("STOWAGE_E2E_BIN").unwrap_or_else(|_| BUILT.to_owned())
}

/// A running `stowage serve` with its own data folder.
pub struct Server {
    child: Child,
    pub base: String,
    pub data: tempfile::TempDir,
    pub client: Client,
    /// Demo publishable key printed at first start.
    pub pk: String,
    /// Demo secret key printed at first start.
    pub sk: String,
    env: Vec<(String, String)>,
    database: Option<String>,
    log: Log,
}

/// The server's output after its banner (the log), last lines kept.
type Log = std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>;

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Some(admin), Some(name)) = (postgres_admin_url(), self.database.take()) {
            // Drop runs inside the test's runtime; use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(stowage_adapters_postgres::drop_database(&admin, &name))
                    .ok()
            })
            .join();
        }
    }
}

/// Whether the suite runs on the S3 backend (`STOWAGE_E2E_S3=1`), against an
/// in-process s3s-fs server that checks every signature, over HTTPS with a
/// CA made at run time (the server trusts it through `STOWAGE_S3_CA_FILE`,
/// the suite's HTTP client as a browser would trust a public CA).
pub fn s3_mode() -> bool {
    std::env::var("STOWAGE_E2E_S3").is_ok_and(|v| v == "1")
}

const S3_ACCESS_KEY: &str = "AKSTOWAGETEST";
const S3_SECRET_KEY: &str = "stowage-e2e-secret";

/// The suite's S3 server, started once per test process on a thread with its
/// own runtime (each test has its own, shorter-lived one).
struct S3Server {
    endpoint: String,
    /// The folder it keeps its buckets in.
    root: std::path::PathBuf,
    /// The CA that signed its certificate: PEM, and a file holding it.
    ca_pem: String,
    ca_file: std::path::PathBuf,
}

fn s3_endpoint() -> String {
    s3_server().endpoint.clone()
}

fn s3_root() -> std::path::PathBuf {
    s3_server().root.clone()
}

/// A file holding the CA of the suite's S3 server.
pub fn s3_ca_file() -> std::path::PathBuf {
    s3_server().ca_file.clone()
}

fn s3_server() -> &'static S3Server {
    static SERVER: std::sync::OnceLock<S3Server> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let id = uuid::Uuid::new_v4().simple();
                let root = std::env::temp_dir().join(format!("stowage-e2e-s3-{id}"));
                let ca_file = std::env::temp_dir().join(format!("stowage-e2e-s3-{id}-ca.pem"));
                let tls = stowage_adapters_s3::test_server::TestTls::generate()
                    .expect("test certificates");
                std::fs::write(&ca_file, &tls.ca_pem).expect("write CA file");
                let server = stowage_adapters_s3::test_server::start_with(
                    &root,
                    "127.0.0.1:0".parse().expect("addr"),
                    S3_ACCESS_KEY,
                    S3_SECRET_KEY,
                    Some(&tls),
                )
                .await
                .expect("start s3 server");
                let _ = tx.send(S3Server {
                    endpoint: server.endpoint(),
                    root,
                    ca_pem: tls.ca_pem.clone(),
                    ca_file,
                });
                std::future::pending::<()>().await;
                drop(server);
            });
        });
        rx.recv().expect("s3 endpoint")
    })
}

/// The PostgreSQL server the suite runs against (`STOWAGE_E2E_POSTGRES_URL`,
/// an admin URL), or `None` for the embedded SQLite default.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("STOWAGE_E2E_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// A fresh database for one server: `(name, url)`.
fn fresh_postgres_database(admin: &str) -> (String, String) {
    let name = format!("stowage_e2e_{}", uuid::Uuid::new_v4().simple());
    let (admin_owned, name_owned) = (admin.to_owned(), name.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(stowage_adapters_postgres::create_database(
            &admin_owned,
            &name_owned,
        ))
        .expect("create database")
    })
    .join()
    .expect("create database thread");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_else(|| admin.to_owned());
    (name.clone(), format!("{base}/{name}"))
}

/// Starts the binary and reads its banner: the base URL and, on a first
/// start, the demo keys.
fn start_process(
    vars: &[(String, String)],
    has_database_url: bool,
) -> (Child, String, Option<(String, String)>, Log) {
    let mut cmd = Command::new(bin());
    if !has_database_url {
        cmd.env_remove("DATABASE_URL");
    }
    cmd.envs(vars.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start stowage");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    // Keep draining both pipes so the server never blocks on a full one; the
    // last lines stay readable (`Server::log`).
    let log = Log::default();
    let keep = |lines: Box<dyn Iterator<Item = std::io::Result<String>> + Send>, sink: Log| {
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let Ok(mut kept) = sink.lock() else { return };
                if kept.len() == 2000 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
    };
    keep(Box::new(BufReader::new(stderr).lines()), log.clone());
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut pk, mut sk) = (None, None, None);
    loop {
        let line = lines
            .next()
            .expect("server exited before printing its banner")
            .expect("read stdout");
        if let Some(url) = line.strip_prefix("Stowage listening on ") {
            base = Some(url.trim().to_owned());
        } else if let Some(k) = line.trim().strip_prefix("publishable: ") {
            pk = Some(k.trim().to_owned());
        } else if let Some(k) = line.trim().strip_prefix("secret:") {
            sk = Some(k.trim().to_owned());
        } else if line.starts_with("User token") {
            break; // the banner's last line
        }
    }
    // Keep draining stdout too (see above).
    keep(Box::new(lines), log.clone());
    let keys = pk.zip(sk);
    (child, base.expect("banner names the address"), keys, log)
}

impl Server {
    /// Kills the server with SIGKILL (no graceful shutdown) and starts it again
    /// on the same data folder and database, on a new port.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, base, _, log) = start_process(&self.env, self.database.is_some());
        self.child = child;
        self.base = base;
        self.log = log;
    }

    /// Another `stowage serve` on this server's configuration (database,
    /// store, data folder and secrets): a replica behind the same load
    /// balancer. It leaves the database to the first server.
    pub fn replica(&self) -> Server {
        self.replica_with(&[])
    }

    /// [`Server::replica`] with some variables changed.
    pub fn replica_with(&self, changes: &[(&str, &str)]) -> Server {
        let mut env = self.env.clone();
        for (k, v) in changes {
            env.retain(|(name, _)| name != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let (child, base, _, log) = start_process(&env, self.database.is_some());
        Server {
            child,
            base,
            data: tempfile::tempdir().expect("tempdir"),
            client: self.client.clone(),
            pk: self.pk.clone(),
            sk: self.sk.clone(),
            env,
            database: None,
            log,
        }
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// The value of one unlabelled counter in `/metrics`.
    pub async fn counter(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Kills the server with SIGKILL, leaving it down.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server with extra environment variables, on the suite's backends.
pub fn spawn_with(env: &[(&str, &str)]) -> Server {
    spawn_on(
        Backends {
            postgres: postgres_admin_url().is_some(),
            s3: s3_mode(),
        },
        env,
    )
}

/// Which backends a server uses (PostgreSQL: a fresh database on the suite's
/// server; S3: a fresh bucket on the suite's S3 server).
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub postgres: bool,
    pub s3: bool,
}

/// A fresh bucket name.
pub fn fresh_bucket() -> String {
    format!("e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..16])
}

/// The variables naming `bucket` on the suite's S3 server, with `prefix`
/// (`STOWAGE_` for a server, `STOWAGE_TO_` for a transfer's target).
pub fn s3_env(prefix: &str, bucket: &str) -> Vec<(String, String)> {
    [
        ("S3_ENDPOINT", s3_endpoint()),
        ("S3_BUCKET", bucket.to_owned()),
        ("S3_ACCESS_KEY_ID", S3_ACCESS_KEY.to_owned()),
        ("S3_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_owned()),
        ("S3_INIT_BUCKET", "1".to_owned()),
        ("S3_CA_FILE", s3_ca_file().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}{k}"), v))
    .collect()
}

/// Where the suite's S3 server keeps the objects of `bucket`.
pub fn s3_bucket_dir(bucket: &str) -> std::path::PathBuf {
    s3_root().join(bucket)
}

/// A fresh database on the suite's PostgreSQL server: `(name, url)`.
pub fn fresh_postgres() -> Option<(String, String)> {
    postgres_admin_url().map(|admin| fresh_postgres_database(&admin))
}

/// Starts a server on the given backends with extra environment variables.
pub fn spawn_on(backends: Backends, env: &[(&str, &str)]) -> Server {
    let data = tempfile::tempdir().expect("tempdir");
    let mut vars: Vec<(String, String)> = vec![
        ("STOWAGE_DATA_DIR".into(), data.path().display().to_string()),
        ("STOWAGE_LISTEN".into(), "127.0.0.1:0".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    let database = if backends.postgres {
        fresh_postgres().map(|(name, url)| {
            vars.push(("DATABASE_URL".into(), url));
            name
        })
    } else {
        None
    };
    if backends.s3 {
        vars.push(("STOWAGE_STORAGE_BACKEND".into(), "s3".into()));
        vars.extend(s3_env("STOWAGE_", &fresh_bucket()));
    }
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let has_database_url = vars.iter().any(|(k, _)| k == "DATABASE_URL");
    let (child, base, keys, log) = start_process(&vars, has_database_url);
    let (pk, sk) = keys.unwrap_or_default();
    Server {
        child,
        base,
        data,
        client: http_client_for(backends.s3),
        pk,
        sk,
        env: vars,
        database,
        log,
    }
}

/// The suite's HTTP client (a browser): in S3 mode it trusts the test CA, as
/// a browser trusts the public CA of a real store.
pub fn http_client() -> Client {
    http_client_for(s3_mode())
}

/// An HTTP client, trusting the test S3 server's CA when `s3`.
pub fn http_client_for(s3: bool) -> Client {
    let mut builder = Client::builder().timeout(Duration::from_secs(120));
    if s3 {
        let ca = reqwest::Certificate::from_pem(s3_server().ca_pem.as_bytes()).expect("test CA");
        builder = builder.add_root_certificate(ca);
    }
    builder.build().expect("client")
}

/// Starts a server with the defaults.
pub fn spawn() -> Server {
    spawn_with(&[])
}

/// Credentials of one caller.
#[derive(Clone, Debug)]
pub struct Creds {
    pub key: String,
    pub token: Option<String>,
}

impl Server {
    /// Runs the CLI against this server's data folder and database; returns stdout.
    pub fn cli_output(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(bin());
        if self.database.is_none() {
            cmd.env_remove("DATABASE_URL");
        }
        let out = cmd
            .envs(self.env.iter().cloned())
            .args(args)
            .output()
            .expect("run cli");
        assert!(
            out.status.success(),
            "stowage {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The environment this server runs with (for the CLI against its stores).
    pub fn cli_env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }

    /// The same server with another HTTP client.
    pub fn with_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The same server, dropping the PostgreSQL database `name` when dropped.
    pub fn owning_database(mut self, name: String) -> Self {
        self.database = Some(name);
        self
    }

    /// Runs the CLI; returns the last stdout line.
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_output(args)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// A user token from the dev helper.
    pub fn token(&self, sub: &str) -> String {
        self.cli(&["token", "--sub", sub])
    }

    /// A user of the demo project (publishable key + token).
    pub fn user(&self, sub: &str) -> Creds {
        Creds {
            key: self.pk.clone(),
            token: Some(self.token(sub)),
        }
    }

    /// An admin user of the demo project.
    pub fn admin_user(&self, sub: &str) -> Creds {
        Creds {
            key: self.pk.clone(),
            token: Some(self.cli(&["token", "--sub", sub, "--role", "admin"])),
        }
    }

    /// The demo project's service principal.
    pub fn service(&self) -> Creds {
        Creds {
            key: self.sk.clone(),
            token: None,
        }
    }

    /// What the server has logged so far (its last 2,000 lines).
    pub fn log(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Where the store this server uses keeps the object `key` (a file in
    /// either case: the disk store's folder, or the test S3 server's bucket).
    pub fn stored_object(&self, key: &str) -> std::path::PathBuf {
        if s3_mode() {
            let bucket = self
                .env
                .iter()
                .find(|(k, _)| k == "STOWAGE_S3_BUCKET")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            s3_root().join(bucket).join(key)
        } else {
            let relative = stowage_adapters_fs::relative_path(key).expect("object key");
            self.data
                .path()
                .join("objects")
                .join("objects")
                .join(relative)
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str, creds: &Creds) -> RequestBuilder {
        let mut r = self
            .client
            .request(method, self.url(path))
            .header("X-API-Key", &creds.key);
        if let Some(t) = &creds.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        creds: &Creds,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.req(method, path, creds);
        if let Some(b) = body {
            r = r.json(&b);
        }
        read(r.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, creds: &Creds, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, creds, Some(body)).await
    }

    pub async fn get(&self, path: &str, creds: &Creds) -> (u16, Value) {
        self.call(Method::GET, path, creds, None).await
    }

    /// Presign, PUT the bytes, register; returns the file object.
    pub async fn upload(
        &self,
        creds: &Creds,
        name: &str,
        mime: &str,
        bytes: &[u8],
        extra: Value,
    ) -> Value {
        let ticket = self.issue_and_put(creds, name, mime, bytes).await;
        let mut body = json!({"s3Key": ticket["key"], "originalName": name, "mimeType": mime, "size": bytes.len()});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (status, file) = self.post("/v1/files", creds, body).await;
        assert_eq!(status, 201, "{file}");
        file
    }

    /// Issues an upload of `bytes` as `mime` and PUTs them; the ticket.
    pub async fn issue_and_put(
        &self,
        creds: &Creds,
        name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Value {
        let (status, ticket) = self
            .post(
                "/v1/files/presigned-url",
                creds,
                json!({"filename": name, "contentType": mime, "fileSize": bytes.len()}),
            )
            .await;
        assert_eq!(status, 200, "{ticket}");
        let put = self.put_presigned(&ticket, bytes.to_vec()).await;
        assert_eq!(put.status(), 200);
        ticket
    }

    /// A download URL of file `id` issued to `creds`.
    pub async fn download_url(&self, creds: &Creds, id: &str) -> String {
        let (status, dl) = self
            .post(&format!("/v1/files/{id}/download-url"), creds, json!({}))
            .await;
        assert_eq!(status, 200, "download URL of {id}: {dl}");
        dl["url"].as_str().expect("url").to_owned()
    }

    /// The bytes of file `id` through a download URL issued to `creds`.
    pub async fn download(&self, creds: &Creds, id: &str) -> Vec<u8> {
        let r = self
            .client
            .get(self.download_url(creds, id).await)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body").to_vec()
    }

    /// PUTs bytes to an issued URL with exactly the headers it asks for.
    pub async fn put_presigned(&self, ticket: &Value, bytes: Vec<u8>) -> Response {
        let mut r = self.client.put(ticket["url"].as_str().expect("url"));
        if let Some(headers) = ticket["headers"].as_object() {
            for (k, v) in headers {
                if !k.eq_ignore_ascii_case("content-length") {
                    r = r.header(k, v.as_str().unwrap_or_default());
                }
            }
        }
        r.body(bytes).send().await.expect("put")
    }
}

/// A response header as text.
pub fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub async fn read(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts an error answer: status, code, and the envelope's shape.
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (got.0, got.1["error"]["code"].as_str()),
        (status, Some(code)),
        "body: {}",
        got.1
    );
    assert!(
        got.1["error"]["message"].is_string() && got.1["error"]["requestId"].is_string(),
        "{}",
        got.1
    );
}
