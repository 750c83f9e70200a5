//! Events and webhooks (docs/api.md §10) through the user's door: changes
//! made over HTTP, endpoints added with the CLI, deliveries received by a
//! real HTTP receiver and their signatures checked by a verifier written
//! here from the Standard Webhooks specification (not the server's code).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
    /// The status the receiver answered.
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// A webhook receiver on 127.0.0.1: answers every POST with the status set
/// in `status` and keeps what it got.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (status.clone(), got.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (s, g) = (s.clone(), g.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &s, &g).await;
                });
            }
        });
        Self { url, status, got }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Those answered 2xx.
    fn accepted(&self) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Waits until `done` holds of what was received, or panics after `secs`.
    async fn wait_for(&self, secs: u64, what: &str, done: impl Fn(&[Received]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if done(&self.got()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; received {} requests",
                self.got().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One HTTP/1.1 request per connection (the answer closes it).
async fn serve(
    mut conn: tokio::net::TcpStream,
    status: &AtomicU16,
    got: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let answered = status.load(Ordering::SeqCst);
    got.lock().expect("lock").push(Received {
        headers,
        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
        answered,
    });
    let reply = format!("HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    conn.write_all(reply.as_bytes()).await?;
    conn.shutdown().await
}

/// The Standard Webhooks verification, from the specification: the secret
/// is base64 after `whsec_`; the signature is base64 of HMAC-SHA256 over
/// `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds
/// space-separated `v1,<sig>` entries; the timestamp is within 5 minutes.
fn verify(secret: &str, r: &Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok())
    else {
        return false;
    };
    let (Some(id), Some(ts), Some(sigs)) = (
        r.headers.get("webhook-id"),
        r.headers.get("webhook-timestamp"),
        r.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let Ok(ts_num) = ts.parse::<i64>() else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    if (now - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sigs.split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// Adds an endpoint with the CLI; `(id, secret)`.
fn add_endpoint(server: &Server, url: &str, events: Option<&str>) -> (String, String) {
    let mut args = vec![
        "webhooks",
        "add",
        "--project",
        "demo",
        "--env",
        "dev",
        "--url",
        url,
    ];
    if let Some(e) = events {
        args.extend(["--events", e]);
    }
    let out = server.cli_output(&args);
    let mut lines = out.lines();
    let first = lines.next().expect("first line");
    let id = first
        .strip_prefix("added endpoint ")
        .and_then(|r| r.split(' ').next())
        .expect("endpoint id")
        .to_owned();
    let secret = lines.last().expect("secret").trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{out}");
    (id, secret)
}

const FAST: [(&str, &str); 3] = [
    ("STOWAGE_WEBHOOK_ALLOW_PRIVATE", "1"),
    ("STOWAGE_WEBHOOK_POLL_MS", "50"),
    ("STOWAGE_WEBHOOK_RETRY_FIRST_MS", "100"),
];

async fn rename(server: &Server, creds: &Creds, id: &str, name: &str) {
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/files/{id}"),
            creds,
            Some(json!({"originalName": name})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn every_change_reaches_the_receiver_signed_and_in_order() {
    let server = spawn_with(&FAST);
    let receiver = Receiver::start(204).await;
    let (_, secret) = add_endpoint(&server, &receiver.url, None);
    let (only_id, _) = add_endpoint(&server, &receiver.url, Some("file.deleted"));
    let alice = server.user("alice");
    let file = server
        .upload(&alice, "a.txt", "text/plain", b"hello", json!({}))
        .await;
    let id = file["id"].as_str().expect("id").to_owned();
    rename(&server, &alice, &id, "b.txt").await;
    // A PATCH that changes nothing announces nothing.
    rename(&server, &alice, &id, "b.txt").await;
    let (status, _) = server
        .call(Method::DELETE, &format!("/v1/files/{id}"), &alice, None)
        .await;
    assert_eq!(status, 200);
    // Three events to the first endpoint, the deletion to the second.
    receiver
        .wait_for(20, "four deliveries", |got| got.len() >= 4)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.got();
    assert_eq!(got.len(), 4, "{got:#?}");
    for r in &got {
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
        assert_eq!(
            r.headers.get("webhook-id"),
            Some(&r.json()["id"].as_str().expect("id").to_owned())
        );
    }
    let firsts: Vec<&Received> = got.iter().filter(|r| verify(&secret, r)).collect();
    assert_eq!(
        firsts.len(),
        3,
        "the first endpoint's deliveries verify with its secret"
    );
    let types: Vec<String> = firsts
        .iter()
        .map(|r| r.json()["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(types, ["file.registered", "file.updated", "file.deleted"]);
    let registered = firsts[0].json();
    assert_eq!(registered["project"], "demo");
    assert_eq!(registered["environment"], "dev");
    assert_eq!(registered["data"]["file"]["id"], id.as_str());
    assert_eq!(registered["data"]["file"]["originalName"], "a.txt");
    assert!(registered["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let updated = firsts[1].json();
    assert_eq!(updated["data"]["changed"], json!(["originalName"]));
    assert_eq!(updated["data"]["file"]["originalName"], "b.txt");
    assert_eq!(firsts[2].json()["data"]["file"]["originalName"], "b.txt");
    // The filtered endpoint got only the deletion, signed with its own secret.
    let other = got
        .iter()
        .find(|r| !verify(&secret, r))
        .expect("second endpoint's");
    assert_eq!(other.json()["type"], "file.deleted");
    // A tampered body does not verify.
    let mut tampered = firsts[0].clone();
    tampered.body = tampered.body.replace("a.txt", "x.txt");
    assert!(!verify(&secret, &tampered));

    assert_eq!(
        server
            .counter("stowage_events_written_total{type=\"file.registered\"}")
            .await,
        1
    );
    assert_eq!(
        server
            .counter("stowage_events_written_total{type=\"file.updated\"}")
            .await,
        1
    );
    assert_eq!(server.counter("stowage_webhook_deliveries_total").await, 4);
    let listed = server.cli_output(&["webhooks", "list"]);
    assert!(
        listed.contains(&only_id) && listed.contains("file.deleted"),
        "{listed}"
    );
    assert!(!listed.contains("whsec_"), "secrets are never listed");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_every_event_after_it_recovers_in_order_per_file() {
    let server = spawn_with(&FAST);
    let receiver = Receiver::start(503).await;
    let (_, secret) = add_endpoint(&server, &receiver.url, None);
    let alice = server.user("alice");
    let mut ids = Vec::new();
    for i in 0..3 {
        let f = server
            .upload(&alice, &format!("f{i}.txt"), "text/plain", b"x", json!({}))
            .await;
        ids.push(f["id"].as_str().expect("id").to_owned());
    }
    for round in 0..3 {
        for id in &ids {
            rename(&server, &alice, id, &format!("{id}-{round}.txt")).await;
        }
    }
    receiver
        .wait_for(20, "failed attempts", |got| got.len() >= 6)
        .await;
    assert!(receiver.accepted().is_empty());
    receiver.set(200);
    receiver
        .wait_for(60, "every event accepted", |_| {
            receiver.accepted().len() >= 12
        })
        .await;
    let accepted = receiver.accepted();
    let mut seen = std::collections::HashSet::new();
    let mut names_per_file: HashMap<String, Vec<String>> = HashMap::new();
    for r in &accepted {
        assert!(verify(&secret, r));
        let body = r.json();
        if !seen.insert(body["id"].as_str().expect("id").to_owned()) {
            continue; // at least once: a repeat is allowed, not a loss
        }
        let file = &body["data"]["file"];
        names_per_file
            .entry(file["id"].as_str().expect("file id").to_owned())
            .or_default()
            .push(file["originalName"].as_str().expect("name").to_owned());
    }
    assert_eq!(seen.len(), 12, "3 registrations and 9 renames, none lost");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            names_per_file.get(id),
            Some(&vec![
                format!("f{i}.txt"),
                format!("{id}-0.txt"),
                format!("{id}-1.txt"),
                format!("{id}-2.txt"),
            ]),
            "events of one file arrive in commit order"
        );
    }
    assert!(server.counter("stowage_webhook_retries_total").await >= 6);
}

#[tokio::test]
async fn a_receiver_that_always_fails_ends_failed_listed_and_redeliverable() {
    let server = spawn_with(&[
        ("STOWAGE_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("STOWAGE_WEBHOOK_POLL_MS", "50"),
        ("STOWAGE_WEBHOOK_RETRY_FIRST_MS", "100"),
        // 1.8 s of retries.
        ("STOWAGE_WEBHOOK_RETRY_HOURS", "0.0005"),
    ]);
    let receiver = Receiver::start(500).await;
    let (endpoint, secret) = add_endpoint(&server, &receiver.url, None);
    let alice = server.user("alice");
    let file = server
        .upload(&alice, "a.txt", "text/plain", b"x", json!({}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let out = server.cli_output(&["webhooks", "deliveries", &endpoint]);
        if out.contains("failed") {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "never failed: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let attempts: Vec<&str> = listing.lines().skip(1).collect();
    assert!(attempts.len() >= 3, "every attempt is listed: {listing}");
    assert!(
        attempts
            .iter()
            .all(|l| l.contains("500") && l.contains("HTTP 500")),
        "{listing}"
    );
    let event_id = receiver.got()[0].json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(
        attempts.iter().all(|l| l.starts_with(&event_id)),
        "{listing}"
    );
    let tries = receiver.got().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.got().len(),
        tries,
        "a failed delivery is not retried"
    );
    assert_eq!(server.counter("stowage_webhook_failures_total").await, 1);

    receiver.set(200);
    server.cli(&["webhooks", "redeliver", &event_id]);
    receiver
        .wait_for(20, "the redelivery", |_| !receiver.accepted().is_empty())
        .await;
    let r = &receiver.accepted()[0];
    assert!(verify(&secret, r));
    assert_eq!(r.json()["data"]["file"]["id"], file["id"]);
    let out = server.cli_output(&["webhooks", "deliveries", &endpoint]);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("delivered")),
        "{out}"
    );
}

#[tokio::test]
async fn private_and_loopback_targets_are_refused_unless_allowed() {
    let server = spawn_with(&[
        ("STOWAGE_WEBHOOK_POLL_MS", "50"),
        ("STOWAGE_WEBHOOK_RETRY_FIRST_MS", "60000"),
    ]);
    let receiver = Receiver::start(200).await;
    let port = receiver.url.rsplit(':').next().expect("port").to_owned();
    // The address itself, and a name that resolves to it.
    let (literal, _) = add_endpoint(&server, &receiver.url, None);
    let (named, _) = add_endpoint(&server, &format!("http://localhost:{port}"), None);
    let alice = server.user("alice");
    server
        .upload(&alice, "a.txt", "text/plain", b"x", json!({}))
        .await;
    for endpoint in [&literal, &named] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let out = server.cli_output(&["webhooks", "deliveries", endpoint]);
            if out.contains("refused") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not refused: {out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        receiver.got().is_empty(),
        "nothing reached the private address"
    );
    // Bad URLs are refused when the endpoint is added.
    for bad in [
        "ftp://example.com/x",
        "https://user:pw@example.com/",
        "example.com",
    ] {
        let out = std::process::Command::new(bin())
            .envs(server.cli_env())
            .args([
                "webhooks",
                "add",
                "--project",
                "demo",
                "--env",
                "dev",
                "--url",
                bad,
            ])
            .output()
            .expect("cli");
        assert!(!out.status.success(), "{bad} was accepted");
    }
}

#[tokio::test]
async fn an_event_committed_before_a_crash_is_delivered_after_the_restart() {
    // This server commits changes but does not deliver; it is SIGKILLed,
    // and one that delivers starts on the same database.
    let mut env: Vec<(&str, &str)> = FAST.to_vec();
    env.push(("STOWAGE_WEBHOOKS_DELIVER", "0"));
    let mut server = spawn_with(&env);
    let receiver = Receiver::start(200).await;
    let (_, secret) = add_endpoint(&server, &receiver.url, None);
    let alice = server.user("alice");
    let file = server
        .upload(&alice, "a.txt", "text/plain", b"x", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.got().is_empty());
    server.kill();
    let restarted = server.replica_with(&[("STOWAGE_WEBHOOKS_DELIVER", "1")]);
    receiver
        .wait_for(20, "the delivery after restart", |got| !got.is_empty())
        .await;
    let r = &receiver.got()[0];
    assert!(verify(&secret, r));
    assert_eq!(r.json()["data"]["file"]["id"], file["id"]);
    drop(restarted);
}

#[tokio::test]
async fn two_replicas_deliver_each_of_500_events_once_in_order_per_file() {
    if postgres_admin_url().is_none() {
        return; // replicas share a PostgreSQL database
    }
    let a = spawn_with(&FAST);
    let b = a.replica();
    let receiver = Receiver::start(200).await;
    add_endpoint(&a, &receiver.url, None);
    let alice = a.user("alice");
    let mut ids = Vec::new();
    for i in 0..10 {
        let f = a
            .upload(&alice, &format!("f{i}.txt"), "text/plain", b"x", json!({}))
            .await;
        ids.push(f["id"].as_str().expect("id").to_owned());
    }
    // 490 renames, spread over both replicas, files interleaved.
    for round in 0..49 {
        for (i, id) in ids.iter().enumerate() {
            let via = if (round + i) % 2 == 0 { &a } else { &b };
            rename(via, &alice, id, &format!("r{round:02}.txt")).await;
        }
    }
    receiver
        .wait_for(120, "500 deliveries", |got| got.len() >= 500)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.got();
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    for r in &got {
        let body = r.json();
        *count
            .entry(body["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
        let file = &body["data"]["file"];
        names
            .entry(file["id"].as_str().expect("file").to_owned())
            .or_default()
            .push(file["originalName"].as_str().expect("name").to_owned());
    }
    assert_eq!(count.len(), 500, "every event delivered");
    assert!(
        count.values().all(|n| *n == 1),
        "each delivered once between the replicas"
    );
    for id in &ids {
        let n = &names[id];
        assert_eq!(n.len(), 50);
        let renames: Vec<String> = (0..49).map(|r| format!("r{r:02}.txt")).collect();
        assert_eq!(&n[1..], renames.as_slice(), "in commit order per file");
    }
    assert!(a.counter("stowage_webhook_deliveries_total").await > 0);
    assert!(
        b.counter("stowage_webhook_deliveries_total").await > 0,
        "both replicas deliver"
    );
}

#[tokio::test]
async fn a_failing_endpoint_url_is_never_logged_or_stored_with_its_query() {
    let server = spawn_with(&[
        ("STOWAGE_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("STOWAGE_WEBHOOK_POLL_MS", "50"),
        ("STOWAGE_WEBHOOK_RETRY_FIRST_MS", "60000"),
        ("RUST_LOG", "info"),
    ]);
    // Nothing listens on port 1: the connection is refused.
    let (endpoint, _) = add_endpoint(
        &server,
        "http://127.0.0.1:1/hooks?token=hunter2-secret",
        None,
    );
    let alice = server.user("alice");
    server
        .upload(&alice, "a.txt", "text/plain", b"x", json!({}))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listing = loop {
        let out = server.cli_output(&["webhooks", "deliveries", &endpoint]);
        if out.lines().count() > 1 {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(listing.contains("pending"), "{listing}");
    assert!(
        !listing.contains("hunter2"),
        "the stored error names the URL: {listing}"
    );
    let log = server.log();
    assert!(log.contains("webhook attempt failed"), "{log}");
    assert!(!log.contains("hunter2"), "the log names the URL: {log}");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_without_holding_up_the_others() {
    let server = spawn_with(&[
        ("STOWAGE_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("STOWAGE_WEBHOOK_POLL_MS", "50"),
        ("STOWAGE_WEBHOOK_RETRY_FIRST_MS", "60000"),
        ("STOWAGE_WEBHOOK_TIMEOUT_MS", "500"),
    ]);
    // A receiver that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url = format!("http://{}/hooks", silent.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = silent.accept().await {
            held.push(conn);
        }
    });
    let (slow, _) = add_endpoint(&server, &silent_url, None);
    let fast = Receiver::start(204).await;
    add_endpoint(&server, &fast.url, None);
    let alice = server.user("alice");
    for i in 0..3 {
        server
            .upload(&alice, &format!("f{i}.txt"), "text/plain", b"x", json!({}))
            .await;
    }
    fast.wait_for(10, "the fast endpoint's deliveries", |got| got.len() >= 3)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listing = loop {
        let out = server.cli_output(&["webhooks", "deliveries", &slow]);
        if out.matches("no answer within 500 ms").count() >= 3 {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no timeouts recorded: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        listing.lines().skip(1).all(|l| l.contains("pending")),
        "{listing}"
    );
}
