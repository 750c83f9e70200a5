//! Handlers of `/v1/files`: authenticate, parse, call one use case, render.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use stowage_domain::list::ListParams;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use stowage_domain::model::{Bucket, FileView, OwnerTypeFilter, Visibility};
use stowage_domain::service::FilePatch;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use stowage_domain::service::{
    CompletedUpload, DownloadTicket, FileList, MultipartTicket, PartTicket, UploadTicket,
};
use stowage_domain::validation::FieldRules;
use stowage_domain::Error;
use utoipa::ToSchema;

use crate::bodies::{
    file_id, CompleteBody, DownloadBody, FilePatchBody, IssueUploadBody, PartUrlBody,
    RegisterFileBody, UploadRef,
};
use crate::error::ApiResult;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use crate::error::ErrorBody;
use crate::extract::{json_body, json_value, json_value_limited, Caller, MAX_COMPLETE_BODY};
use crate::metrics::Metrics;
use crate::state::AppState;

type State = web::Data<AppState>;

/// Body of `multipart/presigned-url` (documentation of the wire shape).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct PartUrlRequest {
    /// The upload's key.
    key: String,
    /// The store's upload id.
    upload_id: String,
    /// 1..=10000.
    #[schema(minimum = 1, maximum = 10000)]
    part_number: u32,
    /// The part's own SHA-256, base64 (docs/api.md §11): the URL then binds
    /// `x-amz-checksum-sha256`, listed in the answer's `headers`.
    #[schema(min_length = 44, max_length = 44, pattern = "^[A-Za-z0-9+/]{43}=$")]
    checksum_sha256: Option<String>,
}

/// One uploaded part.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct PartEntry {
    /// 1..=10000.
    #[schema(minimum = 1, maximum = 10000)]
    part_number: u32,
    /// The part's ETag, quoted or not.
    etag: String,
}

/// Body of `multipart/complete` (documentation of the wire shape).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct CompleteRequest {
    /// The upload's key.
    key: String,
    /// The store's upload id.
    upload_id: String,
    /// Parts in ascending order.
    parts: Vec<PartEntry>,
}

/// Answer of `multipart/abort`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AbortResponse {
    /// Always true.
    success: bool,
    /// The upload's key.
    key: String,
}

/// `POST /v1/files/presigned-url`
#[utoipa::path(post, path = "/v1/files/presigned-url", operation_id = "issueUploadUrl", tag = "files", request_body = IssueUploadBody, responses((status = 200, description = "Upload URL issued", body = UploadTicket), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-name, file/original-name-too-long, file/mime-type-too-long, file/invalid-format, file/size-negative, file/file-too-small, file/file-too-large (400); common/authentication-required, common/invalid-api-key (401); file/quota-exceeded (403); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn presigned_url(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: IssueUploadBody = json_body(&req, body).await?;
    let ticket = state.files.issue_upload_url(&p, body.try_into()?).await?;
    Metrics::add(&state.metrics.uploads_issued, 1);
    Ok(HttpResponse::Ok().json(ticket))
}

/// `POST /v1/files/multipart/init`
#[utoipa::path(post, path = "/v1/files/multipart/init", operation_id = "initMultipartUpload", tag = "multipart", request_body = IssueUploadBody, responses((status = 200, description = "Multipart upload started", body = MultipartTicket), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-name, file/original-name-too-long, file/mime-type-too-long, file/invalid-format, file/size-negative, file/file-too-small, file/file-too-large (400); common/authentication-required, common/invalid-api-key (401); file/quota-exceeded (403); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn multipart_init(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: IssueUploadBody = json_body(&req, body).await?;
    let ticket = state.files.init_multipart(&p, body.try_into()?).await?;
    Metrics::add(&state.metrics.uploads_issued, 1);
    Ok(HttpResponse::Ok().json(ticket))
}

/// `POST /v1/files/multipart/presigned-url`
#[utoipa::path(post, path = "/v1/files/multipart/presigned-url", operation_id = "issuePartUrl", tag = "multipart", request_body = PartUrlRequest, responses((status = 200, description = "Part URL issued", body = PartTicket), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-part-number-range (400); common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/upload-not-found (404); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn multipart_part_url(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = PartUrlBody::from_json(json_value(&req, body).await?)?;
    Ok(HttpResponse::Ok().json(
        state
            .files
            .presign_part(
                &p,
                &body.upload.key,
                &body.upload.upload_id,
                body.part_number,
                body.checksum_sha256.as_deref(),
            )
            .await?,
    ))
}

