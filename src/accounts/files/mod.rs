//! Files (CONTRACT §8): multipart upload, list, metadata, update, delete, the `/uploads/<name>`
//! download path, and the messaging service's `POST /upload`.
//!
//! - The type is sniffed from the bytes ([`sniff`]); SVG, ZIP, HTML, XML and scripts are refused
//!   with 415.
//! - Bytes live under random names in a [`storage::BlobStore`] (`<data_dir>/uploads`); responses
//!   carry `/uploads/<name>` URLs, never server paths.
//! - Metadata routes answer only the owner (others get the same 404 as a missing id).
//! - `POST /upload` (the messaging service's chat attachments) stores files as public: the message
//!   carries the URL to every participant, and the random stored name is what grants access.
//! - `GET /uploads/<name>` serves a file to anyone when `isPublic`, else to its owner and the members
//!   of its project. Because `<img src>` cannot send headers, the caller may be identified by
//!   `Authorization: Bearer` or by `?token=<access token>`; anyone else gets 404. Only JPEG, PNG,
//!   GIF and WebP are served inline; everything else as `attachment`, always with `nosniff`.

mod project;
pub mod sniff;
pub mod storage;
pub mod store;
pub mod upload;

use std::time::SystemTime;

use actix_web::http::header::{self, EntityTag, HttpDate};
use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use self::sniff::is_inline_image;
use self::storage::{is_stored_name, BlobStore, LocalDisk};
use self::store::FileRow;
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::db::{now, Json, Timestamp};
use crate::error::{db_fail, ApiError, ErrorCode, TxError};
use crate::membership::{self, Scope};
use crate::web::paging::{PageQuery, MAX_LIMIT};
use crate::web::request::bearer_token;

pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 50;

/// Process-wide file storage (created once per server).
#[derive(Debug)]
pub struct FileServices {
    pub store: LocalDisk,
    pub max_file_bytes: u64,
    pub max_files: usize,
    /// Whole-request bound of one upload (`uploads.deadline_secs`).
    pub deadline: std::time::Duration,
}

impl FileServices {
    pub fn new(settings: &crate::config::Settings) -> Self {
        FileServices {
            store: LocalDisk::new(settings.data_dir.join("uploads")),
            max_file_bytes: settings.uploads.max_file_bytes,
            max_files: settings.uploads.max_files.max(1),
            deadline: settings.uploads.deadline(),
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/files/upload", web::post().to(upload_files))
        .route("/files", web::get().to(list))
        .route("/files/{id}", web::get().to(get))
        .route("/files/{id}", web::put().to(update))
        .route("/files/{id}", web::delete().to(delete));
    project::routes(cfg);
}

/// `POST /upload` of the legacy messaging service (single field `file`).
pub fn messaging_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/upload", web::post().to(upload_single));
}

/// `GET /uploads/<name>` on every HTTP listener, outside the `/api` prefix.
pub fn root_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/uploads/{name}", web::get().to(download));
}

/// CONTRACT §8 FileMeta, without the server `path`, plus the fields the frontend filters on.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    pub id: String,
    pub original_name: String,
    pub name: String,
    pub filename: String,
    pub url: String,
    pub size: i64,
    pub mimetype: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub is_image: bool,
    pub is_video: bool,
    pub uploaded_by: String,
    pub uploaded_at: Timestamp,
    pub tags: Vec<String>,
    pub description: String,
    pub is_public: bool,
    pub project_id: Option<String>,
    pub thumbnail_url: Option<String>,
    pub updated_at: Timestamp,
}

impl From<FileRow> for FileMeta {
    fn from(row: FileRow) -> Self {
        FileMeta {
            id: row.id,
            url: format!("/uploads/{}", row.stored_name),
            name: row.original_name.clone(),
            original_name: row.original_name,
            filename: row.stored_name,
            size: row.size,
            is_image: row.mime_type.starts_with("image/"),
            is_video: row.mime_type.starts_with("video/"),
            kind: row.mime_type.clone(),
            mimetype: row.mime_type,
            uploaded_by: row.owner_id,
            uploaded_at: row.created_at,
            tags: row.tags.0,
            description: row.description.unwrap_or_default(),
            is_public: row.is_public,
            project_id: row.project_id,
            thumbnail_url: None,
            updated_at: row.updated_at,
        }
    }
}

fn no_files() -> ApiError {
    ApiError::bad_request(ErrorCode::MissingField, "No files uploaded")
}

