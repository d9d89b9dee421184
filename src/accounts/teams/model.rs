//! Stored rows and wire shapes of teams and organizations (CONTRACT §5, §6).

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{group_invites, group_members, groups};
use crate::db::Timestamp;

/// Legacy "team" and "organization" are one stored record (CONTRACT §5); `kind` tells them apart.
pub const KIND_TEAM: &str = "team";
pub const KIND_ORGANIZATION: &str = "organization";

pub const ROLE_OWNER: &str = "owner";
pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_MEMBER: &str = "member";

/// Longest team or organization name (the column's CHECK).
pub const MAX_NAME_CHARS: usize = 255;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = groups)]
pub struct GroupRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = group_members)]
pub struct MemberRow {
    pub group_id: String,
    pub user_id: String,
    pub role: String,
    pub joined_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = group_invites)]
pub struct InviteRow {
    pub id: String,
    pub group_id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub invited_at: Timestamp,
    pub status: String,
    pub responded_at: Option<Timestamp>,
    /// The inviter's note (organization invites).
    pub message: Option<String>,
}

impl MemberRow {
    /// A team membership as [`crate::membership`] found it.
    pub fn of(group_id: &str, m: crate::membership::Member) -> MemberRow {
        MemberRow {
            group_id: group_id.to_owned(),
            user_id: m.user_id,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

impl GroupRow {
    /// Owner, or the creator of an organization: the original made organization creators `admin`,
    /// which left nobody able to change roles (CONTRACT §14.2), so that admin counts as an owner.
    pub fn is_owner_equivalent(&self, member: &MemberRow) -> bool {
        member.role == ROLE_OWNER
            || (self.kind == KIND_ORGANIZATION
                && member.role == ROLE_ADMIN
                && self.created_by.as_deref() == Some(member.user_id.as_str()))
    }

    pub fn can_manage(&self, member: &MemberRow) -> bool {
        member.role == ROLE_ADMIN || self.is_owner_equivalent(member)
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    pub user_id: String,
    pub role: String,
    pub joined_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamInvite {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub invited_at: Timestamp,
    pub status: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub members: Vec<TeamMember>,
    pub invites: Vec<TeamInvite>,
}

/// CONTRACT §5 OrgSummary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub role: String,
    pub created_at: Timestamp,
    pub member_count: i64,
}

impl From<MemberRow> for TeamMember {
    fn from(m: MemberRow) -> Self {
        TeamMember {
            user_id: m.user_id,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

impl From<InviteRow> for TeamInvite {
    fn from(i: InviteRow) -> Self {
        TeamInvite {
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            invited_at: i.invited_at,
            status: i.status,
        }
    }
}

/// A team as its `viewer` may see it: pending invite e-mails only for owners and admins
/// (CONTRACT §14.2: any member saw them in the original).
pub fn team_view(
    group: GroupRow,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
    viewer: &str,
) -> Team {
    let sees_invites = members
        .iter()
        .find(|m| m.user_id == viewer)
        .is_some_and(|m| group.can_manage(m));
    Team {
        id: group.id,
        name: group.name,
        description: group.description.unwrap_or_default(),
        created_by: group.created_by,
        created_at: group.created_at,
        updated_at: group.updated_at,
        members: members.into_iter().map(TeamMember::from).collect(),
        invites: if sees_invites {
            invites.into_iter().map(TeamInvite::from).collect()
        } else {
            Vec::new()
        },
    }
}
