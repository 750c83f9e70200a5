//! HTTP routes: the files API, the object gateway and the operational endpoints.

pub mod files;
pub mod gateway;
pub mod ops;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v1/files")
            .route("/presigned-url", web::post().to(files::presigned_url))
            .route("/multipart/init", web::post().to(files::multipart_init))
            .route(
                "/multipart/presigned-url",
                web::post().to(files::multipart_part_url),
            )
            .route(
                "/multipart/complete",
                web::post().to(files::multipart_complete),
            )
            .route("/multipart/abort", web::post().to(files::multipart_abort))
            .route("", web::post().to(files::register))
            .route("", web::get().to(files::list))
            .route("/{id}", web::get().to(files::get))
            .route("/{id}", web::patch().to(files::patch))
            .route("/{id}", web::delete().to(files::delete))
            .route("/{id}/download-url", web::post().to(files::download_url)),
    )
    .service(
        web::resource("/v1/storage/{key:.*}")
            .route(web::put().to(gateway::put))
            .route(web::get().to(gateway::get))
            .route(web::head().to(gateway::get)),
    )
    .route("/health", web::get().to(ops::health))
    .route("/ready", web::get().to(ops::ready));
}
