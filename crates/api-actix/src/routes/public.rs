//! Public delivery (docs/api.md §8): `GET`/`HEAD /v1/public/{key}` serves the
//! bytes of a `public` file without credentials — streamed from the disk
//! store, or a `302` to a short-lived signed URL of an S3 store. Validators
//! and `HEAD` are answered here; every answer, errors included, carries
//! `Access-Control-Allow-Origin: *`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use stowage_domain::service::PublicFile;
use stowage_domain::Error;

use super::gateway::{header_str, send_object};
use crate::error::ApiResult;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use crate::error::ErrorBody;
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/public/{key}", tag = "public", operation_id = "getPublicFile", security(()),
    params(("key" = String, Path, description = "The file's s3Key (may contain `/`)"), ("Range" = Option<String>, Header, description = "bytes=start-end"), ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy"), ("If-Modified-Since" = Option<String>, Header, description = "Date of a cached copy")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "A byte range"), (status = 302, description = "Redirect to a short-lived signed URL of the object store"), (status = 304, description = "Not modified"), (status = 416, description = "Range not satisfiable"), (status = "4XX", description = "Error envelope; codes: file/not-found (404: not a public file, whatever the reason)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
/// `GET /v1/public/{key}`.
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    let mut response = match serve(&state, &req, &key).await {
        Ok(r) => r,
        Err(e) => e.error_response(),
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[utoipa::path(head, path = "/v1/public/{key}", tag = "public", operation_id = "headPublicFile", security(()),
    params(("key" = String, Path, description = "The file's s3Key (may contain `/`)")),
    responses((status = 200, description = "Headers of the bytes"), (status = 304, description = "Not modified"), (status = "4XX", description = "Error envelope; codes: file/not-found (404)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
/// `HEAD /v1/public/{key}`: as GET, without the body, answered here on every backend.
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> HttpResponse {
    get(state, req, key).await
}

/// Whether the client's cached copy is current: `If-None-Match` (any of its
/// tags, weak or strong, or `*`), else `If-Modified-Since` at one-second
/// precision.
pub(crate) fn not_modified(req: &HttpRequest, etag: &str, last_modified: SystemTime) -> bool {
    if let Some(tags) = header_str(req, header::IF_NONE_MATCH) {
        return tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    header_str(req, header::IF_MODIFIED_SINCE)
        .and_then(|v| v.parse::<HttpDate>().ok())
        .map(SystemTime::from)
        .is_some_and(|since| {
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            secs(last_modified) <= secs(since)
        })
}

async fn serve(state: &AppState, req: &HttpRequest, key: &str) -> ApiResult<HttpResponse> {
    let public: PublicFile = state.files.public_file(key).await?;
    let file = &public.file;
    let millis = u64::try_from(file.created_at.millis()).unwrap_or(0);
    // Registered bytes never change: they were last modified at registration.
    let last_modified = UNIX_EPOCH + Duration::from_millis(millis);
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| Error::internal("unrepresentable header"));
    let cache = format!("public, max-age={}", state.public_max_age_secs);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, value(&public.etag)?))
        .insert_header((header::LAST_MODIFIED, HttpDate::from(last_modified)))
        .insert_header((header::CACHE_CONTROL, value(&cache)?))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if not_modified(req, &public.etag, last_modified) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    response
        .insert_header((header::CONTENT_TYPE, value(&file.mime_type)?))
        .insert_header((
            header::CONTENT_DISPOSITION,
            value(&public.content_disposition)?,
        ))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if public.sandbox {
        response.insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"));
    }
    let len = file.size;
    if req.method() == Method::HEAD {
        return Ok(response.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<web::Bytes, std::io::Error>>(),
        )));
    }
    let Some(store) = state.gateway.as_deref() else {
        // The object store delivers the bytes itself.
        let signed = state.files.public_redirect(&public).await?;
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, value(&signed.url)?))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    };
    let (object, stored) = store
        .open_object(&file.s3_key)
        .await?
        .ok_or_else(|| Error::new(stowage_domain::ErrorCode::FileNotFound))?;
    send_object(response, req, object, stored, &state.metrics).await
}
