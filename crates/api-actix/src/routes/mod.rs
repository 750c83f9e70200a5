//! HTTP routes: the files API, the object gateway and the operational endpoints,
//! registered from one table that the OpenAPI test also reads, so no route can
//! exist without being documented.

pub mod files;
pub mod gateway;
pub mod img;
pub mod ops;
pub mod public;

use actix_web::web;

use crate::error::ApiError;

/// One route: method, actix path, OpenAPI path, and how to build it.
pub struct RouteSpec {
    /// HTTP method (lower case, as in OpenAPI).
    pub method: &'static str,
    /// Path as registered with actix.
    pub path: &'static str,
    /// Path as written in the OpenAPI document.
    pub doc_path: &'static str,
    /// The actix route.
    pub route: fn() -> actix_web::Route,
}

/// Every route of the server.
pub fn table() -> Vec<RouteSpec> {
    macro_rules! r {
        ($method:ident, $path:literal, $doc:literal, $handler:path) => {
            RouteSpec {
                method: stringify!($method),
                path: $path,
                doc_path: $doc,
                route: || web::$method().to($handler),
            }
        };
        ($method:ident, $path:literal, $handler:path) => {
            r!($method, $path, $path, $handler)
        };
    }
    vec![
        r!(post, "/v1/files/presigned-url", files::presigned_url),
        r!(post, "/v1/files/multipart/init", files::multipart_init),
        r!(
            post,
            "/v1/files/multipart/presigned-url",
            files::multipart_part_url
        ),
        r!(
            post,
            "/v1/files/multipart/complete",
            files::multipart_complete
        ),
        r!(post, "/v1/files/multipart/abort", files::multipart_abort),
        r!(post, "/v1/files", files::register),
        r!(get, "/v1/files", files::list),
        r!(get, "/v1/files/{id}", files::get),
        r!(patch, "/v1/files/{id}", files::patch),
        r!(delete, "/v1/files/{id}", files::delete),
        r!(post, "/v1/files/{id}/download-url", files::download_url),
        r!(get, "/v1/files/{id}/download-url", files::download_url_get),
        r!(get, "/v1/usage", files::usage),
        r!(get, "/v1/public/{key:.*}", "/v1/public/{key}", public::get),
        r!(
            head,
            "/v1/public/{key:.*}",
            "/v1/public/{key}",
            public::head
        ),
        r!(
            get,
            "/v1/img/{path:.*}",
            "/v1/img/{options}/{key}",
            img::get
        ),
        r!(
            head,
            "/v1/img/{path:.*}",
            "/v1/img/{options}/{key}",
            img::head
        ),
        r!(
            put,
            "/v1/storage/{key:.*}",
            "/v1/storage/{key}",
            gateway::put
        ),
        r!(
            get,
            "/v1/storage/{key:.*}",
            "/v1/storage/{key}",
            gateway::get
        ),
        r!(
            head,
            "/v1/storage/{key:.*}",
            "/v1/storage/{key}",
            gateway::head
        ),
        r!(get, "/health", ops::health),
        r!(get, "/ready", ops::ready),
        r!(get, "/metrics", ops::metrics),
        r!(get, "/openapi.json", ops::openapi),
    ]
}

/// Registers every route of [`table`]: one resource per path, so a known
/// path with another method answers `405 common/method-not-allowed` with
/// `Allow` (docs/api.md §12) instead of falling through to a later path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let specs = table();
    let mut paths: Vec<&'static str> = Vec::new();
    for spec in &specs {
        if !paths.contains(&spec.path) {
            paths.push(spec.path);
        }
    }
    for path in paths {
        let mut methods: Vec<String> = specs
            .iter()
            .filter(|s| s.path == path)
            .map(|s| s.method.to_ascii_uppercase())
            .collect();
        methods.push("OPTIONS".into());
        let allow = methods.join(", ");
        let mut resource = web::resource(path);
        for spec in specs.iter().filter(|s| s.path == path) {
            resource = resource.route((spec.route)());
        }
        cfg.service(resource.default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<actix_web::HttpResponse, _>(ApiError::method_not_allowed(allow)) }
        })));
    }
}

/// Any path no route knows: `404 common/not-found` in the envelope.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(stowage_domain::Error::new(stowage_domain::ErrorCode::NotFound).into())
}
