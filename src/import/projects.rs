//! `projects.json` → `projects` + `project_members`; `channelMetadata.channelId` → `channel_id`
//! when that conversation exists (CONTRACT §15.3).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, Admitted, LegacyId};
use super::{
    members, one_of, optional_ts, required_name, required_ts, user_ref, write_failed, ImportError,
    Known, Tally,
};
use crate::accounts::projects::{MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, PRIORITIES, STATUSES};
use crate::db::schema::{project_members, projects};
use crate::db::Conn;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyProject {
    id: LegacyId,
    name: Option<String>,
    description: Option<String>,
    team_id: Option<LegacyId>,
    status: Option<String>,
    priority: Option<String>,
    created_by: Option<LegacyId>,
    created_at: Option<Value>,
    updated_at: Option<Value>,
    members: Option<Vec<Value>>,
    channel_metadata: Option<ChannelMetadata>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChannelMetadata {
    channel_id: Option<LegacyId>,
    linked_at: Option<Value>,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for admitted in admit::<LegacyProject>(records, "project", |r| &r.id, &known.projects, tally) {
        let Admitted {
            id,
            label,
            record: p,
            ..
        } = admitted;
        let Some(name) = required_name(p.name, MAX_NAME_CHARS, &label, tally) else {
            continue;
        };
        let description = p.description.map(|d| {
            if d.chars().count() > MAX_DESCRIPTION_CHARS {
                tally.anomaly(format!(
                    "{label}: description longer than {MAX_DESCRIPTION_CHARS} characters; cut to that length"
                ));
                d.chars().take(MAX_DESCRIPTION_CHARS).collect()
            } else {
                d
            }
        });
        let group_id = match p.team_id.map(|t| t.0).filter(|t| !t.is_empty()) {
            Some(team) if known.groups.contains(&team) => Some(team),
            Some(team) => {
                tally.anomaly(format!(
                    "{label}: teamId {team:?} is not a known team; imported without a team"
                ));
                None
            }
            None => None,
        };
        let status = one_of(
            p.status.as_deref(),
            STATUSES,
            "active",
            "status",
            &label,
            tally,
        );
        let priority = one_of(
            p.priority.as_deref(),
            PRIORITIES,
            "medium",
            "priority",
            &label,
            tally,
        );
        let created_by = user_ref(p.created_by, "createdBy", &label, known, tally);
        let created_at = required_ts(p.created_at.as_ref(), "createdAt", &label, tally);
        let updated_at =
            optional_ts(p.updated_at.as_ref(), "updatedAt", &label, tally).unwrap_or(created_at);
        let (channel_id, channel_linked_at) = match p.channel_metadata {
            Some(meta) => match meta.channel_id.map(|c| c.0).filter(|c| !c.is_empty()) {
                Some(channel) if known.conversations.contains(&channel) => {
                    let linked = optional_ts(
                        meta.linked_at.as_ref(),
                        "channelMetadata.linkedAt",
                        &label,
                        tally,
                    )
                    .unwrap_or(created_at);
                    (Some(channel), Some(linked))
                }
                Some(channel) => {
                    tally.anomaly(format!(
                        "{label}: linked channel {channel:?} does not exist; link dropped"
                    ));
                    (None, None)
                }
                None => (None, None),
            },
            None => (None, None),
        };
        let fail = || write_failed("projects", "project", &id);
        crate::db!(conn, |c| {
            diesel::insert_into(projects::table)
                .values((
                    projects::id.eq(&id),
                    projects::name.eq(&name),
                    projects::description.eq(&description),
                    projects::group_id.eq(&group_id),
                    projects::status.eq(&status),
                    projects::priority.eq(&priority),
                    projects::created_by.eq(&created_by),
                    projects::created_at.eq(created_at),
                    projects::updated_at.eq(updated_at),
                    projects::channel_id.eq(&channel_id),
                    projects::channel_linked_at.eq(channel_linked_at),
                ))
                .execute(c)
                .await
        })
        .map_err(|e| fail()(e.into()))?;
        for m in members(p.members, created_at, &label, known, tally) {
            crate::db!(conn, |c| {
                diesel::insert_into(project_members::table)
                    .values((
                        project_members::project_id.eq(&id),
                        project_members::user_id.eq(&m.user_id),
                        project_members::role.eq(&m.role),
                        project_members::joined_at.eq(m.joined_at),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(|e| fail()(e.into()))?;
        }
        known.projects.insert(id);
        tally.imported += 1;
    }
    Ok(())
}
