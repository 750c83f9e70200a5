//! One place that turns a domain error into HTTP: status from the code's kind,
//! the JSON envelope of docs/api.md §2, the request id, and logging of server faults.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use stowage_domain::{Error, ErrorCode, ErrorKind};

tokio::task_local! {
    /// The id of the request being served (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request id, or `-` outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".to_owned())
}

/// HTTP status of a kind (the domain's table).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The error envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of the envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable code, e.g. `file/not-found`.
    #[schema(value_type = stowage_domain::ErrorCode)]
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Request id.
    pub request_id: String,
}

/// A domain error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The error.
    pub error: Error,
    /// Seconds for `Retry-After` (rate limiting; every 503 gets one).
    pub retry_after: Option<u64>,
    /// Methods for `Allow` (405).
    pub allow: Option<String>,
}

/// `Retry-After` of a 503 that names no other delay, seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

impl ApiError {
    /// `429 common/rate-limited` with `Retry-After`.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            error: Error::new(ErrorCode::RateLimited),
            retry_after: Some(secs.max(1)),
            allow: None,
        }
    }

    /// `405 common/method-not-allowed` with `Allow`.
    pub fn method_not_allowed(allow: String) -> Self {
        Self {
            error: Error::new(ErrorCode::MethodNotAllowed),
            retry_after: None,
            allow: Some(allow),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_after: None,
            allow: None,
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(c: ErrorCode) -> Self {
        Error::new(c).into()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// The body for an error, with the current request id.
pub fn error_body(e: &Error) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: e.code().as_str(),
            message: e.message().to_owned(),
            request_id: current_request_id(),
        },
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.error.kind())
    }

    fn error_response(&self) -> HttpResponse {
        let e = &self.error;
        match e.kind() {
            ErrorKind::Internal => tracing::error!(
                code = %e.code(),
                request_id = %current_request_id(),
                detail = e.detail().unwrap_or(""),
                "request failed"
            ),
            ErrorKind::Unavailable => tracing::warn!(
                code = %e.code(),
                request_id = %current_request_id(),
                detail = e.detail().unwrap_or(""),
                "backend unavailable"
            ),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        let retry_after = match e.kind() {
            ErrorKind::Unavailable => self.retry_after.or(Some(UNAVAILABLE_RETRY_AFTER_SECS)),
            _ => self.retry_after,
        };
        if let Some(secs) = retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((actix_web::http::header::ALLOW, allow.clone()));
        }
        response.json(error_body(e))
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn envelope_is_exact_and_carries_the_request_id() {
        let response = REQUEST_ID
            .scope("req-1".to_owned(), async {
                ApiError::from(ErrorCode::FileNotFound).error_response()
            })
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .map_err(|_| ())
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "file/not-found", "message": "File not found", "requestId": "req-1"}})
        );
    }

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let body = error_body(&Error::internal("/var/lib/secret: SELECT * FROM files"));
        let text = serde_json::to_string(&body).expect("json");
        assert!(
            !text.contains("secret") && !text.contains("SELECT"),
            "{text}"
        );
    }

    #[test]
    fn every_code_has_the_documented_status() {
        let want = |c: ErrorCode| match c.as_str() {
            "common/authentication-required" | "common/invalid-api-key" => 401,
            "common/payload-too-large" => 413,
            "common/rate-limited" => 429,
            "common/service-unavailable" => 503,
            "common/internal" | "file/bucket-not-configured" | "file/upload-init-failed" => 500,
            "file/not-found" | "file/upload-not-found" | "common/not-found" => 404,
            "common/method-not-allowed" => 405,
            "file/access-denied" | "file/quota-exceeded" => 403,
            "file/s3-key-already-exists" => 409,
            "image/unsupported-format" => 415,
            "image/decode-failed" => 422,
            _ => 400,
        };
        for c in ErrorCode::ALL {
            assert_eq!(status_of(c.kind()).as_u16(), want(*c), "{c}");
        }
    }
}
