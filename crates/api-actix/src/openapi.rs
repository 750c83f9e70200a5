//! The OpenAPI 3.1 document of the whole API, generated from the handlers'
//! `#[utoipa::path]` attributes and the domain's schemas.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use stowage_domain::model::{Bucket, Category, OwnerType, OwnerTypeFilter, Visibility};

use crate::routes::{files, gateway, img, ops, public};

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Stowage", description = "File storage with presigned URLs (bkend.ai Storage API compatible)."),
    paths(
        files::presigned_url, files::multipart_init, files::multipart_part_url, files::multipart_complete,
        files::multipart_abort, files::register, files::list, files::get, files::patch, files::delete,
        files::download_url, files::download_url_get, files::usage, public::get, public::head, img::get, img::head, gateway::put, gateway::get, gateway::head, ops::health, ops::ready, ops::metrics,
        ops::openapi,
    ),
    components(schemas(Visibility, Bucket, OwnerType, OwnerTypeFilter, Category, stowage_domain::ErrorCode, stowage_domain::list::SortBy, stowage_domain::list::SortDirection)),
    modifiers(&SecuritySchemes),
    servers((url = "/", description = "This server (the base URL the API is reached at)")),
    tags(
        (name = "files", description = "Upload URLs, registration, reading, listing, changing and deleting files (docs/api.md §4)"),
        (name = "multipart", description = "Multipart uploads: init, part URLs, complete, abort"),
        (name = "gateway", description = "The disk store's object gateway: presigned PUT/GET/HEAD, authorized by the URL's signature alone (docs/api.md §7)"),
        (name = "public", description = "Public delivery: the bytes of public files without credentials, at a permanent URL (docs/api.md §8), and image transformations (§9)"),
        (name = "ops", description = "Health, readiness, metrics and this document; no credentials")
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = serde_json::to_value(document()).expect("json");
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "OpenAPI 3.1"
        );
        for spec in crate::routes::table() {
            let op = &doc["paths"][spec.doc_path][spec.method];
            assert!(
                op.is_object(),
                "{} {} is missing from /openapi.json",
                spec.method,
                spec.doc_path
            );
        }
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
                assert!(
                    op["security"].is_array(),
                    "{method} {path} states its security"
                );
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{method} {path} documents a 4XX answer"
                );
            }
        }
        let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .map(Vec::len);
        assert_eq!(
            codes,
            Some(stowage_domain::ErrorCode::ALL.len()),
            "every error code is in the document"
        );
        for schema in [
            "FileView",
            "UploadTicket",
            "FileList",
            "ErrorBody",
            "RegisterFile",
            "FilePatch",
            "Visibility",
        ] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "schema {schema}"
            );
        }
    }
}
