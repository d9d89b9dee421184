//! The admin check of every admin route (OPERATOR §0): a valid access token whose stored account is,
//! now, an active admin. No token → 401 `AUTH_REQUIRED`; anything else → 403 `ADMIN_REQUIRED` and an
//! `unauthorized_admin_access` event.

use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::AdminState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// An active admin (the extractor of every admin route).
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: AuthUser,
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { check(&req).await })
    }
}

pub use crate::auth::admin::admin_required;

async fn check(req: &HttpRequest) -> Result<Admin, ApiError> {
    let Some(state) = req.app_data::<web::Data<AdminState>>() else {
        return Err(ApiError::internal("Server error", "admin state missing"));
    };
    let caller = AuthUser::extract(req).await;
    crate::auth::admin::require_active_admin(&state.db, req, caller)
        .await
        .map(|user| Admin { user })
}

/// The gate of the `/monitoring` reads: open with `monitor.public`, else an admin.
pub async fn reader(req: &HttpRequest, state: &AdminState) -> Result<(), ApiError> {
    if state.monitor_public {
        return Ok(());
    }
    check(req).await.map(|_| ())
}