/// `POST /v1/files/multipart/complete`
#[utoipa::path(post, path = "/v1/files/multipart/complete", operation_id = "completeMultipartUpload", tag = "multipart", request_body = CompleteRequest, responses((status = 200, description = "Object assembled", body = CompletedUpload), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-parts-array, file/size-mismatch, file/file-too-large (400); common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/upload-not-found (404); common/payload-too-large (413); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn multipart_complete(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body = CompleteBody::from_json(json_value_limited(&req, body, MAX_COMPLETE_BODY).await?)?;
    Ok(HttpResponse::Ok().json(
        state
            .files
            .complete_multipart(&p, &body.upload.key, &body.upload.upload_id, body.parts)
            .await?,
    ))
}

/// `POST /v1/files/multipart/abort`
#[utoipa::path(post, path = "/v1/files/multipart/abort", operation_id = "abortMultipartUpload", tag = "multipart", request_body = UploadRef, responses((status = 200, description = "Upload aborted", body = AbortResponse), (status = "4XX", description = "Error envelope; codes: common/invalid-request (400); common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/upload-not-found (404); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn multipart_abort(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let upload: UploadRef = json_body(&req, body).await?;
    let key = state
        .files
        .abort_multipart(&p, &upload.key, &upload.upload_id)
        .await?;
    Ok(HttpResponse::Ok().json(AbortResponse { success: true, key }))
}

/// `POST /v1/files`
#[utoipa::path(post, path = "/v1/files", operation_id = "registerFile", tag = "files", request_body = RegisterFileBody, responses((status = 201, description = "File registered", body = FileView), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-name, file/original-name-too-long, file/mime-type-too-long, file/invalid-format, file/size-negative, file/file-too-small, file/file-too-large, file/invalid-path, file/size-mismatch (400); common/authentication-required, common/invalid-api-key (401); file/access-denied, file/quota-exceeded (403); file/upload-not-found (404); file/s3-key-already-exists (409); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn register(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: RegisterFileBody = json_body(&req, body).await?;
    let file = state.files.register(&p, body.try_into()?).await?;
    Metrics::add(&state.metrics.files_registered, 1);
    Ok(HttpResponse::Created().json(file))
}

/// `GET /v1/files`
#[utoipa::path(get, path = "/v1/files", operation_id = "listFiles", tag = "files", params(
        ("page" = Option<u32>, Query, description = "Page number, from 1", minimum = 1, maximum = 33554431),
        ("limit" = Option<u32>, Query, description = "Page size", minimum = 1, maximum = 100),
        ("sortBy" = Option<stowage_domain::list::SortBy>, Query, description = "Sort column (default createdAt)"),
        ("sortDirection" = Option<stowage_domain::list::SortDirection>, Query, description = "Direction (default desc)"),
        ("visibility" = Option<Visibility>, Query, description = "Visibility filter"),
        ("ownerType" = Option<OwnerTypeFilter>, Query, description = "Owner type filter"),
        ("ownerId" = Option<String>, Query, description = "Owner id filter"),
        ("bucket" = Option<Bucket>, Query, description = "Bucket filter"),
        ("mimeType" = Option<String>, Query, description = "Exact type, or `type/*`"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of originalName"),
        ("cursor" = Option<String>, Query, description = "Keyset cursor from pagination.nextCursor"),
    ), responses((status = 200, description = "Visible files", body = FileList), (status = "4XX", description = "Error envelope; codes: common/invalid-request (400); common/authentication-required, common/invalid-api-key (401); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn list(state: State, Caller(p): Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| Error::invalid_request("malformed query string"))?;
    let params = ListParams::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(HttpResponse::Ok().json(state.files.list(&p, params).await?))
}

/// `GET /v1/files/{id}`
#[utoipa::path(get, path = "/v1/files/{id}", operation_id = "getFile", tag = "files", params(("id" = String, Path, description = "File id")), responses((status = 200, description = "The file", body = FileView), (status = "4XX", description = "Error envelope; codes: common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/not-found (404); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn get(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.files.get(&p, file_id(&id)?).await?))
}

/// `GET /v1/usage`
#[utoipa::path(get, path = "/v1/usage", operation_id = "getUsage", tag = "files", responses((status = 200, description = "What the caller (and, for admins, the project) holds, with the quotas (`null`: none; docs/api.md §11)", body = stowage_domain::service::UsageReport), (status = "4XX", description = "Error envelope; codes: common/authentication-required, common/invalid-api-key (401); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn usage(state: State, Caller(p): Caller) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.files.usage(&p).await?))
}

