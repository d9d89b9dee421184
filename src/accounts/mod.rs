//! Accounts: users, organizations, teams, projects and files (CONTRACT §4–§8).

pub mod files;
pub mod organizations;
pub mod projects;
pub mod teams;
pub mod users;

use actix_web::web;

/// REST routes of the legacy auth service (mounted under `/api`, and bare in `serve unified`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    users::routes(cfg);
    organizations::routes(cfg);
    teams::routes(cfg);
    projects::routes(cfg);
    files::routes(cfg);
}

/// Routes the legacy messaging service owned among the accounts ones (`POST /api/upload`).
pub fn messaging_routes(cfg: &mut web::ServiceConfig) {
    files::messaging_routes(cfg);
}

/// Routes outside the `/api` prefix on every HTTP listener (`/uploads/<name>`).
pub fn root_routes(cfg: &mut web::ServiceConfig) {
    files::root_routes(cfg);
}
