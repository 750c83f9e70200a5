//! Request extraction: the authenticated caller, and JSON bodies read with the
//! 64 KiB limit and mapped to the contract's error codes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use stowage_domain::model::Principal;
use stowage_domain::{Error, ErrorCode};

use crate::error::ApiError;
use crate::state::AppState;

/// Largest accepted JSON body (docs/api.md §6).
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// Largest body of `multipart/complete`: a `parts` list of 10,000 entries with
/// real ETags needs about 700 KB, which the general 64 KiB limit could never
/// carry, so this one endpoint gets room for the largest valid list.
pub const MAX_COMPLETE_BODY: usize = 1024 * 1024;

/// The caller, resolved from `X-API-Key` and `Authorization` (docs/api.md §1).
#[derive(Debug)]
pub struct Caller(pub Principal);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .map(|d| (Arc::clone(&d.auth), Arc::clone(&d.limiter)));
        let header_value = |name| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().map(str::to_owned))
        };
        let key = header_value("x-api-key");
        let authorization = header_value(header::AUTHORIZATION.as_str());
        Box::pin(async move {
            let (auth, limiter) = state.ok_or_else(|| Error::internal("authenticator missing"))?;
            // A header that is not visible ASCII is as good as absent-but-malformed.
            let key = key
                .transpose()
                .map_err(|_| Error::new(ErrorCode::InvalidApiKey))?;
            let authorization = authorization
                .transpose()
                .map_err(|_| Error::new(ErrorCode::AuthenticationRequired))?;
            let principal = auth
                .authenticate(key.as_deref(), authorization.as_deref())
                .await?;
            limiter
                .check(&principal, std::time::Instant::now())
                .map_err(ApiError::rate_limited)?;
            Ok(Caller(principal))
        })
    }
}

/// Reads a JSON body: Content-Type (if given) must be JSON, at most 64 KiB,
/// well-formed, and of the shape `T`.
///
/// # Errors
/// `common/payload-too-large` or `common/invalid-request` naming the problem.
pub async fn json_value(req: &HttpRequest, payload: web::Payload) -> Result<Value, ApiError> {
    json_value_limited(req, payload, MAX_JSON_BODY).await
}

/// [`json_value`] with another size limit.
///
/// # Errors
/// As [`json_value`].
pub async fn json_value_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or_default().trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(Error::invalid_request("Content-Type must be application/json").into());
        }
    }
    if req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(ErrorCode::PayloadTooLarge.into());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid_request(format!("could not read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ErrorCode::PayloadTooLarge.into());
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(Error::invalid_request("request body must be a JSON object").into());
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| Error::invalid_request(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(Error::invalid_request("request body must be a JSON object").into());
    }
    stowage_domain::text::check_body(&value)?;
    Ok(value)
}

/// [`json_value`], then deserialised into `T`.
///
/// # Errors
/// As [`json_value`]; a wrong type or missing field is `common/invalid-request`.
pub async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let value = json_value(req, payload).await?;
    from_value(value)
}

/// Deserialises a JSON value, mapping errors to `common/invalid-request`.
///
/// # Errors
/// `common/invalid-request` with serde's message (which names the field).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    crate::bodies::shape(value).map_err(Into::into)
}
