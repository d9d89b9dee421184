//! A project's files, as OrganizationContext reads and uploads them: `GET /projects/:id/files` (a
//! bare array of FileMeta) and `POST /projects/:id/files` (multipart `file`, plus a `metadata` text
//! field holding JSON `{description?, tags?}`). Project members only: 404 for an unknown project,
//! 403 for anyone else, checked before a byte of the upload is read.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{no_file, receive_and_record, store, FileMeta, UploadSpec};
use crate::accounts::AccountsState;
use crate::auth::identity::AuthUser;
use crate::error::{db_fail, ApiError, ErrorCode};
use crate::membership::{self, Scope};
use crate::web::paging::{PageQuery, MAX_LIMIT};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{id}/files", web::get().to(list))
        .route("/projects/{id}/files", web::post().to(upload));
}

/// 404 for an unknown project, 403 for a non-member.
async fn require_member(
    state: &AccountsState,
    project: &str,
    user_id: &str,
    fail: &'static str,
) -> Result<(), ApiError> {
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let mut conn = pooled.as_conn();
    if !membership::exists(&mut conn, Scope::Project(project))
        .await
        .map_err(db_fail(fail))?
    {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "Project not found",
        ));
    }
    if !membership::is_member(&mut conn, Scope::Project(project), user_id)
        .await
        .map_err(db_fail(fail))?
    {
        return Err(ApiError::message(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "Access denied",
        ));
    }
    Ok(())
}

async fn list(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error retrieving files";
    require_member(&state, &path, &user.id, fail).await?;
    let page = query.resolve(MAX_LIMIT);
    let mut pooled = state.db.get_read().await.map_err(db_fail(fail))?;
    let rows = store::of_project(&mut pooled.as_conn(), &path, page)
        .await
        .map_err(db_fail(fail))?;
    let files: Vec<FileMeta> = rows.into_iter().map(FileMeta::from).collect();
    Ok(HttpResponse::Ok().json(files))
}

async fn upload(
    state: web::Data<AccountsState>,
    user: AuthUser,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fail = "Error uploading file";
    let project = path.into_inner();
    require_member(&state, &project, &user.id, fail).await?;
    let spec = UploadSpec {
        field: "file",
        max_files: 1,
        fail,
        no_files: no_file,
        public: false,
        project: Some(project.clone()),
        metadata: true,
    };
    let rows = receive_and_record(&state, &user, &req, payload, spec).await?;
    let Some(row) = rows.into_iter().next() else {
        return Err(no_file());
    };
    tracing::info!(user = %user.id, project = %project, file = %row.id, "project file uploaded");
    // Bare FileMeta: OrganizationContext returns the body itself as the new ProjectFile.
    Ok(HttpResponse::Created().json(FileMeta::from(row)))
}
