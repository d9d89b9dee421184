//! Who may use a team, a project, a channel or a conversation (ARCHITECTURE §4), decided here and
//! nowhere else:
//! - a team's members are its `group_members`;
//! - a project's are its `project_members` (the creator is `owner`) plus the members of its team
//!   (`projects.group_id`): a team owner or admin is a project `admin`, anyone else a `member`. An
//!   explicit `project_members` row wins over the team-derived role;
//! - a conversation with a team (`group_id`) belongs to that team's members, one with a project to the
//!   project's members, any other (group and direct conversations) to its explicit participants.
//!   Participant rows of team and project channels only hold read pointers: they never grant access.
//!
//! Accounts (teams, projects, files), messaging and collaboration ask here; nobody else reads the
//! membership tables to decide access. A module that keeps live sessions per scope (messaging's
//! socket rooms) hears about departures through [`Departures`], so accounts never calls messaging.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures_util::future::BoxFuture;

use crate::db::schema::{
    conversation_participants as cp, conversations, group_members, groups, project_members,
    projects,
};
use crate::db::{Conn, Db, DbError, Timestamp};
use crate::input::usable_id;

/// What a membership is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A team or organization (`groups`).
    Team(&'a str),
    Project(&'a str),
    /// The explicit participants of a group or direct conversation.
    Participants(&'a str),
}

impl<'a> Scope<'a> {
    /// The scope that decides who may use a conversation with these owner columns: its team, else
    /// its project, else its own participants.
    pub fn of_conversation(id: &'a str, team: Option<&'a str>, project: Option<&'a str>) -> Self {
        match (team, project) {
            (Some(team), _) => Scope::Team(team),
            (None, Some(project)) => Scope::Project(project),
            (None, None) => Scope::Participants(id),
        }
    }

    fn id(self) -> &'a str {
        match self {
            Scope::Team(id) | Scope::Project(id) | Scope::Participants(id) => id,
        }
    }
}

/// One member of a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub role: String,
    pub joined_at: Timestamp,
}

/// `user`'s membership of `scope`, with its role; `None` for outsiders and unusable ids.
pub async fn member(
    conn: &mut Conn<'_>,
    scope: Scope<'_>,
    user: &str,
) -> Result<Option<Member>, DbError> {
    if !usable_id(scope.id()) || !usable_id(user) {
        return Ok(None);
    }
    let row: Option<(String, String, Timestamp)> = match scope {
        Scope::Team(team) => crate::db!(conn, |c| {
            group_members::table
                .find((team, user))
                .select((
                    group_members::user_id,
                    group_members::role,
                    group_members::joined_at,
                ))
                .first(c)
                .await
                .optional()
        })?,
        Scope::Project(project) => {
            let explicit = crate::db!(conn, |c| {
                project_members::table
                    .find((project, user))
                    .select((
                        project_members::user_id,
                        project_members::role,
                        project_members::joined_at,
                    ))
                    .first(c)
                    .await
                    .optional()
            })?;
            match explicit {
                Some(row) => Some(row),
                None => team_member_of_project(conn, project, user).await?,
            }
        }
        Scope::Participants(conversation) => crate::db!(conn, |c| {
            cp::table
                .find((conversation, user))
                .select((cp::user_id, cp::role, cp::joined_at))
                .first(c)
                .await
                .optional()
        })?,
    };
    Ok(row.map(|(user_id, role, joined_at)| Member {
        user_id,
        role,
        joined_at,
    }))
}

/// `user`'s role in `scope` (`None`: not a member), on a connection of its own.
pub async fn role(db: &Db, scope: Scope<'_>, user: &str) -> Result<Option<String>, DbError> {
    let mut conn = db.get_read().await?;
    Ok(member(&mut conn.as_conn(), scope, user)
        .await?
        .map(|m| m.role))
}

/// Whether `user` belongs to `scope`.
pub async fn is_member(conn: &mut Conn<'_>, scope: Scope<'_>, user: &str) -> Result<bool, DbError> {
    Ok(member(conn, scope, user).await?.is_some())
}

