//! The queries of the integrations tables. Secrets arrive here already encrypted.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::db::schema::{
    github_issues, github_links, integration_tokens as tokens, integration_webhooks, oauth_states,
    projects,
};
use crate::db::{Db, DbError, Json, Timestamp};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = oauth_states)]
pub struct StateRow {
    pub state_hash: String,
    pub user_id: String,
    pub provider: String,
    pub code_verifier_enc: Option<String>,
    pub redirect_uri: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

pub async fn insert_state(db: &Db, row: StateRow) -> Result<(), DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    // Abandoned authorizations are cleared as new ones start.
    crate::db!(conn, |c| {
        diesel::delete(oauth_states::table.filter(oauth_states::expires_at.lt(now)))
            .execute(c)
            .await
    })?;
    crate::db!(conn, |c| {
        diesel::insert_into(oauth_states::table)
            .values((
                oauth_states::state_hash.eq(&row.state_hash),
                oauth_states::user_id.eq(&row.user_id),
                oauth_states::provider.eq(&row.provider),
                oauth_states::code_verifier_enc.eq(&row.code_verifier_enc),
                oauth_states::redirect_uri.eq(&row.redirect_uri),
                oauth_states::created_at.eq(row.created_at),
                oauth_states::expires_at.eq(row.expires_at),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Deletes the state and returns what it was: whoever presents it first uses it up, so a replay
/// (or a race of two callbacks) finds nothing.
pub async fn take_state(db: &Db, hash: &str) -> Result<Option<StateRow>, DbError> {
    let mut conn = db.get_write().await?;
    Ok(crate::db!(conn, |c| {
        diesel::delete(oauth_states::table.find(hash))
            .returning(StateRow::as_returning())
            .get_result(c)
            .await
            .optional()
    })?)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = tokens)]
pub struct TokenRow {
    pub user_id: String,
    pub provider: String,
    pub access_token_enc: String,
    pub refresh_token_enc: Option<String>,
    pub token_type: String,
    pub scopes: String,
    pub expires_at: Option<Timestamp>,
    pub provider_user_id: Option<String>,
    pub provider_login: Option<String>,
    pub provider_email: Option<String>,
    pub provider_name: Option<String>,
    pub metadata: Json,
    pub status: String,
    pub last_used_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub async fn tokens_of(db: &Db, user: &str) -> Result<Vec<TokenRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        tokens::table
            .filter(tokens::user_id.eq(user))
            .order(tokens::created_at.desc())
            .select(TokenRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn token(db: &Db, user: &str, provider: &str) -> Result<Option<TokenRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        tokens::table
            .find((user, provider))
            .select(TokenRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// A fresh connection replaces any earlier one of the same user and provider.
pub async fn upsert_token(db: &Db, row: TokenRow) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    // Everything but the key and `last_used_at` (kept across reconnects): the same columns are
    // inserted and, on a conflict, updated.
    let changes = || {
        (
            tokens::access_token_enc.eq(&row.access_token_enc),
            tokens::refresh_token_enc.eq(&row.refresh_token_enc),
            tokens::token_type.eq(&row.token_type),
            tokens::scopes.eq(&row.scopes),
            tokens::expires_at.eq(row.expires_at),
            tokens::provider_user_id.eq(&row.provider_user_id),
            tokens::provider_login.eq(&row.provider_login),
            tokens::provider_email.eq(&row.provider_email),
            tokens::provider_name.eq(&row.provider_name),
            tokens::metadata.eq(&row.metadata),
            tokens::status.eq(&row.status),
            tokens::created_at.eq(row.created_at),
            tokens::updated_at.eq(row.updated_at),
        )
    };
    let values = (
        tokens::user_id.eq(&row.user_id),
        tokens::provider.eq(&row.provider),
        changes(),
    );
    crate::db!(conn, |c| {
        diesel::insert_into(tokens::table)
            .values(values)
            .on_conflict((tokens::user_id, tokens::provider))
            .do_update()
            .set(changes())
            .execute(c)
            .await
    })?;
    Ok(())
}

/// After a refresh: the new secrets and expiry, status back to connected.
pub async fn store_refreshed(
    db: &Db,
    user: &str,
    provider: &str,
    access_enc: &str,
    refresh_enc: Option<&str>,
    expires_at: Option<Timestamp>,
) -> Result<(), DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::update(tokens::table.find((user, provider)))
            .set((
                tokens::access_token_enc.eq(access_enc),
                tokens::refresh_token_enc.eq(refresh_enc),
                tokens::expires_at.eq(expires_at),
                tokens::status.eq("connected"),
                tokens::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn set_status(db: &Db, user: &str, provider: &str, status: &str) -> Result<(), DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::update(tokens::table.find((user, provider)))
            .set((tokens::status.eq(status), tokens::updated_at.eq(now)))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn touch(db: &Db, user: &str, provider: &str) -> Result<(), DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::update(tokens::table.find((user, provider)))
            .set(tokens::last_used_at.eq(Some(now)))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn delete_token(db: &Db, user: &str, provider: &str) -> Result<(), DbError> {
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::delete(tokens::table.find((user, provider)))
            .execute(c)
            .await
    })?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = github_links)]
pub struct LinkRow {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub owner: String,
    pub repo: String,
    pub full_name: String,
    pub sync_issues: bool,
    pub auto_create_tasks: bool,
    pub sync_status: String,
    pub last_synced_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Inserts the link, or updates the one of the same project and repository (keeping its id).
pub async fn upsert_link(db: &Db, row: &LinkRow) -> Result<LinkRow, DbError> {
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::insert_into(github_links::table)
            .values((
                github_links::id.eq(&row.id),
                github_links::user_id.eq(&row.user_id),
                github_links::project_id.eq(&row.project_id),
                github_links::owner.eq(&row.owner),
                github_links::repo.eq(&row.repo),
                github_links::full_name.eq(&row.full_name),
                github_links::sync_issues.eq(row.sync_issues),
                github_links::auto_create_tasks.eq(row.auto_create_tasks),
                github_links::sync_status.eq(&row.sync_status),
                github_links::created_at.eq(row.created_at),
                github_links::updated_at.eq(row.updated_at),
            ))
            .on_conflict((
                github_links::project_id,
                github_links::owner,
                github_links::repo,
            ))
            .do_update()
            .set((
                github_links::user_id.eq(&row.user_id),
                github_links::full_name.eq(&row.full_name),
                github_links::sync_issues.eq(row.sync_issues),
                github_links::auto_create_tasks.eq(row.auto_create_tasks),
                github_links::updated_at.eq(row.updated_at),
            ))
            .returning(LinkRow::as_returning())
            .get_result(c)
            .await
    })
    .map_err(DbError::from)
}

pub async fn link(db: &Db, id: &str) -> Result<Option<LinkRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        github_links::table
            .find(id)
            .select(LinkRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn links_of_repo(db: &Db, full_name: &str) -> Result<Vec<LinkRow>, DbError> {
    let mut conn = db.get_read().await?;
    let wanted = full_name.to_lowercase();
    Ok(crate::db!(conn, |c| {
        github_links::table
            .filter(crate::db::lower(github_links::full_name).eq(&wanted))
            .select(LinkRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn links_to_sync(db: &Db) -> Result<Vec<LinkRow>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        github_links::table
            .filter(github_links::sync_issues.eq(true))
            .select(LinkRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn set_sync_status(
    db: &Db,
    id: &str,
    status: &str,
    error: Option<&str>,
    synced: bool,
) -> Result<(), DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    if synced {
        crate::db!(conn, |c| {
            diesel::update(github_links::table.find(id))
                .set((
                    github_links::sync_status.eq(status),
                    github_links::last_error.eq(error),
                    github_links::last_synced_at.eq(Some(now)),
                    github_links::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })?;
    } else {
        crate::db!(conn, |c| {
            diesel::update(github_links::table.find(id))
                .set((
                    github_links::sync_status.eq(status),
                    github_links::last_error.eq(error),
                    github_links::updated_at.eq(now),
                ))
                .execute(c)
                .await
        })?;
    }
    Ok(())
}

/// One issue as GitHub describes it, reduced to what is stored.
#[derive(Debug, Clone)]
pub struct IssueRow {
    pub number: i64,
    pub github_id: i64,
    pub title: String,
    pub body: Option<String>,
    pub state: String,
    pub labels: Value,
    pub assignees: Value,
    pub html_url: String,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub closed_at: Option<String>,
}

/// Stores the issue; `true` when the link did not have it yet.
pub async fn upsert_issue(db: &Db, link_id: &str, issue: &IssueRow) -> Result<bool, DbError> {
    let now = crate::db::now();
    let mut conn = db.get_write().await?;
    let known: i64 = crate::db!(conn, |c| {
        github_issues::table
            .filter(github_issues::link_id.eq(link_id))
            .filter(github_issues::number.eq(issue.number))
            .count()
            .get_result(c)
            .await
    })?;
    let labels = Json(issue.labels.clone());
    let assignees = Json(issue.assignees.clone());
    crate::db!(conn, |c| {
        diesel::insert_into(github_issues::table)
            .values((
                github_issues::link_id.eq(link_id),
                github_issues::number.eq(issue.number),
                github_issues::github_id.eq(issue.github_id),
                github_issues::title.eq(&issue.title),
                github_issues::body.eq(&issue.body),
                github_issues::state.eq(&issue.state),
                github_issues::labels.eq(&labels),
                github_issues::assignees.eq(&assignees),
                github_issues::html_url.eq(&issue.html_url),
                github_issues::created_at.eq(&issue.created_at),
                github_issues::updated_at.eq(&issue.updated_at),
                github_issues::closed_at.eq(&issue.closed_at),
                github_issues::synced_at.eq(now),
            ))
            .on_conflict((github_issues::link_id, github_issues::number))
            .do_update()
            .set((
                github_issues::github_id.eq(issue.github_id),
                github_issues::title.eq(&issue.title),
                github_issues::body.eq(&issue.body),
                github_issues::state.eq(&issue.state),
                github_issues::labels.eq(&labels),
                github_issues::assignees.eq(&assignees),
                github_issues::html_url.eq(&issue.html_url),
                github_issues::updated_at.eq(&issue.updated_at),
                github_issues::closed_at.eq(&issue.closed_at),
                github_issues::synced_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(known == 0)
}

/// `autoCreateTasks`: a task of the link's project for an issue the link had not seen before.
///
/// The row has the shape the project routes write (status `todo`, priority `medium`, the link's
/// creator as author). No activity is recorded and no live event sent: those belong to the project
/// routes, which integrations do not call.
pub async fn create_task_for_issue(
    db: &Db,
    link: &LinkRow,
    issue: &IssueRow,
) -> Result<(), DbError> {
    use crate::db::schema::project_tasks as t;
    let now = crate::db::now();
    let id = crate::db::new_id();
    let title: String = format!("#{} {}", issue.number, issue.title)
        .chars()
        .take(500)
        .collect();
    let mut description = issue.html_url.clone();
    if let Some(body) = issue.body.as_deref().filter(|b| !b.is_empty()) {
        description.push_str("\n\n");
        description.extend(body.chars().take(10_000));
    }
    let mut conn = db.get_write().await?;
    crate::db!(conn, |c| {
        diesel::insert_into(t::table)
            .values((
                t::id.eq(&id),
                t::project_id.eq(&link.project_id),
                t::title.eq(&title),
                t::description.eq(&description),
                t::status.eq("todo"),
                t::priority.eq("medium"),
                t::created_by.eq(Some(&link.user_id)),
                t::created_at.eq(now),
                t::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn issue_count(db: &Db, link_id: &str) -> Result<i64, DbError> {
    let mut conn = db.get_read().await?;
    Ok(crate::db!(conn, |c| {
        github_issues::table
            .filter(github_issues::link_id.eq(link_id))
            .count()
            .get_result(c)
            .await
    })?)
}

/// `{id, name, description, status}` of a project, for the link answer.
pub async fn project_summary(db: &Db, id: &str) -> Result<Option<Value>, DbError> {
    let mut conn = db.get_read().await?;
    let row: Option<(String, String, Option<String>, String)> = crate::db!(conn, |c| {
        projects::table
            .find(id)
            .select((
                projects::id,
                projects::name,
                projects::description,
                projects::status,
            ))
            .first(c)
            .await
            .optional()
    })?;
    Ok(row.map(|(id, name, description, status)| {
        serde_json::json!({"id": id, "name": name, "description": description, "status": status})
    }))
}

/// Records a webhook delivery; `false` when this delivery id was recorded before.
pub async fn record_webhook(
    db: &Db,
    provider: &str,
    event_type: &str,
    delivery_id: Option<&str>,
    payload: &str,
    ip: Option<&str>,
) -> Result<bool, DbError> {
    let now = crate::db::now();
    let id = crate::db::new_id();
    let mut conn = db.get_write().await?;
    let n = crate::db!(conn, |c| {
        diesel::insert_into(integration_webhooks::table)
            .values((
                integration_webhooks::id.eq(&id),
                integration_webhooks::provider.eq(provider),
                integration_webhooks::event_type.eq(event_type),
                integration_webhooks::delivery_id.eq(delivery_id),
                integration_webhooks::payload.eq(payload),
                integration_webhooks::ip.eq(ip),
                integration_webhooks::received_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    Ok(n == 1)
}