/// `PATCH /v1/files/{id}`
#[utoipa::path(patch, path = "/v1/files/{id}", operation_id = "updateFile", tag = "files", params(("id" = String, Path, description = "File id")), request_body = FilePatchBody, responses((status = 200, description = "Updated file", body = FileView), (status = "4XX", description = "Error envelope; codes: common/invalid-request, file/invalid-name, file/original-name-too-long (400); common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/not-found (404); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn patch(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let patch: FilePatch = FilePatchBody::from_json(json_value(&req, body).await?)?.into();
    // Field rules before existence (docs/api.md §2): an id that names no
    // file is looked at after the body's rules.
    patch.check_fields()?;
    let id = file_id(&id)?;
    Ok(HttpResponse::Ok().json(state.files.patch(&p, id, patch).await?))
}

/// `DELETE /v1/files/{id}`
#[utoipa::path(delete, path = "/v1/files/{id}", operation_id = "deleteFile", tag = "files", params(("id" = String, Path, description = "File id")), responses((status = 200, description = "Deleted", body = Object), (status = "4XX", description = "Error envelope; codes: common/authentication-required, common/invalid-api-key (401); file/access-denied (403); file/not-found (404); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn delete(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.files.delete(&p, file_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

/// `POST /v1/files/{id}/download-url`
#[utoipa::path(post, path = "/v1/files/{id}/download-url", operation_id = "issueDownloadUrl", tag = "files", params(("id" = String, Path, description = "File id"), ("transform" = Option<String>, Query, description = "Image options (docs/api.md §9), e.g. `fit-in/300x200`: the URL is then of the transformed image")), request_body(content = Option<DownloadBody>, description = "Optional; `transform` as in the query"), responses((status = 200, description = "Download URL issued", body = DownloadTicket), (status = "4XX", description = "Error envelope; codes: common/authentication-required, common/invalid-api-key (401); common/invalid-request, image/invalid-options, image/too-large (400); file/access-denied (403); file/not-found (404); image/unsupported-format (415); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn download_url(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let id = file_id(&id)?;
    let transform = match transform_query(&req)? {
        Some(t) => Some(t),
        None => transform_body(&req, body).await?,
    };
    issue_download(&state, &p, id, transform.as_deref()).await
}

/// A download URL, of the bytes or — with `transform` — of a transformed
/// image (docs/api.md §9).
async fn issue_download(
    state: &State,
    p: &stowage_domain::model::Principal,
    id: stowage_domain::model::FileId,
    transform: Option<&str>,
) -> ApiResult<HttpResponse> {
    let ticket = match transform {
        None => state.files.download_url(p, id).await?,
        Some(options) => state.files.transform_url(p, id, options).await?,
    };
    Ok(HttpResponse::Ok().json(ticket))
}

/// `?transform=...`, percent-decoded.
fn transform_query(req: &HttpRequest) -> ApiResult<Option<String>> {
    for pair in req.query_string().split('&') {
        if let Some(v) = pair.strip_prefix("transform=") {
            let decoded = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| Error::invalid_request("transform: not UTF-8"))?;
            return Ok(Some(decoded.into_owned()));
        }
    }
    Ok(None)
}

/// `transform` of an optional JSON body (clients of the reference send none).
async fn transform_body(req: &HttpRequest, body: web::Payload) -> ApiResult<Option<String>> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let chunked = req
        .headers()
        .contains_key(actix_web::http::header::TRANSFER_ENCODING);
    if !chunked && matches!(declared, None | Some("0")) {
        return Ok(None);
    }
    let value = json_value(req, body).await?;
    match value.get("transform") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(t)) => Ok(Some(t.clone())),
        Some(_) => {
            Err(Error::invalid_request("transform: expected a string of image options").into())
        }
    }
}

/// `GET /v1/files/{id}/download-url`: the POST form, for clients that send GET.
#[utoipa::path(get, path = "/v1/files/{id}/download-url", operation_id = "getDownloadUrl", tag = "files", params(("id" = String, Path, description = "File id"), ("transform" = Option<String>, Query, description = "Image options (docs/api.md §9): the URL is then of the transformed image")), responses((status = 200, description = "Download URL issued", body = DownloadTicket), (status = "4XX", description = "Error envelope; codes: common/authentication-required, common/invalid-api-key (401); image/invalid-options, image/too-large (400); file/access-denied (403); file/not-found (404); image/unsupported-format (415); common/rate-limited (429)", body = ErrorBody), (status = "5XX", description = "common/internal (500), common/service-unavailable (503, with Retry-After)", body = ErrorBody)), security(("apiKey" = []), ("apiKey" = [], "bearer" = [])))]
pub async fn download_url_get(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let id = file_id(&id)?;
    issue_download(&state, &p, id, transform_query(&req)?.as_deref()).await
}