fn no_file() -> ApiError {
    ApiError::bad_request(ErrorCode::MissingField, "No file uploaded")
}

fn file_not_found() -> ApiError {
    ApiError::message(StatusCode::NOT_FOUND, ErrorCode::NotFound, "File not found")
}

/// What one upload route accepts and how it words its errors.
struct UploadSpec {
    field: &'static str,
    max_files: usize,
    fail: &'static str,
    no_files: fn() -> ApiError,
    /// Chat attachments are shared with a conversation by their URL, which the downloading
    /// participants cannot prove membership for; their random 128-bit name is the capability.
    public: bool,
    /// The project the route names (it wins over a `projectId` form field).
    project: Option<String>,
    /// Whether a `metadata` text field (JSON `{description?, tags?}`) is read.
    metadata: bool,
}

/// Checked `description` and `tags`: no NUL, bounded, tags trimmed and blank ones dropped.
fn checked_meta(
    description: Option<String>,
    tags: Option<Vec<String>>,
) -> Result<(Option<String>, Option<Vec<String>>), ApiError> {
    let nul = description.as_deref().is_some_and(|d| d.contains('\0'))
        || tags.iter().flatten().any(|t| t.contains('\0'));
    if nul {
        return Err(crate::input::nul_text());
    }
    if let Some(d) = &description {
        if d.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidInput,
                format!("Description must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
    }
    let tags = match tags {
        None => None,
        Some(tags) => {
            let tags: Vec<String> = tags
                .into_iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if tags.len() > MAX_TAGS || tags.iter().any(|t| t.chars().count() > MAX_TAG_CHARS) {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidInput,
                    format!("At most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters"),
                ));
            }
            Some(tags)
        }
    };
    Ok((description, tags))
}

#[derive(Debug, Default, Deserialize)]
struct UploadMeta {
    description: Option<String>,
    tags: Option<Vec<String>>,
}

/// The `metadata` form field: absent, or a JSON object with optional `description` and `tags`.
fn upload_meta(raw: Option<&str>) -> Result<(Option<String>, Vec<String>), ApiError> {
    let bad = || ApiError::bad_request(ErrorCode::InvalidInput, "metadata must be a JSON object");
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok((None, Vec::new()));
    };
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad())?;
    if !value.is_object() {
        return Err(bad());
    }
    let meta: UploadMeta = serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(ErrorCode::InvalidInput, format!("Invalid metadata: {e}"))
    })?;
    let (description, tags) = checked_meta(meta.description, meta.tags)?;
    let description = description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    Ok((description, tags.unwrap_or_default()))
}

/// Receives a form, checks the project, and records every stored file; refused or failed uploads
/// leave no bytes behind.
async fn receive_and_record(
    state: &AccountsState,
    user: &AuthUser,
    req: &HttpRequest,
    payload: web::Payload,
    spec: UploadSpec,
) -> Result<Vec<FileRow>, ApiError> {
    let services = &state.files;
    let fail = spec.fail;
    let form = upload::receive(
        services,
        req,
        payload,
        spec.field,
        spec.max_files,
        spec.no_files,
    )
    .await?;
    let meta = if spec.metadata {
        upload_meta(form.metadata.as_deref())
    } else {
        Ok((None, Vec::new()))
    };
    let (description, tags) = match meta {
        Ok(m) => m,
        Err(e) => {
            forget(services, &form).await;
            return Err(e);
        }
    };
    let project_id = spec.project.clone().or_else(|| form.project_id.clone());
    let at = now();
    let rows: Vec<FileRow> = form
        .files
        .iter()
        .map(|f| FileRow {
            id: crate::db::new_id(),
            owner_id: user.id.clone(),
            project_id: project_id.clone(),
            original_name: f.original_name.clone(),
            stored_name: f.stored_name.clone(),
            storage_key: f.stored_name.clone(),
            size: f.size as i64,
            mime_type: f.kind.mime.to_owned(),
            sniffed_type: Some(f.kind.mime.to_owned()),
            description: description.clone(),
            tags: Json(tags.clone()),
            is_public: spec.public,
            created_at: at,
            updated_at: at,
        })
        .collect();
    let user_id = user.id.clone();
    let to_insert = rows.clone();
    let recorded = if rows.is_empty() {
        Ok(())
    } else {
        state
            .db
            .transaction(async move |mut conn| {
                if let Some(project) = &project_id {
                    if !membership::exists(&mut conn, Scope::Project(project)).await? {
                        return Err(ApiError::message(
                            StatusCode::NOT_FOUND,
                            ErrorCode::NotFound,
                            "Project not found",
                        )
                        .into());
                    }
                    if !membership::is_member(&mut conn, Scope::Project(project), &user_id).await? {
                        return Err(ApiError::message(
                            StatusCode::FORBIDDEN,
                            ErrorCode::Forbidden,
                            "Access denied",
                        )
                        .into());
                    }
                }
                store::insert_all(&mut conn, &to_insert).await?;
                Ok::<_, TxError>(())
            })
            .await
            .map_err(|e| e.into_api(fail))
    };
    if let Err(e) = recorded {
        forget(services, &form).await;
        return Err(e);
    }
    Ok(rows)
}