/// Whether the team, project or conversation exists at all.
pub async fn exists(conn: &mut Conn<'_>, scope: Scope<'_>) -> Result<bool, DbError> {
    let id = scope.id();
    if !usable_id(id) {
        return Ok(false);
    }
    let n: i64 = match scope {
        Scope::Team(_) => crate::db!(conn, |c| {
            groups::table
                .filter(groups::id.eq(id))
                .count()
                .get_result(c)
                .await
        })?,
        Scope::Project(_) => crate::db!(conn, |c| {
            projects::table
                .filter(projects::id.eq(id))
                .count()
                .get_result(c)
                .await
        })?,
        Scope::Participants(_) => crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::id.eq(id))
                .count()
                .get_result(c)
                .await
        })?,
    };
    Ok(n > 0)
}

/// Everyone who belongs to `scope` (user ids, in storage order).
pub async fn members(conn: &mut Conn<'_>, scope: Scope<'_>) -> Result<Vec<String>, DbError> {
    Ok(match scope {
        Scope::Team(team) => crate::db!(conn, |c| {
            group_members::table
                .filter(group_members::group_id.eq(team))
                .select(group_members::user_id)
                .load(c)
                .await
        })?,
        Scope::Project(project) => project_members_of(conn, &[project.to_owned()])
            .await?
            .into_iter()
            .map(|(_, m)| m.user_id)
            .collect(),
        Scope::Participants(conversation) => crate::db!(conn, |c| {
            cp::table
                .filter(cp::conversation_id.eq(conversation))
                .select(cp::user_id)
                .load(c)
                .await
        })?,
    })
}

/// What membership knows of a conversation: who owns it, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ConversationRef {
    pub id: String,
    pub name: Option<String>,
    pub team: Option<String>,
    pub project: Option<String>,
}

impl ConversationRef {
    pub fn scope(&self) -> Scope<'_> {
        Scope::of_conversation(&self.id, self.team.as_deref(), self.project.as_deref())
    }
}

/// The conversation `id`, if it exists.
pub async fn conversation(
    conn: &mut Conn<'_>,
    id: &str,
) -> Result<Option<ConversationRef>, DbError> {
    if !usable_id(id) {
        return Ok(None);
    }
    Ok(crate::db!(conn, |c| {
        conversations::table
            .find(id)
            .select((
                conversations::id,
                conversations::name,
                conversations::group_id,
                conversations::project_id,
            ))
            .first::<ConversationRef>(c)
            .await
            .optional()
    })?)
}

/// The answer to "may this user use that conversation?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed(ConversationRef),
    Denied,
    NotFound,
}

/// May `user` use conversation `id`?
pub async fn conversation_access(
    conn: &mut Conn<'_>,
    id: &str,
    user: &str,
) -> Result<Access, DbError> {
    let Some(conv) = conversation(conn, id).await? else {
        return Ok(Access::NotFound);
    };
    if is_member(conn, conv.scope(), user).await? {
        Ok(Access::Allowed(conv))
    } else {
        Ok(Access::Denied)
    }
}

/// Ids of every conversation `user` may use.
pub async fn conversations_of_user(
    conn: &mut Conn<'_>,
    user: &str,
) -> Result<Vec<String>, DbError> {
    let mut ids: Vec<String> = crate::db!(conn, |c| {
        cp::table
            .inner_join(conversations::table)
            .filter(cp::user_id.eq(user))
            .filter(conversations::group_id.is_null())
            .filter(conversations::project_id.is_null())
            .select(conversations::id)
            .load(c)
            .await
    })?;
    let team_ids: Vec<String> = crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::user_id.eq(user))
            .select(group_members::group_id)
            .load(c)
            .await
    })?;
    if !team_ids.is_empty() {
        let more: Vec<String> = crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::group_id.eq_any(&team_ids))
                .select(conversations::id)
                .load(c)
                .await
        })?;
        ids.extend(more);
    }
    let project_ids = projects_of_user(conn, user).await?;
    if !project_ids.is_empty() {
        let more: Vec<String> = crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::project_id.eq_any(&project_ids))
                .filter(conversations::group_id.is_null())
                .select(conversations::id)
                .load(c)
                .await
        })?;
        ids.extend(more);
    }
    Ok(ids)
}

