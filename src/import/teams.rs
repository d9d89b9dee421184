//! `teams.json` → `groups` (kind `team`: the files cannot tell an organization apart reliably,
//! CONTRACT §15.3) + `group_members` + `group_invites`.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, id_problem, record, Admitted, LegacyId};
use super::{
    members, one_of, optional_ts, required_name, required_ts, user_ref, write_failed, ImportError,
    Known, Tally,
};
use crate::accounts::teams::model::{KIND_TEAM, MAX_NAME_CHARS, ROLE_OWNER};
use crate::db::schema::{group_invites, group_members, groups};
use crate::db::Conn;
use crate::input::normalize_email;

const INVITE_ROLES: [&str; 2] = ["admin", "member"];
const INVITE_STATUSES: [&str; 5] = ["pending", "accepted", "declined", "revoked", "expired"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyTeam {
    id: LegacyId,
    name: Option<String>,
    description: Option<String>,
    created_by: Option<LegacyId>,
    created_at: Option<Value>,
    updated_at: Option<Value>,
    members: Option<Vec<Value>>,
    invites: Option<Vec<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyInvite {
    id: LegacyId,
    email: Option<String>,
    role: Option<String>,
    invited_by: Option<LegacyId>,
    invited_at: Option<Value>,
    status: Option<String>,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for admitted in admit::<LegacyTeam>(records, "team", |r| &r.id, &known.groups, tally) {
        let Admitted {
            id,
            label,
            record: t,
            ..
        } = admitted;
        let Some(name) = required_name(t.name, MAX_NAME_CHARS, &label, tally) else {
            continue;
        };
        let created_by = user_ref(t.created_by, "createdBy", &label, known, tally);
        let created_at = required_ts(t.created_at.as_ref(), "createdAt", &label, tally);
        let updated_at =
            optional_ts(t.updated_at.as_ref(), "updatedAt", &label, tally).unwrap_or(created_at);
        let fail = || write_failed("teams", "team", &id);
        crate::db!(conn, |c| {
            diesel::insert_into(groups::table)
                .values((
                    groups::id.eq(&id),
                    groups::kind.eq(KIND_TEAM),
                    groups::name.eq(&name),
                    groups::description.eq(&t.description),
                    groups::created_by.eq(&created_by),
                    groups::created_at.eq(created_at),
                    groups::updated_at.eq(updated_at),
                ))
                .execute(c)
                .await
        })
        .map_err(|e| fail()(e.into()))?;

        let list = members(t.members, created_at, &label, known, tally);
        if !list.is_empty() && !list.iter().any(|m| m.role == ROLE_OWNER) {
            tally.anomaly(format!(
                "{label}: no member is an owner; roles imported as they are"
            ));
        }
        for m in &list {
            crate::db!(conn, |c| {
                diesel::insert_into(group_members::table)
                    .values((
                        group_members::group_id.eq(&id),
                        group_members::user_id.eq(&m.user_id),
                        group_members::role.eq(&m.role),
                        group_members::joined_at.eq(m.joined_at),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(|e| fail()(e.into()))?;
        }

        let mut pending = HashSet::new();
        for (j, value) in t.invites.unwrap_or_default().into_iter().enumerate() {
            let inv: LegacyInvite = match record(value) {
                Ok(inv) => inv,
                Err(e) => {
                    tally.anomaly(format!("{label}: invite #{}: {e}; skipped", j + 1));
                    continue;
                }
            };
            let invite_id = inv.id.0;
            let inv_label = format!("{label}: invite {invite_id:?}");
            if let Some(problem) = id_problem(&invite_id) {
                tally.anomaly(format!("{label}: invite #{}: {problem}; skipped", j + 1));
                continue;
            }
            if known.invites.contains(&invite_id) {
                tally.anomaly(format!("{inv_label}: id already used; skipped"));
                continue;
            }
            let email = normalize_email(inv.email.as_deref().unwrap_or_default());
            if email.is_empty() {
                tally.anomaly(format!("{inv_label}: no e-mail; skipped"));
                continue;
            }
            let role = one_of(
                inv.role.as_deref(),
                &INVITE_ROLES,
                "member",
                "role",
                &inv_label,
                tally,
            );
            let status = one_of(
                inv.status.as_deref(),
                &INVITE_STATUSES,
                "pending",
                "status",
                &inv_label,
                tally,
            );
            // One pending invite per address and team (the table's partial unique index).
            if status == "pending" && !pending.insert(email.clone()) {
                tally.anomaly(format!(
                    "{inv_label}: a second pending invite for {email}; skipped"
                ));
                continue;
            }
            let invited_by = user_ref(inv.invited_by, "invitedBy", &inv_label, known, tally);
            let invited_at = optional_ts(inv.invited_at.as_ref(), "invitedAt", &inv_label, tally)
                .unwrap_or(created_at);
            crate::db!(conn, |c| {
                diesel::insert_into(group_invites::table)
                    .values((
                        group_invites::id.eq(&invite_id),
                        group_invites::group_id.eq(&id),
                        group_invites::email.eq(&email),
                        group_invites::role.eq(&role),
                        group_invites::invited_by.eq(&invited_by),
                        group_invites::invited_at.eq(invited_at),
                        group_invites::status.eq(&status),
                    ))
                    .execute(c)
                    .await
            })
            .map_err(|e| fail()(e.into()))?;
            known.invites.insert(invite_id);
        }
        known.groups.insert(id);
        tally.imported += 1;
    }
    Ok(())
}
