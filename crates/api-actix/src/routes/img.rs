//! `GET`/`HEAD /v1/img/{options}/{key}` (docs/api.md §9): a resized or
//! converted copy of a `public` image — or of any image, through the signed
//! URL a download-URL request with `transform` gives. Options are checked
//! before any lookup; validators are answered before any pixel is touched;
//! a stored derived image is served without decoding; every answer carries
//! `Access-Control-Allow-Origin: *`.

use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue, HttpDate};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use stowage_domain::image::{accepts_webp, output_format, parse_path, Job, Variant};
use stowage_domain::service::ImageSignature;
use stowage_domain::Error;

use super::gateway::{header_str, send_object};
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[utoipa::path(get, path = "/v1/img/{options}/{key}", tag = "public", operation_id = "getImage", security(()),
    params(("options" = String, Path, description = "One or more option segments: `fit-in`, `{W}x{H}`, `smart`, `filters:quality(1-100):format(webp|jpeg|png|avif):blur(1-150)`"), ("key" = String, Path, description = "The file's s3Key (may contain `/`)"), ("expires" = Option<i64>, Query, description = "Expiry of a signed URL (from a download-URL request with `transform`)"), ("signature" = Option<String>, Query, description = "Signature of a signed URL"), ("Accept" = Option<String>, Header, description = "`image/webp` selects WebP when no format(...) is given"), ("If-None-Match" = Option<String>, Header, description = "ETag of a cached copy")),
    responses((status = 200, description = "The transformed image", content_type = "image/webp", body = Vec<u8>), (status = 302, description = "Redirect to a short-lived signed URL of a stored derived image"), (status = 304, description = "Not modified"), (status = "4XX", description = "Error envelope; codes: image/invalid-options (400), image/too-large (400), file/not-found (404: not a public file, whatever the reason), image/unsupported-format (415), image/decode-failed (422), common/rate-limited (429, with Retry-After)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503: every image worker busy, or a backend down; with Retry-After)", body = ErrorBody)))]
/// `GET /v1/img/{options}/{key}`.
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let mut response = match serve(&state, &req, &path).await {
        Ok(r) => r,
        Err(e) => {
            state.images.count_error(&e.error);
            e.error_response()
        }
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[utoipa::path(head, path = "/v1/img/{options}/{key}", tag = "public", operation_id = "headImage", security(()),
    params(("options" = String, Path, description = "Option segments, as for GET"), ("key" = String, Path, description = "The file's s3Key (may contain `/`)")),
    responses((status = 200, description = "Headers of the transformed image"), (status = 304, description = "Not modified"), (status = "4XX", description = "Error envelope; codes as for GET", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)))]
/// `HEAD /v1/img/{options}/{key}`: as GET, without the body.
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    get(state, req, path).await
}

/// `expires` and `signature` of a signed image URL, if the query has them.
fn signature(req: &HttpRequest) -> Option<ImageSignature> {
    let mut expires = None;
    let mut signature = None;
    for pair in req.query_string().split('&') {
        match pair.split_once('=') {
            Some(("expires", v)) => expires = v.parse::<i64>().ok(),
            Some(("signature", v)) => signature = Some(v.to_owned()),
            _ => {}
        }
    }
    Some(ImageSignature {
        expires: expires?,
        signature: signature?,
    })
}

async fn serve(state: &AppState, req: &HttpRequest, path: &str) -> ApiResult<HttpResponse> {
    let files = &state.files;
    let (transform, key) = parse_path(path, &files.image_config().bounds)?;
    let signed = signature(req);
    let source = files.image_source(key, &transform, signed.as_ref()).await?;
    let accept = header_str(req, header::ACCEPT).is_some_and(accepts_webp);
    let (format, vary) = output_format(&transform, source.format, accept);
    let variant = Variant::new(&transform, format);
    let file = &source.file;
    let etag = variant.etag(file.id);
    let millis = u64::try_from(file.created_at.millis()).unwrap_or(0);
    let last_modified = UNIX_EPOCH + Duration::from_millis(millis);
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|_| Error::internal("unrepresentable header"));
    // A signed URL names a file that may not be public: no shared cache keeps it.
    let cache = if signed.is_some() {
        "private, max-age=3600".to_owned()
    } else {
        format!("public, max-age={}", state.public_max_age_secs)
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, value(&etag)?))
        .insert_header((header::LAST_MODIFIED, HttpDate::from(last_modified)))
        .insert_header((header::CACHE_CONTROL, value(&cache)?))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if vary {
        response.insert_header((header::VARY, "Accept"));
    }
    if super::public::not_modified(req, &etag, last_modified) {
        state.images.count("not_modified");
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    response
        .insert_header((header::CONTENT_TYPE, format.mime()))
        .insert_header((header::CONTENT_DISPOSITION, "inline"));
    if let Some(stored) = files.derived_image(file, &variant).await? {
        if req.method() == Method::HEAD {
            state.images.count("cached");
            return Ok(response.body(empty_body(stored.size)));
        }
        match state.gateway.as_deref() {
            Some(store) => {
                // A recorded image whose object is gone (a restore without
                // it, say) is computed again rather than refused.
                if let Some((object, len)) = store.open_object(&stored.key).await? {
                    state.images.count("cached");
                    response.insert_header((header::ACCEPT_RANGES, "bytes"));
                    return send_object(response, req, object, len, &state.metrics).await;
                }
            }
            None => {
                state.images.count("cached");
                let signed_url = files.derived_redirect(&stored, format).await?;
                return Ok(HttpResponse::Found()
                    .insert_header((header::LOCATION, value(&signed_url.url)?))
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .finish());
            }
        }
    }
    let client = state.images.client(
        req.peer_addr().map(|a| a.ip()),
        header_str(req, "x-forwarded-for"),
    );
    state
        .images
        .admit(&client)
        .map_err(ApiError::rate_limited)?;
    let job = Job {
        transform,
        output: format,
        bounds: files.image_config().bounds,
    };
    let bytes = state
        .images
        .derive(state.files.clone(), source, variant, job)
        .await?;
    state.images.count("ok");
    if req.method() == Method::HEAD {
        return Ok(response.body(empty_body(bytes.len() as u64)));
    }
    Ok(response.body(bytes.as_ref().clone()))
}

/// The body of a `HEAD` answer: no bytes, the length of the GET's.
fn empty_body(
    len: u64,
) -> actix_web::body::SizedStream<futures_util::stream::Empty<Result<web::Bytes, std::io::Error>>> {
    actix_web::body::SizedStream::new(len, futures_util::stream::empty())
}