/// Removes the bytes of a form that will not be recorded.
async fn forget(services: &FileServices, form: &upload::Form) {
    for f in &form.files {
        if let Err(err) = services.store.delete(&f.stored_name).await {
            tracing::warn!(error = %err, name = %f.stored_name, "cannot remove an unrecorded upload");
        }
    }
}

async fn upload_files(
    state: web::Data<AccountsState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let spec = UploadSpec {
        field: "files",
        max_files: state.files.max_files,
        fail: "Error uploading files",
        no_files,
        public: false,
        project: None,
        metadata: false,
    };
    let rows = receive_and_record(&state, &user, &req, payload, spec).await?;
    if rows.is_empty() {
        return Err(no_files());
    }
    tracing::info!(user = %user.id, count = rows.len(), "files uploaded");
    let files: Vec<FileMeta> = rows.into_iter().map(FileMeta::from).collect();
    Ok(HttpResponse::Ok().json(json!({"message": "Files uploaded successfully", "files": files})))
}

async fn upload_single(
    state: web::Data<AccountsState>,
    user: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let spec = UploadSpec {
        field: "file",
        max_files: 1,
        fail: "File upload failed",
        no_files: no_file,
        public: true,
        project: None,
        metadata: false,
    };
    let rows = receive_and_record(&state, &user, &req, payload, spec).await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(no_file());
    };
    let meta = FileMeta::from(row);
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "file": {
            "id": meta.id,
            "originalName": meta.original_name,
            "filename": meta.filename,
            "mimetype": meta.mimetype,
            "size": meta.size,
            "url": meta.url,
            "uploadedBy": meta.uploaded_by,
            "uploadedAt": meta.uploaded_at,
        }
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    project_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = query.page.resolve(MAX_LIMIT);
    let project = query.project_id.as_deref().filter(|p| !p.is_empty());
    let fail = "Error retrieving files";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let rows = store::list(&mut pooled.as_conn(), &user.id, project, page)
        .await
        .map_err(db_fail(fail))?;
    let files: Vec<FileMeta> = rows.into_iter().map(FileMeta::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "files": files })))
}

