//! Stowage's `ObjectStore` on rusoto_s3 (TLS by rustls 0.23, see [`tls`]): AWS S3 or any S3-compatible
//! endpoint (MinIO, Ceph, Garage, s3s) with path-style addressing. The API
//! process only signs; bytes travel between the client and the store.
//!
//! Every call runs under a timeout; idempotent calls are retried a bounded
//! number of times; store errors become domain errors here.
#![forbid(unsafe_code)]

mod admin;
mod calls;
mod copy;
mod multipart;
pub mod sigv4;
mod stream;
#[cfg(feature = "test-server")]
pub mod test_server;
pub mod tls;

use std::future::Future;
use std::time::Duration;

use rusoto_core::request::HttpClient;
use rusoto_core::{Region, RusotoError};
use rusoto_credential::{AwsCredentials, ChainProvider, ProvideAwsCredentials, StaticProvider};
use rusoto_s3::{
    AbortMultipartUploadRequest, CORSConfiguration, CORSRule, CompleteMultipartUploadRequest,
    CompletedMultipartUpload, CompletedPart as S3Part, CopyObjectRequest, CreateBucketRequest,
    CreateMultipartUploadRequest, DeleteObjectRequest, HeadBucketRequest, HeadObjectError,
    HeadObjectRequest, ListPartsRequest, PutBucketCorsRequest, S3Client, UploadPartCopyRequest, S3,
};
use stowage_domain::limits::CHECKSUM_SHA256_HEADER as CHECKSUM_HEADER;
use stowage_domain::model::Timestamp;
use stowage_domain::ports::{
    AssembledObject, CompletedPart, ObjectInfo, ObjectStore, PresignedRequest,
};
use stowage_domain::{Error, ErrorCode, ErrorKind, Result};

use calls::{body_has, is_status, store_error, COMPLETE_TIMEOUT};
pub use copy::CopyLimits;
pub use stream::{ByteBody, PUT_MAX};

/// Configuration of the S3 store.
#[derive(Clone)]
pub struct S3Config {
    /// Custom endpoint (`http://127.0.0.1:9000`); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region name (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Static `(access key id, secret)`; `None` uses the standard AWS chain
    /// (environment, profile, container/instance metadata).
    pub credentials: Option<(String, String)>,
    /// Timeout of every call.
    pub timeout: Duration,
    /// PEM file of extra trusted CA certificates (a store behind a private
    /// CA), added to the built-in Mozilla roots.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Credentials {
    Static(StaticProvider),
    Chain(Box<ChainProvider>),
}

impl Credentials {
    async fn get(&self) -> Result<AwsCredentials> {
        let result = match self {
            Self::Static(p) => p.credentials().await,
            Self::Chain(p) => p.credentials().await,
        };
        result.map_err(|e| Error::internal(format!("s3 credentials: {e}")))
    }
}

/// The S3 store.
pub struct S3Store {
    client: S3Client,
    credentials: Credentials,
    bucket: String,
    region: String,
    scheme: String,
    host: String,
    timeout: Duration,
    copy: CopyLimits,
}

impl S3Store {
    /// Builds the client on [`tls::Connector`] (`http://` allowed for local
    /// endpoints, `https://` through rustls with the configured roots).
    ///
    /// # Errors
    /// `common/internal` for an unusable endpoint or CA file.
    pub fn new(config: &S3Config) -> Result<Self> {
        let tls = tls::client_config(config.ca_file.as_deref())
            .map_err(|e| Error::internal(format!("S3 TLS: {e}")))?;
        let dispatcher = HttpClient::from_connector(tls::Connector::new(tls, config.timeout));
        let endpoint = config
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", config.region))
            .trim_end_matches('/')
            .to_owned();
        let (scheme, host) = endpoint
            .split_once("://")
            .map(|(s, h)| (s.to_owned(), h.trim_end_matches('/').to_owned()))
            .filter(|(s, h)| (s == "http" || s == "https") && !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| {
                Error::internal(format!(
                    "S3 endpoint must be http(s)://host[:port], got `{endpoint}`"
                ))
            })?;
        let region = Region::Custom {
            name: config.region.clone(),
            endpoint: endpoint.clone(),
        };
        let credentials = match &config.credentials {
            Some((ak, sk)) => {
                Credentials::Static(StaticProvider::new_minimal(ak.clone(), sk.clone()))
            }
            None => Credentials::Chain(Box::new(ChainProvider::new())),
        };
        let client = match &credentials {
            Credentials::Static(p) => S3Client::new_with(dispatcher, p.clone(), region),
            Credentials::Chain(p) => S3Client::new_with(dispatcher, (**p).clone(), region),
        };
        Ok(Self {
            client,
            credentials,
            bucket: config.bucket.clone(),
            region: config.region.clone(),
            scheme,
            host,
            timeout: config.timeout,
            copy: CopyLimits::default(),
        })
    }

