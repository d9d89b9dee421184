//! Accounts: users, organizations, teams, projects and files (CONTRACT §4–§8).
//!
//! State: [`AccountsState`], registered with the routes. Who may use a team or project is asked of
//! [`crate::membership`]; the sockets of someone who leaves a team are dropped by whoever listens on
//! [`crate::membership::Departures`] (messaging), never called from here directly.

pub mod files;
pub mod organizations;
pub mod projects;
pub mod stats;
pub mod teams;
pub mod users;

use std::sync::Arc;

use actix_web::web;

use crate::auth::password::Passwords;
use crate::auth::TokenKeys;
use crate::db::Db;
use crate::membership::{Departures, ProjectEvents};

/// What the accounts routes of one listener use.
#[derive(Clone)]
pub struct AccountsState {
    pub db: Db,
    /// Verifies `?token=` on `/uploads/<name>` (an `<img>` cannot send a header).
    pub tokens: TokenKeys,
    /// Shared with auth: one hashing pool per process.
    pub passwords: Arc<Passwords>,
    pub files: Arc<files::FileServices>,
    /// Told when someone leaves a team, if anything on this listener holds sessions per team.
    pub departures: Option<Arc<dyn Departures>>,
    /// Told when a task changes over REST, if this listener serves live project rooms.
    pub project_events: Option<Arc<dyn ProjectEvents>>,
}

/// REST routes of the legacy auth service (mounted under `/api`, and bare in `serve unified`).
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<AccountsState>) {
    cfg.app_data(state);
    users::routes(cfg);
    organizations::routes(cfg);
    teams::routes(cfg);
    projects::routes(cfg);
    stats::routes(cfg);
    files::routes(cfg);
}

/// Routes the legacy messaging service owned among the accounts ones (`POST /api/upload`).
pub fn messaging_routes(cfg: &mut web::ServiceConfig, state: web::Data<AccountsState>) {
    cfg.app_data(state);
    files::messaging_routes(cfg);
}

/// Routes outside the `/api` prefix on every HTTP listener (`/uploads/<name>`).
pub fn root_routes(cfg: &mut web::ServiceConfig, state: web::Data<AccountsState>) {
    cfg.app_data(state);
    files::root_routes(cfg);
}