/// Everyone who shares at least one conversation with `user`, sorted (presence is scoped to them).
pub async fn co_members(conn: &mut Conn<'_>, user: &str) -> Result<Vec<String>, DbError> {
    let ids = conversations_of_user(conn, user).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let convs: Vec<(String, Option<String>, Option<String>)> = crate::db!(conn, |c| {
        conversations::table
            .filter(conversations::id.eq_any(&ids))
            .select((
                conversations::id,
                conversations::group_id,
                conversations::project_id,
            ))
            .load(c)
            .await
    })?;
    let mut team_ids = BTreeSet::new();
    let mut project_ids = BTreeSet::new();
    let mut plain = Vec::new();
    for (id, team, project) in convs {
        match Scope::of_conversation(&id, team.as_deref(), project.as_deref()) {
            Scope::Team(t) => {
                team_ids.insert(t.to_owned());
            }
            Scope::Project(p) => {
                project_ids.insert(p.to_owned());
            }
            Scope::Participants(_) => plain.push(id),
        }
    }
    let team_ids: Vec<String> = team_ids.into_iter().collect();
    let project_ids: Vec<String> = project_ids.into_iter().collect();
    let mut out = BTreeSet::new();
    if !team_ids.is_empty() {
        let v: Vec<String> = crate::db!(conn, |c| {
            group_members::table
                .filter(group_members::group_id.eq_any(&team_ids))
                .select(group_members::user_id)
                .load(c)
                .await
        })?;
        out.extend(v);
    }
    if !project_ids.is_empty() {
        let v = project_members_of(conn, &project_ids).await?;
        out.extend(v.into_iter().map(|(_, m)| m.user_id));
    }
    if !plain.is_empty() {
        let v: Vec<String> = crate::db!(conn, |c| {
            cp::table
                .filter(cp::conversation_id.eq_any(&plain))
                .select(cp::user_id)
                .load(c)
                .await
        })?;
        out.extend(v);
    }
    out.remove(user);
    Ok(out.into_iter().collect())
}

/// The conversations a team's or project's membership grants: what a member loses on leaving it.
/// (A participants scope grants only its own conversation.)
pub async fn conversations_of(
    conn: &mut Conn<'_>,
    scope: Scope<'_>,
) -> Result<Vec<String>, DbError> {
    Ok(match scope {
        Scope::Team(team) => crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::group_id.eq(team))
                .select(conversations::id)
                .load::<String>(c)
                .await
        })?,
        Scope::Project(project) => crate::db!(conn, |c| {
            conversations::table
                .filter(conversations::project_id.eq(project))
                .select(conversations::id)
                .load::<String>(c)
                .await
        })?,
        Scope::Participants(conversation) => vec![conversation.to_owned()],
    })
}

/// The project role a team role grants in the team's projects.
pub fn project_role_of_team_role(team_role: &str) -> &'static str {
    match team_role {
        "owner" | "admin" => "admin",
        _ => "member",
    }
}

/// `user`'s membership of `project` through the project's team, if it has one.
async fn team_member_of_project(
    conn: &mut Conn<'_>,
    project: &str,
    user: &str,
) -> Result<Option<(String, String, Timestamp)>, DbError> {
    let team: Option<Option<String>> = crate::db!(conn, |c| {
        projects::table
            .find(project)
            .select(projects::group_id)
            .first(c)
            .await
            .optional()
    })?;
    let Some(team) = team.flatten() else {
        return Ok(None);
    };
    let row: Option<(String, String, Timestamp)> = crate::db!(conn, |c| {
        group_members::table
            .find((&team, user))
            .select((
                group_members::user_id,
                group_members::role,
                group_members::joined_at,
            ))
            .first(c)
            .await
            .optional()
    })?;
    Ok(row.map(|(u, role, at)| (u, project_role_of_team_role(&role).to_owned(), at)))
}

/// Ids of the projects of `team` (whose members the team's membership makes project members).
pub async fn projects_of_team(conn: &mut Conn<'_>, team: &str) -> Result<Vec<String>, DbError> {
    Ok(crate::db!(conn, |c| {
        projects::table
            .filter(projects::group_id.eq(team))
            .select(projects::id)
            .load(c)
            .await
    })?)
}