async fn get(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving file";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let row = store::owned(&mut pooled.as_conn(), &path, &user.id)
        .await
        .map_err(db_fail(fail))?
        .ok_or_else(file_not_found)?;
    Ok(HttpResponse::Ok().json(FileMeta::from(row)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    description: Option<String>,
    tags: Option<Vec<String>>,
    is_public: Option<bool>,
}

async fn update(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (description, tags) = checked_meta(body.description, body.tags)?;
    let id = path.into_inner();
    let user_id = user.id.clone();
    let row = state
        .db
        .transaction(async move |mut conn| {
            let mut row = store::owned(&mut conn, &id, &user_id)
                .await?
                .ok_or_else(file_not_found)?;
            // An explicit "" clears the description (the original could not, CONTRACT §14.3).
            if let Some(d) = description {
                let d = d.trim().to_owned();
                row.description = (!d.is_empty()).then_some(d);
            }
            if let Some(tags) = tags {
                row.tags = Json(tags);
            }
            if let Some(public) = body.is_public {
                row.is_public = public;
            }
            row.updated_at = now();
            store::update_meta(&mut conn, &row).await?;
            Ok::<_, TxError>(row)
        })
        .await
        .map_err(|e| e.into_api("Error updating file"))?;
    Ok(HttpResponse::Ok().json(FileMeta::from(row)))
}

async fn delete(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let user_id = user.id.clone();
    let row = state
        .db
        .transaction(async move |mut conn| {
            let row = store::owned(&mut conn, &id, &user_id)
                .await?
                .ok_or_else(file_not_found)?;
            store::delete(&mut conn, &row.id).await?;
            Ok::<_, TxError>(row)
        })
        .await
        .map_err(|e| e.into_api("Error deleting file"))?;
    // The record is gone either way; a leftover blob is unreachable and only logged (as the original).
    if let Err(e) = state.files.store.delete(&row.stored_name).await {
        tracing::warn!(error = %e, file = %row.id, "cannot remove the bytes of a deleted file");
    }
    Ok(HttpResponse::Ok().json(json!({"message": "File deleted successfully"})))
}

#[derive(Debug, Deserialize)]
struct DownloadQuery {
    token: Option<String>,
}

/// ASCII letters, digits, `.`, `-`, `_` of the original name, for a header that cannot be broken.
fn header_filename(original: &str, fallback: &str) -> String {
    let safe: String = original
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(100)
        .collect();
    if safe.trim_matches('.').is_empty() {
        fallback.to_owned()
    } else {
        safe
    }
}

async fn download(
    state: web::Data<AccountsState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if !is_stored_name(&name) {
        return Err(file_not_found());
    }
    let fail = "Error retrieving file";
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    let row = store::by_stored_name(&mut conn, &name)
        .await
        .map_err(db_fail(fail))?
        .ok_or_else(file_not_found)?;
    if !row.is_public {
        let token = bearer_token(&req).or(query.token.as_deref());
        let caller = token
            .and_then(|t| state.tokens.verify(t).ok())
            .map(|c| c.id);
        let allowed = match (&caller, &row.project_id) {
            (None, _) => false,
            (Some(id), _) if *id == row.owner_id => true,
            (Some(id), Some(project)) => {
                membership::is_member(&mut conn, Scope::Project(project), id)
                    .await
                    .map_err(db_fail(fail))?
            }
            (Some(_), None) => false,
        };
        // The same 404 as a missing file: a private file's existence is not disclosed.
        if !allowed {
            return Err(file_not_found());
        }
    }
    drop(pooled);
    let bytes = state
        .files
        .store
        .get(&row.stored_name)
        .await
        .map_err(|e| ApiError::internal(fail, e))?
        .ok_or_else(|| {
            tracing::warn!(file = %row.id, "file record without bytes");
            file_not_found()
        })?;
    let disposition = if is_inline_image(&row.mime_type) {
        "inline"
    } else {
        "attachment"
    };
    let filename = header_filename(&row.original_name, &row.stored_name);
    // Stored names are random and never rewritten, so the name is a strong validator of the bytes.
    let etag = EntityTag::new_strong(row.stored_name.clone());
    let unchanged = not_modified(&req, &etag);
    let mut res = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CONTENT_TYPE, row.mime_type.as_str()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("{disposition}; filename=\"{filename}\""),
        ))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(header::ETag(etag.clone()))
        .insert_header(header::LastModified(HttpDate::from(SystemTime::from(
            row.created_at.as_datetime(),
        ))))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CACHE_CONTROL,
            if row.is_public {
                "public, max-age=3600"
            } else {
                "private, no-store"
            },
        ));
    if unchanged {
        return Ok(res.finish());
    }
    Ok(match byte_range(&req, bytes.len() as u64) {
        Ranged::Full => res.body(bytes),
        Ranged::Part(start, end) => {
            let len = bytes.len() as u64;
            res.status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")))
                .body(bytes.slice(start as usize..=end as usize))
        }
        Ranged::Unsatisfiable => {
            let len = bytes.len();
            return Err(ApiError::with_body(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::RangeNotSatisfiable,
                json!({"message": "Range not satisfiable", "size": len}),
            ));
        }
    })
}

fn not_modified(req: &HttpRequest, etag: &EntityTag) -> bool {
    match req.get_header::<header::IfNoneMatch>() {
        Some(header::IfNoneMatch::Any) => true,
        Some(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(etag)),
        None => false,
    }
}

enum Ranged {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// One byte range (what video players ask for); several ranges get the whole file, as many servers do.
fn byte_range(req: &HttpRequest, len: u64) -> Ranged {
    match req.get_header::<header::Range>() {
        Some(header::Range::Bytes(specs)) if specs.len() == 1 => {
            match specs[0].to_satisfiable_range(len) {
                Some((start, end)) => Ranged::Part(start, end),
                None => Ranged::Unsatisfiable,
            }
        }
        _ => Ranged::Full,
    }
}
