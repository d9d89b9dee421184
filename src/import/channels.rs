//! `channels.json` → `conversations` (kind `channel`, `group_id` = `teamId`) with the creator as
//! participant. Access to a team channel comes from the team's membership (ARCHITECTURE §4); the
//! creator's participant row holds the read pointer, and is what keeps a channel whose team is gone
//! reachable by its creator.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, Admitted, LegacyId};
use super::{non_blank, required_ts, user_ref, write_failed, ImportError, Known, Tally};
use crate::db::schema::{conversation_participants as cp, conversations};
use crate::db::Conn;
use crate::messaging::model::NewConversationRow;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyChannel {
    id: LegacyId,
    name: Option<String>,
    team_id: Option<LegacyId>,
    description: Option<String>,
    created_at: Option<Value>,
    created_by: Option<LegacyId>,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for admitted in
        admit::<LegacyChannel>(records, "channel", |r| &r.id, &known.conversations, tally)
    {
        let Admitted {
            id,
            label,
            record: ch,
            ..
        } = admitted;
        let group_id = match ch.team_id.map(|t| t.0).filter(|t| !t.is_empty()) {
            Some(team) if known.groups.contains(&team) => Some(team),
            Some(team) => {
                tally.anomaly(format!(
                    "{label}: teamId {team:?} is not a known team; imported without a team, so only its creator can use it"
                ));
                None
            }
            None => None,
        };
        let created_by = user_ref(ch.created_by, "createdBy", &label, known, tally);
        if group_id.is_none() && created_by.is_none() {
            tally.anomaly(format!(
                "{label}: neither a team nor a known creator; nobody can use it until participants are added"
            ));
        }
        let created_at = required_ts(ch.created_at.as_ref(), "createdAt", &label, tally);
        let row = NewConversationRow {
            id: id.clone(),
            kind: "channel".into(),
            name: non_blank(ch.name),
            description: ch.description,
            group_id,
            project_id: None,
            created_by: created_by.clone(),
            created_at,
            updated_at: created_at,
            dm_key: None,
        };
        let fail = || write_failed("channels", "channel", &id);
        crate::db!(conn, |c| {
            diesel::insert_into(conversations::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map_err(|e| fail()(e.into()))?;
        if let Some(creator) = &created_by {
            crate::db!(conn, |c| {
                diesel::insert_into(cp::table)
                    .values((
                        cp::conversation_id.eq(&id),
                        cp::user_id.eq(creator),
                        cp::role.eq("owner"),
                        cp::joined_at.eq(created_at),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(|e| fail()(e.into()))?;
        }
        known.conversations.insert(id);
        tally.imported += 1;
    }
    Ok(())
}
