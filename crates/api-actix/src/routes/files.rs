//! Handlers of `/v1/files`: authenticate, parse, call one use case, render.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use stowage_domain::list::ListParams;
use stowage_domain::service::{FilePatch, RegisterFile};
use stowage_domain::upload::IssueUpload;
use stowage_domain::Error;

use crate::error::ApiResult;
use crate::extract::{
    from_value, json_body, json_value, json_value_limited, Caller, MAX_COMPLETE_BODY,
};
use crate::state::AppState;

type State = web::Data<AppState>;

/// Body naming a multipart upload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRef {
    key: String,
    upload_id: String,
}

/// `POST /v1/files/presigned-url`
pub async fn presigned_url(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: IssueUpload = json_body(&req, body).await?;
    Ok(HttpResponse::Ok().json(state.files.issue_upload_url(&p, body).await?))
}

/// `POST /v1/files/multipart/init`
pub async fn multipart_init(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: IssueUpload = json_body(&req, body).await?;
    Ok(HttpResponse::Ok().json(state.files.init_multipart(&p, body).await?))
}

/// `POST /v1/files/multipart/presigned-url`
pub async fn multipart_part_url(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let value = json_value(&req, body).await?;
    let part_number = value.get("partNumber").cloned().unwrap_or(Value::Null);
    let upload: UploadRef = from_value(value)?;
    Ok(HttpResponse::Ok().json(
        state
            .files
            .presign_part(&p, &upload.key, &upload.upload_id, &part_number)
            .await?,
    ))
}

/// `POST /v1/files/multipart/complete`
pub async fn multipart_complete(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let value = json_value_limited(&req, body, MAX_COMPLETE_BODY).await?;
    let parts = value.get("parts").cloned();
    let upload: UploadRef = from_value(value)?;
    Ok(HttpResponse::Ok().json(
        state
            .files
            .complete_multipart(&p, &upload.key, &upload.upload_id, parts.as_ref())
            .await?,
    ))
}

/// `POST /v1/files/multipart/abort`
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
    Ok(HttpResponse::Ok().json(serde_json::json!({ "success": true, "key": key })))
}

/// `POST /v1/files`
pub async fn register(
    state: State,
    Caller(p): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let body: RegisterFile = json_body(&req, body).await?;
    Ok(HttpResponse::Created().json(state.files.register(&p, body).await?))
}

/// `GET /v1/files`
pub async fn list(state: State, Caller(p): Caller, req: HttpRequest) -> ApiResult<HttpResponse> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|_| Error::invalid_request("malformed query string"))?;
    let params = ListParams::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(HttpResponse::Ok().json(state.files.list(&p, params).await?))
}

/// `GET /v1/files/{id}`
pub async fn get(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.files.get(&p, &id).await?))
}

/// `PATCH /v1/files/{id}`
pub async fn patch(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> ApiResult<HttpResponse> {
    let patch = FilePatch::from_json(json_value(&req, body).await?)?;
    Ok(HttpResponse::Ok().json(state.files.patch(&p, &id, patch).await?))
}

/// `DELETE /v1/files/{id}`
pub async fn delete(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    state.files.delete(&p, &id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({})))
}

/// `POST /v1/files/{id}/download-url`
pub async fn download_url(
    state: State,
    Caller(p): Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.files.download_url(&p, &id).await?))
}
