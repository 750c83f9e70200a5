//! An S3-compatible server in-process (s3s-fs on a folder), which verifies SigV4
//! including presigned URLs, over plain HTTP or TLS ([`TestTls`]: a CA and a
//! server certificate generated at run time). For tests and
//! `cargo xtask s3-server`; never used by `stowage` itself.
//!
//! s3s-fs 0.14 lists parts without their ETags, and lists parts of any upload
//! id, even an aborted one; real S3 and MinIO list ETags and answer
//! `NoSuchUpload` for an upload that is gone, and the adapter relies on both
//! before completing. [`Listing`] adds the ETags (the MD5 of each part file)
//! and the `NoSuchUpload`, so the test server behaves like the stores Stowage
//! is deployed against.
//!
//! s3s-fs 0.14 also moves a PUT's body into place *before* it compares
//! `x-amz-checksum-sha256` (a bad digest is answered `BadDigest` but leaves
//! the object), and never checks a part's digest. [`verified`] checks both
//! first, as S3 does: a body with another digest stores nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Response, S3Result, S3};

/// A running server; it stops when dropped.
#[derive(Debug)]
pub struct TestS3Server {
    /// Bound address.
    pub addr: SocketAddr,
    tls: bool,
    task: tokio::task::JoinHandle<()>,
}

impl TestS3Server {
    /// `http://addr`, or `https://addr` for a TLS server.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// Certificates made at run time: a CA, and a server certificate for
/// `127.0.0.1` and `localhost` that it signed.
pub struct TestTls {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: Vec<u8>,
}

impl std::fmt::Debug for TestTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestTls").finish_non_exhaustive()
    }
}

impl TestTls {
    /// A fresh CA and server certificate (each call a different CA, so one
    /// instance's `ca_pem` is the wrong CA for another's server).
    ///
    /// # Errors
    /// A message when key generation or signing fails.
    pub fn generate() -> Result<Self, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let err = |e: rcgen::Error| format!("test certificate: {e}");
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Stowage test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(err)?;
        leaf.distinguished_name
            .push(DnType::CommonName, "stowage test s3");
        let leaf = leaf.signed_by(&key, &ca).map_err(err)?;
        Ok(Self {
            ca_pem: ca.pem(),
            chain: vec![leaf.der().clone()],
            key: key.serialize_der(),
        })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.clone().into());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .map_err(|e| format!("tls: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl Drop for TestS3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `root` (one folder per bucket) on `addr` (port 0 picks one), with
/// SigV4 authentication for the given key pair, over plain HTTP.
///
/// # Errors
/// A message when the folder or the socket cannot be used.
pub async fn start(
    root: &Path,
    addr: SocketAddr,
    access_key: &str,
    secret_key: &str,
) -> Result<TestS3Server, String> {
    start_with(root, addr, access_key, secret_key, None).await
}

/// [`start`], over TLS with `tls`'s server certificate when given.
///
/// # Errors
/// A message when the folder, the socket or the certificate cannot be used.
pub async fn start_with(
    root: &Path,
    addr: SocketAddr,
    access_key: &str,
    secret_key: &str,
    tls: Option<&TestTls>,
) -> Result<TestS3Server, String> {
    let acceptor = match tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            t.server_config()?,
        ))),
        None => None,
    };
    std::fs::create_dir_all(root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("s3s-fs: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(Listing {
        inner: fs,
        root: root.to_path_buf(),
    });
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
            let (http, service, acceptor) = (http.clone(), service.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(socket), service).await;
                    }
                    Some(acceptor) => {
                        // A client that refuses the certificate ends here.
                        let Ok(Ok(tls)) = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(socket),
                        )
                        .await
                        else {
                            return;
                        };
                        let _ = http.serve_connection(TokioIo::new(tls), service).await;
                    }
                }
            });
        }
    });
    Ok(TestS3Server {
        addr,
        tls: tls.is_some(),
        task,
    })
}

/// Creates a bucket folder directly (what `CreateBucket` would do).
///
/// # Errors
/// A message when the folder cannot be created.
pub fn create_bucket(root: &Path, bucket: &str) -> Result<(), String> {
    std::fs::create_dir_all(root.join(bucket)).map_err(|e| format!("create bucket {bucket}: {e}"))
}