    /// Replaces the copy limits (tests make multipart copies of small objects).
    #[must_use]
    pub fn with_copy_limits(mut self, copy: CopyLimits) -> Self {
        self.copy = copy;
        self
    }

    async fn signing_key(&self) -> Result<sigv4::SigningKey> {
        let c = self.credentials.get().await?;
        Ok(sigv4::SigningKey {
            access_key_id: c.aws_access_key_id().to_owned(),
            secret_access_key: c.aws_secret_access_key().to_owned(),
            session_token: c.token().clone(),
        })
    }

    async fn presign(
        &self,
        method: &'static str,
        key: &str,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        let now = chrono::Utc::now();
        let expires_in =
            (expires_at.unix_seconds() - now.timestamp()).clamp(1, 7 * 24 * 3600) as u64;
        let signing = self.signing_key().await?;
        let path = format!("/{}/{key}", self.bucket);
        let url = sigv4::presign(
            &signing,
            &sigv4::Presign {
                method,
                scheme: &self.scheme,
                host: &self.host,
                path: &path,
                query,
                headers: headers.clone(),
                region: &self.region,
                expires_in,
            },
            now,
        );
        Ok(PresignedRequest {
            url,
            method,
            headers,
        })
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn presign_put<'a>(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        let mut headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
        if let Some(len) = content_length {
            headers.push(("Content-Length".to_owned(), len.to_string()));
        }
        // Signed, so the request must carry it; S3 then refuses a body with
        // another digest (400 BadDigest) and stores nothing.
        if let Some(sum) = checksum_sha256 {
            headers.push((CHECKSUM_HEADER.to_owned(), sum.to_owned()));
        }
        self.presign("PUT", key, Vec::new(), headers, expires_at)
            .await
    }

    async fn presign_get(
        &self,
        key: &str,
        content_type: &str,
        content_disposition: &str,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        let query = vec![
            (
                "response-content-disposition".to_owned(),
                content_disposition.to_owned(),
            ),
            ("response-content-type".to_owned(), content_type.to_owned()),
        ];
        self.presign("GET", key, query, Vec::new(), expires_at)
            .await
    }

    async fn read_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>> {
        use futures_util::TryStreamExt;
        if len == 0 {
            return Ok(Vec::new());
        }
        // One ranged GET (no HEAD first): a range past the end is cut to the
        // object, and an empty object reads as empty (`read_object`).
        let body = self
            .read_object(key, Some((0, len)))
            .await?
            .ok_or_else(|| Error::new(ErrorCode::UploadNotFound))?;
        let chunks: Vec<bytes::Bytes> = body
            .try_collect()
            .await
            .map_err(|e| Error::unavailable(format!("s3 get: {e}")))?;
        Ok(chunks.concat())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.retried(|| async {
            let req = HeadObjectRequest {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                ..Default::default()
            };
            match self.timed("head", self.client.head_object(req)).await? {
                Ok(out) => Ok(Some(ObjectInfo {
                    size: out
                        .content_length
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                    etag: out.e_tag,
                    // Only a HEAD with `x-amz-checksum-mode: ENABLED` says,
                    // which rusoto cannot send.
                    sha256: None,
                })),
                // A HEAD 404 has no body, so "no such key" and "no such bucket"
                // look alike; ask the bucket before saying the object is missing.
                Err(RusotoError::Service(HeadObjectError::NoSuchKey(_))) => {
                    self.bucket_exists().await.map(|()| None)
                }
                Err(e) if is_status(&e, 404) => self.bucket_exists().await.map(|()| None),
                Err(e) => Err(store_error("head", e)),
            }
        })
        .await
    }

