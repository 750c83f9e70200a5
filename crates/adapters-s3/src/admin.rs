//! Bucket set-up, used by `stowage storage init` and `STOWAGE_S3_INIT_BUCKET`:
//! create the bucket if missing and put its CORS rule.

use super::*;

impl S3Store {
    /// `Ok` when the bucket exists; `file/bucket-not-configured` when it does not.
    pub(crate) async fn bucket_exists(&self) -> Result<()> {
        self.health_check().await
    }

    /// Creates the bucket if missing and applies a CORS rule for browser
    /// PUT/GET from `origins`. Returns notes for the operator (e.g. a server
    /// without CORS support).
    ///
    /// # Errors
    /// `common/service-unavailable` or `common/internal` when the bucket cannot be created.
    pub async fn init_bucket(&self, origins: &[String]) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let create = CreateBucketRequest {
            bucket: self.bucket.clone(),
            ..Default::default()
        };
        match self
            .timed("create bucket", self.client.create_bucket(create))
            .await?
        {
            Ok(_) => notes.push(format!("created bucket {}", self.bucket)),
            Err(e)
                if body_has(&e, "BucketAlreadyOwnedByYou")
                    || body_has(&e, "BucketAlreadyExists")
                    || matches!(e, RusotoError::Service(_)) =>
            {
                notes.push(format!("bucket {} already exists", self.bucket));
            }
            Err(e) => return Err(store_error("create bucket", e)),
        }
        let rule = CORSRule {
            allowed_headers: Some(vec!["*".into()]),
            allowed_methods: vec!["GET".into(), "HEAD".into(), "PUT".into()],
            allowed_origins: if origins.is_empty() {
                vec!["*".into()]
            } else {
                origins.to_vec()
            },
            expose_headers: Some(vec![
                "ETag".into(),
                "Content-Length".into(),
                "Content-Range".into(),
                "Content-Disposition".into(),
            ]),
            id: Some("stowage-browser-uploads".into()),
            max_age_seconds: Some(3600),
        };
        let cors = PutBucketCorsRequest {
            bucket: self.bucket.clone(),
            cors_configuration: CORSConfiguration {
                cors_rules: vec![rule],
            },
            ..Default::default()
        };
        match self.timed("put bucket cors", self.client.put_bucket_cors(cors)).await? {
            Ok(_) => notes.push("applied the CORS rule for browser uploads".into()),
            Err(e) => notes.push(format!(
                "could not apply the CORS rule ({}); browsers cannot upload directly until CORS is configured on the store",
                store_error("put bucket cors", e).detail().unwrap_or("unknown error")
            )),
        }
        Ok(notes)
    }
}
