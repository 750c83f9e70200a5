//! The middleware every response passes: request context (id, log line,
//! metrics), CORS, and the error envelope.

use std::sync::Arc;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpMessage};
use futures_util::FutureExt;

use crate::config::CorsOrigins;
use crate::error::REQUEST_ID;
use crate::state::AppState;

/// CORS as docs/api.md says: the configured origins, the API's methods and headers.
pub fn cors(origins: &CorsOrigins) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            "x-api-key",
            "authorization",
            "content-type",
            "range",
            "x-request-id",
            // A gateway PUT bound to a digest (docs/api.md §11).
            "x-amz-checksum-sha256",
        ])
        .expose_headers([
            "etag",
            "content-length",
            "content-range",
            "content-disposition",
            "x-request-id",
        ])
        .max_age(3600);
    match origins {
        CorsOrigins::Any => cors = cors.allow_any_origin().send_wildcard(),
        CorsOrigins::List(list) => {
            // Public delivery is for any site (docs/api.md §8), whatever the
            // API's own origins are.
            let list = list.clone();
            cors = cors.allowed_origin_fn(move |origin, head| {
                head.uri.path().starts_with("/v1/public/")
                    || origin
                        .to_str()
                        .is_ok_and(|o| list.iter().any(|allowed| allowed == o))
            });
        }
    }
    cors
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent request id is kept if it is a sane token.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
    .then(|| s.to_owned())
}

/// Gives every header value its own memory.
///
/// actix-http parses header values as slices of the connection's read buffer,
/// and keeps finished requests in per-worker pools (up to 128 requests and
/// 128 heads per worker) with their headers still in place; each pooled
/// request then keeps its connection's whole read buffer alive after the
/// connection is gone. After 800 slow uploads had ended, such buffers held
/// 16.7 MiB (heaptrack; docs/performance.md, "Slow-body attack"). With owned
/// copies (a few small allocations per request) a buffer goes with its
/// connection and a pooled request holds only its headers.
fn own_header_values(headers: &mut actix_web::http::header::HeaderMap) {
    let shared = std::mem::replace(
        headers,
        actix_web::http::header::HeaderMap::with_capacity(headers.len()),
    );
    for (name, value) in shared {
        let value = match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(mut owned) => {
                owned.set_sensitive(value.is_sensitive());
                owned
            }
            Err(_) => value,
        };
        headers.append(name, value);
    }
}

/// Request id (echoed or generated) in a task-local for error bodies and in the
/// `X-Request-Id` response header; one log line per request, without the query
/// string (signed URLs carry signatures there).
pub fn request_context<S, B>(
    mut req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    own_header_values(req.headers_mut());
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().clone();
    let path = req.path().to_owned();
    req.extensions_mut().insert(id.clone());
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Arc::clone(&s.metrics));
    let fut = srv.call(req);
    REQUEST_ID.scope(id.clone(), fut).map(move |res| {
        let mut res = res?;
        let status = res.status().as_u16();
        if let Some(m) = &metrics {
            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
            m.observe(method.as_str(), &route, status, started.elapsed());
        }
        tracing::info!(request_id = %id, %method, %path, status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(X_REQUEST_ID.clone(), v);
        }
        Ok(res)
    })
}

/// Every error answer is the JSON envelope (docs/api.md §12), whoever produced
/// it: a response of 400 or more that is not JSON (a refused CORS preflight,
/// an error of actix itself) is replaced by the envelope of its status, keeping
/// its headers (`Allow`, CORS, `Retry-After`) and adding a request id when it
/// has none; every 503 carries `Retry-After`.
pub fn envelope<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<
    Output = Result<actix_web::dev::ServiceResponse<EitherBody<B>>, actix_web::Error>,
>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody + 'static,
{
    let fut = srv.call(req);
    async move {
        let res = match fut.await {
            Ok(res) => res,
            Err(e) => {
                // An error a middleware returned (a refused CORS preflight):
                // it becomes a response outside this one, so it carries its
                // response with it.
                let response = e.error_response();
                let body = enveloped(response.status(), response.headers());
                return Err(
                    actix_web::error::InternalError::from_response(e.to_string(), body).into(),
                );
            }
        };
        let json = res
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let status = res.status();
        if status.as_u16() < 400 || json {
            let mut res = res;
            if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
                && !res
                    .headers()
                    .contains_key(actix_web::http::header::RETRY_AFTER)
            {
                res.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            return Ok(res.map_into_left_body());
        }
        let (req, response) = res.into_parts();
        let body = enveloped(response.status(), response.headers());
        Ok(actix_web::dev::ServiceResponse::new(req, body).map_into_right_body())
    }
}

/// The envelope for a bare error response of `status`.
fn enveloped(
    status: actix_web::http::StatusCode,
    headers: &actix_web::http::header::HeaderMap,
) -> actix_web::HttpResponse {
    use actix_web::http::header;
    use stowage_domain::ErrorCode;
    let code = match status.as_u16() {
        401 => ErrorCode::AuthenticationRequired,
        403 => ErrorCode::AccessDenied,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::ServiceUnavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    };
    let id = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let mut response = actix_web::HttpResponse::build(status);
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.append_header((name.clone(), value.clone()));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.insert_header((X_REQUEST_ID.clone(), v));
    }
    if code == ErrorCode::ServiceUnavailable && !headers.contains_key(header::RETRY_AFTER) {
        response.insert_header((
            header::RETRY_AFTER,
            crate::error::UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
        ));
    }
    let error = stowage_domain::Error::new(code);
    response.json(crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: code.as_str(),
            message: error.message().to_owned(),
            request_id: id,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderMap;

    #[test]
    fn owned_header_values_keep_every_value_in_order() {
        let mut headers = HeaderMap::new();
        let shared = bytes::Bytes::from_static(b"a, b;secret");
        headers.append(
            HeaderName::from_static("x-list"),
            HeaderValue::from_maybe_shared(shared.slice(0..1)).expect("value"),
        );
        headers.append(
            HeaderName::from_static("x-list"),
            HeaderValue::from_maybe_shared(shared.slice(3..4)).expect("value"),
        );
        let mut secret = HeaderValue::from_maybe_shared(shared.slice(5..)).expect("value");
        secret.set_sensitive(true);
        headers.insert(actix_web::http::header::AUTHORIZATION, secret);

        own_header_values(&mut headers);

        let list: Vec<_> = headers.get_all("x-list").map(|v| v.as_bytes()).collect();
        assert_eq!(list, [b"a", b"b"]);
        let auth = headers
            .get(actix_web::http::header::AUTHORIZATION)
            .expect("kept");
        assert_eq!(auth.as_bytes(), b"secret");
        assert!(auth.is_sensitive());
        assert_eq!(headers.len(), 3);
    }
}