    async fn put_bytes(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<()> {
        use md5::Digest as _;
        let md5: [u8; 16] = md5::Md5::digest(&bytes).into();
        let size = bytes.len() as u64;
        let body: stream::ByteBody = Box::pin(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))
        }));
        // One PutObject: S3 never shows a partial object, and Content-MD5
        // makes it refuse bytes damaged on the way.
        self.write_object(key, content_type, size, Some(md5), body)
            .await
            .map(|_| ())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.retried(|| async {
            let req = DeleteObjectRequest {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                ..Default::default()
            };
            match self.timed("delete", self.client.delete_object(req)).await? {
                Ok(_) => Ok(()),
                Err(e) if is_status(&e, 404) && !body_has(&e, "NoSuchBucket") => Ok(()),
                Err(e) => Err(store_error("delete", e)),
            }
        })
        .await
    }

    async fn promote(&self, from: &str, to: &str, size: u64) -> Result<()> {
        if size <= self.copy.single_max {
            self.copy_whole(from, to).await?;
        } else {
            self.copy_in_parts(from, to, size).await?;
        }
        self.delete(from).await
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String> {
        let req = CreateMultipartUploadRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_type: Some(content_type.to_owned()),
            ..Default::default()
        };
        match self
            .timed("create multipart", self.client.create_multipart_upload(req))
            .await?
        {
            Ok(out) => out
                .upload_id
                .ok_or_else(|| Error::new(ErrorCode::UploadInitFailed).with_detail("no upload id")),
            Err(e) => {
                let err = store_error("create multipart", e);
                Err(match err.kind() {
                    ErrorKind::Unavailable => err,
                    _ if err.code() == ErrorCode::BucketNotConfigured => err,
                    _ => Error::new(ErrorCode::UploadInitFailed)
                        .with_detail(err.detail().unwrap_or_default().to_owned()),
                })
            }
        }
    }

    async fn presign_part<'a>(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        let query = vec![
            ("partNumber".to_owned(), part_number.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ];
        let headers = checksum_sha256
            .map(|sum| (CHECKSUM_HEADER.to_owned(), sum.to_owned()))
            .into_iter()
            .collect();
        self.presign("PUT", key, query, headers, expires_at).await
    }

    async fn complete_multipart<'a>(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        // S3 keeps no whole-object SHA-256 of a multipart upload (docs/api.md
        // §11): the digest is recorded as given; each part was bound to its own.
        _checksum_sha256: Option<&'a str>,
    ) -> Result<AssembledObject> {
        self.check_parts(key, upload_id, parts).await?;
        let parts = parts
            .iter()
            .map(|p| S3Part {
                e_tag: Some(format!("\"{}\"", p.etag)),
                part_number: Some(i64::from(p.part_number)),
            })
            .collect();
        let req = CompleteMultipartUploadRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
            ..Default::default()
        };
        // Assembling a large object can take the store minutes; this one call
        // gets a longer deadline than the others.
        let completion = tokio::time::timeout(
            COMPLETE_TIMEOUT.max(self.timeout),
            self.client.complete_multipart_upload(req),
        );
        let out = match completion
            .await
            .map_err(|_| Error::unavailable("s3 complete multipart: timed out"))?
        {
            Ok(out) => out,
            Err(e)
                if ["InvalidPart", "InvalidPartOrder", "EntityTooSmall"]
                    .iter()
                    .any(|c| body_has(&e, c)) =>
            {
                return Err(Error::with_message(
                    ErrorCode::InvalidPartsArray,
                    "The store rejected the parts list",
                )
                .with_detail(
                    store_error("complete multipart", e)
                        .detail()
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
            Err(e) if body_has(&e, "NoSuchUpload") => {
                return Err(Error::new(ErrorCode::UploadNotFound))
            }
            Err(e) => return Err(store_error("complete multipart", e)),
        };
        let info = self
            .head(key)
            .await?
            .ok_or_else(|| Error::internal("completed object is missing"))?;
        Ok(AssembledObject {
            location: out
                .location
                .unwrap_or_else(|| format!("s3://{}/{key}", self.bucket)),
            size: info.size,
            etag: out.e_tag.or(info.etag).unwrap_or_default(),
            sha256: None,
        })
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        self.retried(|| async {
            let req = AbortMultipartUploadRequest {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                ..Default::default()
            };
            match self
                .timed("abort multipart", self.client.abort_multipart_upload(req))
                .await?
            {
                Ok(_) => Ok(()),
                Err(e) if body_has(&e, "NoSuchUpload") || matches!(e, RusotoError::Service(_)) => {
                    Ok(())
                }
                // Some servers (s3s-fs) answer 403 for an upload that no longer
                // exists. If the bucket answers with these credentials, the 403
                // is about the upload, which is as good as aborted.
                Err(e) if is_status(&e, 403) && self.health_check().await.is_ok() => Ok(()),
                Err(e) => Err(store_error("abort multipart", e)),
            }
        })
        .await
    }

    async fn health_check(&self) -> Result<()> {
        self.retried(|| async {
            let req = HeadBucketRequest {
                bucket: self.bucket.clone(),
                ..Default::default()
            };
            match self
                .timed("head bucket", self.client.head_bucket(req))
                .await?
            {
                Ok(()) => Ok(()),
                Err(e) if is_status(&e, 404) || matches!(e, RusotoError::Service(_)) => {
                    Err(Error::new(ErrorCode::BucketNotConfigured)
                        .with_detail(format!("bucket {} not found", self.bucket)))
                }
                Err(e) => Err(store_error("head bucket", e)),
            }
        })
        .await
    }
}

#[cfg(all(test, feature = "test-server"))]
mod tests {
    use super::*;
    use stowage_domain::testing::contract::{self, Transfer};

    /// The kit's ready HTTP transfer: moves bytes as a browser would.
    type Http = stowage_domain::testing::http::HttpTransfer;

    async fn setup(dir: &tempfile::TempDir) -> (test_server::TestS3Server, S3Store) {
        setup_with(dir, None, None).await
    }

    /// A server (over TLS when `tls` is given) and a store trusting `ca_file`.
    async fn setup_with(
        dir: &tempfile::TempDir,
        tls: Option<&test_server::TestTls>,
        ca_file: Option<std::path::PathBuf>,
    ) -> (test_server::TestS3Server, S3Store) {
        let server = test_server::start_with(
            dir.path(),
            "127.0.0.1:0".parse().expect("addr"),
            "AKTEST",
            "secret-test-key",
            tls,
        )
        .await
        .expect("s3 server");
        let store = S3Store::new(&S3Config {
            endpoint: Some(server.endpoint()),
            region: "us-east-1".into(),
            bucket: "stowage".into(),
            credentials: Some(("AKTEST".into(), "secret-test-key".into())),
            timeout: Duration::from_secs(5),
            ca_file,
        })
        .expect("store");
        (server, store)
    }

    /// A browser-like client; trusting the test CA when there is one.
    fn browser(tls: Option<&test_server::TestTls>) -> Http {
        let mut b = reqwest::Client::builder();
        if let Some(t) = tls {
            b = b.add_root_certificate(
                reqwest::Certificate::from_pem(t.ca_pem.as_bytes()).expect("ca"),
            );
        }
        stowage_domain::testing::http::HttpTransfer(b.build().expect("client"))
    }

    /// The whole kit, plus bucket initialisation, against one server.
    async fn kit(dir: &tempfile::TempDir, tls: Option<&test_server::TestTls>) {
        let ca_file = tls.map(|t| {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, &t.ca_pem).expect("write ca");
            path
        });
        let (server, store) = setup_with(dir, tls, ca_file).await;
        assert_eq!(
            server.endpoint().starts_with("https://"),
            tls.is_some(),
            "the scheme under test"
        );
        assert_eq!(
            store.health_check().await.err().map(|e| e.code()),
            Some(ErrorCode::BucketNotConfigured),
            "no bucket yet"
        );
        let notes = store.init_bucket(&[]).await.expect("init bucket");
        assert!(notes.iter().any(|n| n.contains("bucket")), "{notes:?}");
        store.init_bucket(&[]).await.expect("init is idempotent");
        // Over plain HTTP the object store checks run one test each
        // (`object_store_kit!` below); over TLS here, all at once.
        // s3s-fs does not compare part ETags; the adapter's own pre-check
        // (against ListParts) refuses a wrong one on every store.
        if tls.is_some() {
            contract::object_store(&store, &browser(tls), "demo/dev/owner").await;
        }
        let store = std::sync::Arc::new(store);
        contract::file_service(
            std::sync::Arc::new(stowage_domain::testing::memory::MemoryFileRepository::default()),
            store.clone(),
            &browser(tls),
        )
        .await;
    }

    /// A signature-checking server in a fresh folder with its bucket, per
    /// kit check, and a browser-like HTTP client as the transfer.
    struct Fixture {
        _dir: tempfile::TempDir,
        _server: test_server::TestS3Server,
        store: S3Store,
        io: Http,
    }

    impl contract::StoreFixture for Fixture {
        fn store(&self) -> &dyn ObjectStore {
            &self.store
        }
        fn io(&self) -> &dyn Transfer {
            &self.io
        }
        fn prefix(&self) -> &str {
            "demo/dev/owner"
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, store) = setup(&dir).await;
        store.init_bucket(&[]).await.expect("init bucket");
        Fixture {
            _dir: dir,
            _server: server,
            store,
            io: browser(None),
        }
    }

    stowage_domain::object_store_kit!(fixture().await);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn initialises_its_bucket_and_passes_the_service_kit() {
        let dir = tempfile::tempdir().expect("tempdir");
        kit(&dir, None).await;
    }

    /// The path production S3 takes: HTTPS, with the server's CA trusted
    /// through the CA file (presigned URLs are `https://` too).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_contract_kit_over_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = test_server::TestTls::generate().expect("certificates");
        kit(&dir, Some(&tls)).await;
    }

    /// A server whose certificate chains to another CA (or to none we know)
    /// is refused at once: unavailable, with the TLS reason, never a hang.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_certificate_from_an_untrusted_ca_is_refused_promptly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = test_server::TestTls::generate().expect("certificates");
        let other = test_server::TestTls::generate().expect("certificates");
        let wrong = dir.path().join("wrong-ca.pem");
        std::fs::write(&wrong, &other.ca_pem).expect("write");
        for ca_file in [Some(wrong), None] {
            let (_server, store) = setup_with(&dir, Some(&tls), ca_file).await;
            let started = std::time::Instant::now();
            let err = store.health_check().await.expect_err("refused");
            assert_eq!(err.code(), ErrorCode::ServiceUnavailable);
            let detail = err.detail().unwrap_or_default().to_owned();
            assert!(detail.contains("certificate"), "{detail}");
            assert!(started.elapsed() < Duration::from_secs(4), "no hang");
            assert_eq!(
                store.head("x").await.err().map(|e| e.code()),
                Some(ErrorCode::ServiceUnavailable)
            );
        }
    }

    /// Objects over `CopyObject`'s limit move by a multipart copy (here with
    /// the limits scaled down to a few MiB), keeping every byte and the type.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_objects_are_promoted_by_multipart_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_server, store) = setup(&dir).await;
        store.init_bucket(&[]).await.expect("init bucket");
        let store = store.with_copy_limits(CopyLimits {
            single_max: 6 << 20,
            part_size: 5 << 20,
            concurrency: 2,
        });
        let exp = Timestamp::from_datetime(chrono::Utc::now()).plus_secs(600);
        let body: Vec<u8> = (0..(12u32 << 20) + 7).map(|i| (i % 251) as u8).collect();
        let put = store
            .presign_put(
                "_staging/demo/dev/h/u/big.bin",
                "application/x-test",
                None,
                None,
                exp,
            )
            .await
            .expect("presign");
        let io = browser(None);
        assert_eq!(io.put(&put, &[], body.clone()).await.0, 200);
        store
            .promote(
                "_staging/demo/dev/h/u/big.bin",
                "demo/dev/h/u/big.bin",
                body.len() as u64,
            )
            .await
            .expect("promote");
        assert_eq!(
            store.head("_staging/demo/dev/h/u/big.bin").await.ok(),
            Some(None)
        );
        let get = store
            .presign_get(
                "demo/dev/h/u/big.bin",
                "application/x-test",
                "attachment",
                exp,
            )
            .await
            .expect("presign get");
        let (status, _, _, got) = io.get(&get).await;
        assert_eq!(status, 200);
        assert!(got == body, "every byte arrives, in order");
        assert_eq!(
            store
                .promote(
                    "_staging/demo/dev/h/u/none.bin",
                    "demo/dev/h/u/x.bin",
                    7 << 20
                )
                .await
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::UploadNotFound)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tampered_and_expired_urls_are_rejected_by_the_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_server, store) = setup(&dir).await;
        store.init_bucket(&[]).await.expect("init bucket");
        let http = reqwest::Client::new();
        let exp = Timestamp::from_datetime(chrono::Utc::now()).plus_secs(600);
        let put = store
            .presign_put("k/a.txt", "text/plain", Some(5), None, exp)
            .await
            .expect("presign");
        let tampered = put.url.replace("k/a.txt", "k/b.txt");
        let r = http
            .put(&tampered)
            .header("Content-Type", "text/plain")
            .body("hello")
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 403, "another key");
        let short = store
            .presign_put(
                "k/c.txt",
                "text/plain",
                None,
                None,
                Timestamp::from_datetime(chrono::Utc::now()).plus_secs(1),
            )
            .await
            .expect("presign");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = http
            .put(&short.url)
            .header("Content-Type", "text/plain")
            .body("hello")
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 403, "expired");
        assert_eq!(store.head("k/c.txt").await.expect("head"), None);
    }

    #[tokio::test]
    async fn an_unreachable_store_is_unavailable() {
        let store = S3Store::new(&S3Config {
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "us-east-1".into(),
            bucket: "b".into(),
            credentials: Some(("a".into(), "b".into())),
            timeout: Duration::from_millis(500),
            ca_file: None,
        })
        .expect("store");
        assert_eq!(
            store.head("x").await.err().map(|e| e.code()),
            Some(ErrorCode::ServiceUnavailable)
        );
        assert_eq!(
            store.health_check().await.err().map(|e| e.code()),
            Some(ErrorCode::ServiceUnavailable)
        );
    }
}
