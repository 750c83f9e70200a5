//! The object gateway of the disk store (docs/api.md §7): signed PUT (streamed to a
//! temp file, fsynced, renamed), GET with `Range`, HEAD. No API key is
//! involved: the signature decides what a URL may do, and for a PUT the
//! upload it feeds decides whether bytes are still welcome and how many
//! (docs/api.md §12, [`stowage_domain::service::FileService::authorize_upload_bytes`]).

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use stowage_adapters_fs::{FsStore, GatewayRequest, Grant};
use stowage_domain::{Error, ErrorCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::error::ApiResult;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use crate::error::ErrorBody;
use crate::metrics::Metrics;
use crate::state::AppState;

fn store(state: &AppState) -> ApiResult<&FsStore> {
    state.gateway.as_deref().ok_or_else(|| {
        Error::with_message(
            ErrorCode::FileNotFound,
            "This server does not serve objects",
        )
        .into()
    })
}

/// The disk store's signed-URL policy applied to this request.
fn authorize(state: &AppState, req: &HttpRequest, key: &str) -> ApiResult<Grant> {
    let store = store(state)?;
    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| Error::with_message(ErrorCode::AccessDenied, "Malformed signed URL"))?;
    let request = GatewayRequest {
        method: req.method().as_str(),
        key,
        query: &query,
        content_type: header_str(req, header::CONTENT_TYPE),
        content_length: header_str(req, header::CONTENT_LENGTH),
        checksum_sha256: header_str(req, stowage_domain::limits::CHECKSUM_SHA256_HEADER),
    };
    Ok(store.authorize(&request, state.clock.now())?)
}

pub(crate) fn header_str(req: &HttpRequest, name: impl header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(put, path = "/v1/storage/{key}", tag = "gateway", operation_id = "putObject", security(()),
    params(("key" = String, Path, description = "Object key (may contain `/`)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The bytes"),
    responses((status = 200, description = "Stored; ETag header carries the quoted MD5"), (status = "4XX", description = "Error envelope; codes: file/access-denied (403: missing, tampered, expired or misused signature, or a header other than the signed one), file/not-found (404), file/upload-not-found (404), file/file-too-large, file/size-mismatch, common/invalid-request (400), common/rate-limited (429: another body through this URL)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
/// `PUT /v1/storage/{key}`: an object or a part.
pub async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let grant = authorize(&state, &req, &key)?;
    let store = store(&state)?;
    let url = match &grant {
        Grant::PutPart {
            upload_id,
            part_number,
            ..
        } => format!("{key}?uploadId={upload_id}&partNumber={part_number}"),
        _ => key.to_string(),
    };
    let _pass = state.uploads.enter(url)?;
    let body = state.uploads.idle_limited(body);
    let written = match grant {
        Grant::PutObject {
            content_length,
            checksum_sha256,
            ..
        } => {
            let allowed = state.files.authorize_upload_bytes(&key, None).await?;
            store
                .put_object(
                    &key,
                    content_length,
                    checksum_sha256.as_deref(),
                    allowed.max_bytes,
                    Box::pin(body),
                )
                .await?
        }
        Grant::PutPart {
            upload_id,
            part_number,
            checksum_sha256,
        } => {
            let allowed = state
                .files
                .authorize_upload_bytes(&key, Some(&upload_id))
                .await?;
            store
                .put_part(
                    &key,
                    &upload_id,
                    part_number,
                    checksum_sha256.as_deref(),
                    allowed.max_bytes,
                    Box::pin(body),
                )
                .await?
        }
        Grant::Get { .. } => {
            return Err(
                Error::with_message(ErrorCode::AccessDenied, "URL does not allow PUT").into(),
            )
        }
    };
    Metrics::add(&state.metrics.gateway_bytes_in, written.size);
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, written.etag))
        .finish())
}

/// A parsed single `Range: bytes=…` request.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No (usable) range: the whole object.
    Full,
    /// Inclusive byte range.
    Part(u64, u64),
    /// Syntactically valid but outside the object.
    Unsatisfiable,
}

fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full; // Multiple ranges: answer with the whole object (allowed by RFC 9110).
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (start, end) = (start.trim(), end.trim());
    match (start.parse::<u64>().ok(), end.parse::<u64>().ok()) {
        (Some(s), _) if s >= len => RangeRequest::Unsatisfiable,
        (Some(s), Some(e)) if e >= s => RangeRequest::Part(s, e.min(len - 1)),
        (Some(s), None) if end.is_empty() => RangeRequest::Part(s, len - 1),
        (None, Some(n)) if start.is_empty() => {
            if n == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(len - n.min(len), len - 1)
            }
        }
        _ => RangeRequest::Full,
    }
}

