//! Transaction bodies that can end with an API answer (403, 404, 400) as well as a storage error.

use crate::db::DbError;
use crate::error::ApiError;

/// Why a transaction body stopped; rolls the transaction back either way.
#[derive(Debug)]
pub enum TxError {
    Api(ApiError),
    Db(DbError),
}

impl From<ApiError> for TxError {
    fn from(e: ApiError) -> Self {
        TxError::Api(e)
    }
}

impl From<DbError> for TxError {
    fn from(e: DbError) -> Self {
        TxError::Db(e)
    }
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(DbError::from(e))
    }
}

impl TxError {
    /// The answer to send: an API error as it is; a storage error as the route's generic text.
    #[track_caller]
    pub fn into_api(self, client_message: &str) -> ApiError {
        match self {
            TxError::Api(e) => e,
            TxError::Db(e) if e.is_unavailable() => ApiError::unavailable(e),
            TxError::Db(e) => ApiError::internal(client_message, e),
        }
    }
}

/// A storage error outside a transaction, with the route's generic 500 text.
#[track_caller]
pub fn db_fail(client_message: &str) -> impl FnOnce(DbError) -> ApiError + '_ {
    let at = std::panic::Location::caller();
    move |e| {
        if e.is_unavailable() {
            ApiError::unavailable(e)
        } else {
            tracing::error!(error = %e, at = %at, "{client_message}");
            ApiError::message(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                client_message,
            )
        }
    }
}

/// Whether an id from a path, query or body can be looked up at all. PostgreSQL refuses text with a
/// NUL byte (an error, not "no row"), so such ids are treated as unknown before reaching the store.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 512 && !id.contains('\0')
}