/// s3s-fs with ETags in `ListParts`; every other operation is s3s-fs's own.
struct Listing {
    inner: s3s_fs::FileSystem,
    root: std::path::PathBuf,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing").field("root", &self.root).finish()
    }
}

/// The `S3` impl of [`Listing`]: `$op` delegate to s3s-fs; `list_parts` adds ETags.
/// (The whole impl comes out of the macro so that `async_trait` sees every method.)
macro_rules! listing_impl {
    ($($op:ident($input:ident) -> $output:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for Listing {
            $(
                async fn $op(
                    &self,
                    req: S3Request<s3s::dto::$input>,
                ) -> S3Result<S3Response<s3s::dto::$output>> {
                    S3::$op(&self.inner, req).await
                }
            )*

            async fn put_object(
                &self,
                mut req: S3Request<s3s::dto::PutObjectInput>,
            ) -> S3Result<S3Response<s3s::dto::PutObjectOutput>> {
                let body = req.input.body.take();
                req.input.body = verified(body, req.input.checksum_sha256.as_deref()).await?;
                S3::put_object(&self.inner, req).await
            }

            async fn upload_part(
                &self,
                mut req: S3Request<s3s::dto::UploadPartInput>,
            ) -> S3Result<S3Response<s3s::dto::UploadPartOutput>> {
                let body = req.input.body.take();
                req.input.body = verified(body, req.input.checksum_sha256.as_deref()).await?;
                S3::upload_part(&self.inner, req).await
            }

            async fn list_parts(
                &self,
                req: S3Request<s3s::dto::ListPartsInput>,
            ) -> S3Result<S3Response<s3s::dto::ListPartsOutput>> {
                use md5::{Digest, Md5};
                let upload_id = req.input.upload_id.clone();
                // s3s-fs lists the parts of any id, even an aborted or unknown
                // upload; S3 answers NoSuchUpload (the upload record is
                // `.upload-<id>.json` while the upload lives).
                if !self.root.join(format!(".upload-{upload_id}.json")).is_file() {
                    return Err(s3s::s3_error!(NoSuchUpload));
                }
                let mut resp = S3::list_parts(&self.inner, req).await?;
                for part in resp.output.parts.iter_mut().flatten() {
                    let Some(n) = part.part_number else { continue };
                    let path = self.root.join(format!(".upload_id-{upload_id}.part-{n}"));
                    if let Ok(bytes) = tokio::fs::read(&path).await {
                        part.e_tag = Some(s3s::dto::ETag::Strong(hex::encode(Md5::digest(&bytes))));
                    }
                }
                Ok(resp)
            }
        }
    };
}

listing_impl! {
    create_bucket(CreateBucketInput) -> CreateBucketOutput;
    copy_object(CopyObjectInput) -> CopyObjectOutput;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput;
    get_object(GetObjectInput) -> GetObjectOutput;
    head_bucket(HeadBucketInput) -> HeadBucketOutput;
    head_object(HeadObjectInput) -> HeadObjectOutput;
    list_buckets(ListBucketsInput) -> ListBucketsOutput;
    list_objects(ListObjectsInput) -> ListObjectsOutput;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput;
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput;
}

/// A body with a declared `x-amz-checksum-sha256`, read whole and compared
/// before anything is stored (test bodies are small); `BadDigest` when it
/// differs. Bodies without a digest pass through as they stream.
async fn verified(
    body: Option<s3s::dto::StreamingBlob>,
    sha256: Option<&str>,
) -> S3Result<Option<s3s::dto::StreamingBlob>> {
    use base64::Engine as _;
    use futures_util::TryStreamExt;
    use sha2::{Digest, Sha256};
    let Some(want) = sha256 else {
        return Ok(body);
    };
    let Some(body) = body else {
        return Ok(None);
    };
    let chunks: Vec<bytes::Bytes> = body
        .try_collect()
        .await
        .map_err(|_| s3s::s3_error!(IncompleteBody))?;
    let mut sha = Sha256::new();
    for chunk in &chunks {
        sha.update(chunk);
    }
    if base64::engine::general_purpose::STANDARD.encode(sha.finalize()) != want {
        return Err(s3s::s3_error!(BadDigest, "x-amz-checksum-sha256 mismatch"));
    }
    Ok(Some(s3s::dto::StreamingBlob::wrap(
        futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>)),
    )))
}
