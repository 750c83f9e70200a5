//! Stowage's use cases in an axum service: the SQLite repository and the disk
//! store, wired to `FileService` without actix — the domain and the adapters
//! know no web framework. A minimal service: issue an upload URL, receive the
//! bytes through the disk store's signed URLs, register, read, download.
//!
//! Authentication is out of scope here: the caller is the `X-User` header's
//! user of one demo tenant (a real service resolves credentials with
//! `stowage_domain::auth::Authenticator`).

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use stowage_adapters_fs::{FsConfig, FsStore, GatewayRequest, Grant};
use stowage_adapters_sqlite::{SqliteConfig, SqliteRepository};
use stowage_domain::model::{
    Environment, Owner, OwnerType, Principal, ProjectId, Tenant, Timestamp,
};
use stowage_domain::ports::{Clock, SystemClock};
use stowage_domain::service::{FileService, RegisterFile, ServiceConfig};
use stowage_domain::upload::IssueUpload;
use stowage_domain::Error;

/// What the handlers share.
pub struct AppState {
    files: FileService,
    store: Arc<FsStore>,
    clock: Arc<dyn Clock>,
    tenant: Tenant,
}

/// Opens SQLite (migrated) and the disk store under `data`, and builds the
/// router; signed URLs point at `public_url`.
///
/// # Errors
/// What could not be opened.
pub async fn app(data: &Path, public_url: &str) -> Result<Router, Error> {
    let db = data.join("stowage.db").display().to_string();
    let to_migrate = db.clone();
    tokio::task::spawn_blocking(move || stowage_adapters_sqlite::migrate(&to_migrate))
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
    let repo = Arc::new(SqliteRepository::connect(&SqliteConfig::new(db)).await?);
    let store = Arc::new(
        FsStore::open(FsConfig {
            root: data.join("objects"),
            public_url: public_url.to_owned(),
            // A real service keeps a generated secret (see the stowage binary).
            secret: b"an example secret of at least 32 bytes!".to_vec(),
            max_object_size: 1 << 30,
        })
        .await?,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let files = FileService::new(repo, store.clone(), clock.clone(), ServiceConfig::default());
    let tenant = Tenant {
        project: ProjectId::new("demo")?,
        env: Environment::Dev,
    };
    let state = Arc::new(AppState {
        files,
        store,
        clock,
        tenant,
    });
    Ok(Router::new()
        .route("/files/presigned-url", post(issue))
        .route("/files", post(register))
        .route("/files/{id}", get(read))
        .route("/files/{id}/download-url", post(download_url))
        .route("/v1/storage/{*key}", put(put_object).get(get_object))
        .with_state(state))
}

/// A domain error as the contract's envelope with its status.
struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::json!({"error": {"code": self.0.code(), "message": self.0.message()}});
        (status, Json(body)).into_response()
    }
}

type Answer<T> = Result<T, ApiError>;

fn caller(state: &AppState, headers: &HeaderMap) -> Answer<Principal> {
    let id = headers
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::new(stowage_domain::ErrorCode::AuthenticationRequired))?;
    Ok(Principal {
        tenant: state.tenant.clone(),
        identity: Owner {
            kind: OwnerType::User,
            id: id.to_owned(),
        },
        admin: false,
    })
}

/// This service's own request bodies: the domain takes typed inputs, and
/// each service decides its wire format (here a subset of Stowage's).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssueBody {
    filename: String,
    content_type: String,
    file_size: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    s3_key: String,
    original_name: String,
    mime_type: String,
    size: u64,
}

async fn issue(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<IssueBody>,
) -> Answer<impl IntoResponse> {
    let p = caller(&state, &headers)?;
    let mut req = IssueUpload::new(body.filename, body.content_type);
    if let Some(size) = body.file_size {
        req = req.with_size(size);
    }
    Ok(Json(state.files.issue_upload_url(&p, req).await?))
}

async fn register(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<RegisterBody>,
) -> Answer<impl IntoResponse> {
    let p = caller(&state, &headers)?;
    let req = RegisterFile::new(body.s3_key, body.original_name, body.mime_type, body.size);
    Ok((
        StatusCode::CREATED,
        Json(state.files.register(&p, req).await?),
    ))
}

async fn read(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<impl IntoResponse> {
    let p = caller(&state, &headers)?;
    Ok(Json(state.files.get(&p, id.parse()?).await?))
}

async fn download_url(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Answer<impl IntoResponse> {
    let p = caller(&state, &headers)?;
    Ok(Json(state.files.download_url(&p, id.parse()?).await?))
}

/// The disk store's signed-URL policy applied to this request.
fn authorize(
    state: &AppState,
    method: &Method,
    key: &str,
    query: Option<String>,
    headers: &HeaderMap,
) -> Answer<Grant> {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| Error::new(stowage_domain::ErrorCode::AccessDenied))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = GatewayRequest {
        method: method.as_str(),
        key,
        query: &query,
        content_type: header("content-type"),
        content_length: header("content-length"),
        checksum_sha256: header(stowage_domain::limits::CHECKSUM_SHA256_HEADER),
    };
    let now: Timestamp = state.clock.now();
    Ok(state.store.authorize(&request, now)?)
}

async fn put_object(
    State(state): State<Arc<AppState>>,
    method: Method,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer<impl IntoResponse> {
    let Grant::PutObject {
        content_length,
        checksum_sha256,
        ..
    } = authorize(&state, &method, &key, query, &headers)?
    else {
        return Err(Error::new(stowage_domain::ErrorCode::AccessDenied).into());
    };
    let allowed = state.files.authorize_upload_bytes(&key, None).await?;
    let written = state
        .store
        .put_object(
            &key,
            content_length,
            checksum_sha256.as_deref(),
            allowed.max_bytes,
            body.into_data_stream(),
        )
        .await?;
    Ok((StatusCode::OK, [(header::ETAG, written.etag)]))
}

async fn get_object(
    State(state): State<Arc<AppState>>,
    method: Method,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer<Response> {
    let Grant::Get {
        content_type,
        content_disposition,
    } = authorize(&state, &method, &key, query, &headers)?
    else {
        return Err(Error::new(stowage_domain::ErrorCode::AccessDenied).into());
    };
    let (file, len) = state
        .store
        .open_object(&key)
        .await?
        .ok_or_else(|| Error::new(stowage_domain::ErrorCode::FileNotFound))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, content_disposition),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}