/// Ids of every project `user` belongs to: explicitly, or through the project's team.
pub async fn projects_of_user(conn: &mut Conn<'_>, user: &str) -> Result<Vec<String>, DbError> {
    let mut ids: BTreeSet<String> = crate::db!(conn, |c| {
        project_members::table
            .filter(project_members::user_id.eq(user))
            .select(project_members::project_id)
            .load::<String>(c)
            .await
    })?
    .into_iter()
    .collect();
    let team_ids: Vec<String> = crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::user_id.eq(user))
            .select(group_members::group_id)
            .load(c)
            .await
    })?;
    if !team_ids.is_empty() {
        let more: Vec<String> = crate::db!(conn, |c| {
            projects::table
                .filter(projects::group_id.eq_any(&team_ids))
                .select(projects::id)
                .load(c)
                .await
        })?;
        ids.extend(more);
    }
    Ok(ids.into_iter().collect())
}

/// The members of each project (explicit rows first, then team members without one), as
/// `(project_id, member)` pairs ordered by project then join time.
pub async fn project_members_of(
    conn: &mut Conn<'_>,
    project_ids: &[String],
) -> Result<Vec<(String, Member)>, DbError> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let explicit: Vec<(String, String, String, Timestamp)> = crate::db!(conn, |c| {
        project_members::table
            .filter(project_members::project_id.eq_any(project_ids))
            .order((
                project_members::joined_at.asc(),
                project_members::user_id.asc(),
            ))
            .select((
                project_members::project_id,
                project_members::user_id,
                project_members::role,
                project_members::joined_at,
            ))
            .load(c)
            .await
    })?;
    let teams: Vec<(String, Option<String>)> = crate::db!(conn, |c| {
        projects::table
            .filter(projects::id.eq_any(project_ids))
            .select((projects::id, projects::group_id))
            .load(c)
            .await
    })?;
    let team_ids: Vec<String> = teams.iter().filter_map(|(_, t)| t.clone()).collect();
    let team_rows: Vec<(String, String, String, Timestamp)> = if team_ids.is_empty() {
        Vec::new()
    } else {
        crate::db!(conn, |c| {
            group_members::table
                .filter(group_members::group_id.eq_any(&team_ids))
                .order((group_members::joined_at.asc(), group_members::user_id.asc()))
                .select((
                    group_members::group_id,
                    group_members::user_id,
                    group_members::role,
                    group_members::joined_at,
                ))
                .load(c)
                .await
        })?
    };
    let mut out = Vec::new();
    for id in project_ids {
        let mut seen = BTreeSet::new();
        for (_, user_id, role, joined_at) in explicit.iter().filter(|r| &r.0 == id) {
            seen.insert(user_id.clone());
            out.push((
                id.clone(),
                Member {
                    user_id: user_id.clone(),
                    role: role.clone(),
                    joined_at: *joined_at,
                },
            ));
        }
        let team = teams
            .iter()
            .find(|(p, _)| p == id)
            .and_then(|(_, t)| t.as_ref());
        if let Some(team) = team {
            for (_, user_id, role, joined_at) in team_rows.iter().filter(|r| &r.0 == team) {
                if seen.insert(user_id.clone()) {
                    out.push((
                        id.clone(),
                        Member {
                            user_id: user_id.clone(),
                            role: project_role_of_team_role(role).to_owned(),
                            joined_at: *joined_at,
                        },
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Hears that a user left (or was removed from) a scope, after the change is stored. Messaging
/// implements it to take that user's sockets out of the rooms the scope granted; accounts calls it
/// without knowing who listens.
pub trait Departures: Send + Sync + 'static {
    fn left<'a>(&'a self, user: &'a str, scope: Scope<'a>) -> BoxFuture<'a, ()>;
}

/// Hears that a project's task changed over REST, after the change is stored. Messaging implements
/// it to tell the project's live room (`task:created|updated|deleted`); accounts calls it without
/// knowing who listens. `data` is the event body without `projectId` and `timestamp`.
pub trait ProjectEvents: Send + Sync + 'static {
    fn task<'a>(
        &'a self,
        project_id: &'a str,
        event: &'static str,
        data: serde_json::Value,
    ) -> BoxFuture<'a, ()>;
}