#[utoipa::path(get, path = "/v1/storage/{key}", tag = "gateway", operation_id = "getObject", security(()),
    params(("key" = String, Path, description = "Object key (may contain `/`)"), ("Range" = Option<String>, Header, description = "bytes=start-end")),
    responses((status = 200, description = "The object", content_type = "application/octet-stream", body = Vec<u8>), (status = 206, description = "A byte range"), (status = 416, description = "Range not satisfiable"), (status = "4XX", description = "Error envelope; codes: file/access-denied (403: missing, tampered, expired or misused signature, or a header other than the signed one), file/not-found (404), file/upload-not-found (404), file/file-too-large, file/size-mismatch, common/invalid-request (400), common/rate-limited (429: another body through this URL)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
/// `GET`/`HEAD /v1/storage/{key}`: the object with the signed response headers.
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let Grant::Get {
        content_type,
        content_disposition,
    } = authorize(&state, &req, &key)?
    else {
        return Err(Error::with_message(ErrorCode::AccessDenied, "URL does not allow GET").into());
    };
    let (file, len) = store(&state)?
        .open_object(&key)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::FileNotFound))?;
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| Error::internal("unrepresentable header"));
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, value(&content_type)?))
        .insert_header((header::CONTENT_DISPOSITION, value(&content_disposition)?))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    send_object(response, &req, file, len, &state.metrics).await
}

/// Answers a `GET`/`HEAD` for an object of `len` bytes open in `file`, with
/// `response`'s headers: a `Range` gives `206` (or `416`), `HEAD` gets the
/// headers only, anything else the bytes, streamed (never whole in memory).
pub(crate) async fn send_object(
    mut response: actix_web::HttpResponseBuilder,
    req: &HttpRequest,
    mut file: tokio::fs::File,
    len: u64,
    metrics: &Metrics,
) -> ApiResult<HttpResponse> {
    let (start, count) = match parse_range(header_str(req, header::RANGE), len) {
        RangeRequest::Full => (0, len),
        RangeRequest::Part(s, e) => {
            response.status(StatusCode::PARTIAL_CONTENT);
            response.insert_header((header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}")));
            (s, e - s + 1)
        }
        RangeRequest::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
                .finish());
        }
    };
    if req.method() == actix_web::http::Method::HEAD {
        return Ok(response.body(SizedStream::new(
            count,
            futures_util::stream::empty::<Result<web::Bytes, std::io::Error>>(),
        )));
    }
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| Error::internal(format!("seek: {e}")))?;
    }
    Metrics::add(&metrics.gateway_bytes_out, count);
    let stream = ReaderStream::with_capacity(file.take(count), 256 * 1024);
    Ok(response.body(SizedStream::new(count, stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let cases = [
            (None, Full),
            (Some("bytes=0-4"), Part(0, 4)),
            (Some("bytes=5-"), Part(5, 9)),
            (Some("bytes=-3"), Part(7, 9)),
            (Some("bytes=-30"), Part(0, 9)),
            (Some("bytes=8-100"), Part(8, 9)),
            (Some("bytes=10-"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=4-2"), Full),
            (Some("bytes=0-1,4-5"), Full),
            (Some("items=0-1"), Full),
            (Some("bytes=x-y"), Full),
        ];
        for (h, want) in cases {
            assert_eq!(parse_range(h, 10), want, "{h:?}");
        }
    }
}

/// `HEAD /v1/storage/{key}`: as GET, without the body.
#[utoipa::path(head, path = "/v1/storage/{key}", tag = "gateway", operation_id = "headObject", security(()),
    params(("key" = String, Path, description = "Object key (may contain `/`)")),
    responses((status = 200, description = "Headers of the object"), (status = "4XX", description = "Error envelope; codes: file/access-denied (403: missing, tampered, expired or misused signature, or a header other than the signed one), file/not-found (404), file/upload-not-found (404), file/file-too-large, file/size-mismatch, common/invalid-request (400), common/rate-limited (429: another body through this URL)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    key: web::Path<String>,
) -> ApiResult<HttpResponse> {
    get(state, req, key).await
}
