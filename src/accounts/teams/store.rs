//! Queries of teams and organizations (the `groups`, `group_members` and `group_invites` tables).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::{GroupRow, InviteRow, MemberRow, ROLE_OWNER};
use crate::db::schema::{group_invites, group_members, groups, users};
use crate::db::{Conn, DbError, Timestamp};
use crate::input::usable_id;
use crate::web::paging::Page;

pub async fn group(conn: &mut Conn<'_>, id: &str) -> Result<Option<GroupRow>, DbError> {
    if !usable_id(id) {
        return Ok(None);
    }
    Ok(crate::db!(conn, |c| {
        groups::table
            .find(id)
            .select(GroupRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

/// Takes the group's row lock for the rest of the transaction (a no-op update): on PostgreSQL two
/// concurrent role changes would otherwise both see two owners and leave none; SQLite transactions
/// already hold the write lock from `BEGIN IMMEDIATE`.
pub async fn lock_group(conn: &mut Conn<'_>, id: &str) -> Result<(), DbError> {
    if !usable_id(id) {
        return Ok(());
    }
    crate::db!(conn, |c| {
        diesel::update(groups::table.find(id))
            .set(groups::id.eq(groups::id))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Members of each group, oldest first.
pub async fn members_of(
    conn: &mut Conn<'_>,
    group_ids: &[String],
) -> Result<Vec<MemberRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::group_id.eq_any(group_ids))
            .order((group_members::joined_at.asc(), group_members::user_id.asc()))
            .select(MemberRow::as_select())
            .load(c)
            .await
    })?)
}

pub async fn invites_of(
    conn: &mut Conn<'_>,
    group_ids: &[String],
) -> Result<Vec<InviteRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        group_invites::table
            .filter(group_invites::group_id.eq_any(group_ids))
            .order((group_invites::invited_at.asc(), group_invites::id.asc()))
            .select(InviteRow::as_select())
            .load(c)
            .await
    })?)
}

/// The groups `user_id` belongs to (teams and organizations alike), newest first, with the caller's role.
pub async fn groups_of(
    conn: &mut Conn<'_>,
    user_id: &str,
    page: Page,
) -> Result<Vec<(GroupRow, String)>, DbError> {
    Ok(crate::db!(conn, |c| {
        groups::table
            .inner_join(group_members::table)
            .filter(group_members::user_id.eq(user_id))
            .order((groups::created_at.desc(), groups::id.desc()))
            .limit(i64::from(page.limit))
            .offset(page.offset as i64)
            .select((GroupRow::as_select(), group_members::role))
            .load(c)
            .await
    })?)
}

/// Member counts of several groups in one query.
pub async fn member_counts(
    conn: &mut Conn<'_>,
    group_ids: &[String],
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::group_id.eq_any(group_ids))
            .group_by(group_members::group_id)
            .select((group_members::group_id, diesel::dsl::count_star()))
            .load(c)
            .await
    })?)
}

pub async fn member_count(conn: &mut Conn<'_>, group_id: &str) -> Result<i64, DbError> {
    Ok(crate::db!(conn, |c| {
        group_members::table
            .filter(group_members::group_id.eq(group_id))
            .count()
            .get_result(c)
            .await
    })?)
}

pub async fn insert_group(
    conn: &mut Conn<'_>,
    group: &GroupRow,
    creator: &MemberRow,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::insert_into(groups::table)
            .values(group.clone())
            .execute(c)
            .await
    })?;
    crate::db!(conn, |c| {
        diesel::insert_into(group_members::table)
            .values(creator.clone())
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn update_group(
    conn: &mut Conn<'_>,
    id: &str,
    name: &str,
    description: Option<&str>,
    now: Timestamp,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(groups::table.find(id))
            .set((
                groups::name.eq(name),
                groups::description.eq(description),
                groups::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn delete_group(conn: &mut Conn<'_>, id: &str) -> Result<usize, DbError> {
    Ok(crate::db!(conn, |c| {
        diesel::delete(groups::table.find(id)).execute(c).await
    })?)
}

/// The user's stored e-mail (lower-case), which invites are matched against.
pub async fn user_email(conn: &mut Conn<'_>, user_id: &str) -> Result<Option<String>, DbError> {
    Ok(crate::db!(conn, |c| {
        users::table
            .find(user_id)
            .select(users::email)
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn user_id_by_email(conn: &mut Conn<'_>, email: &str) -> Result<Option<String>, DbError> {
    Ok(crate::db!(conn, |c| {
        users::table
            .filter(users::email.eq(email))
            .select(users::id)
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn pending_invite(
    conn: &mut Conn<'_>,
    group_id: &str,
    email: &str,
) -> Result<Option<InviteRow>, DbError> {
    Ok(crate::db!(conn, |c| {
        group_invites::table
            .filter(group_invites::group_id.eq(group_id))
            .filter(group_invites::email.eq(email))
            .filter(group_invites::status.eq("pending"))
            .select(InviteRow::as_select())
            .first(c)
            .await
            .optional()
    })?)
}

pub async fn insert_invite(conn: &mut Conn<'_>, invite: &InviteRow) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::insert_into(group_invites::table)
            .values(invite.clone())
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Re-inviting a pending address refreshes that invite instead of stacking duplicates.
pub async fn refresh_invite(
    conn: &mut Conn<'_>,
    id: &str,
    role: &str,
    invited_by: &str,
    now: Timestamp,
    message: Option<&str>,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(group_invites::table.find(id))
            .set((
                group_invites::role.eq(role),
                group_invites::invited_by.eq(Some(invited_by)),
                group_invites::invited_at.eq(now),
                group_invites::message.eq(message),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn mark_invite_accepted(
    conn: &mut Conn<'_>,
    id: &str,
    now: Timestamp,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(group_invites::table.find(id))
            .set((
                group_invites::status.eq("accepted"),
                group_invites::responded_at.eq(Some(now)),
            ))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Adds a member; an existing membership is left as it is.
pub async fn add_member(conn: &mut Conn<'_>, member: &MemberRow) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::insert_into(group_members::table)
            .values(member.clone())
            .on_conflict((group_members::group_id, group_members::user_id))
            .do_nothing()
            .execute(c)
            .await
    })?;
    Ok(())
}

pub async fn remove_member(
    conn: &mut Conn<'_>,
    group_id: &str,
    user_id: &str,
) -> Result<usize, DbError> {
    Ok(crate::db!(conn, |c| {
        diesel::delete(group_members::table.find((group_id, user_id)))
            .execute(c)
            .await
    })?)
}

pub async fn set_role(
    conn: &mut Conn<'_>,
    group_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), DbError> {
    crate::db!(conn, |c| {
        diesel::update(group_members::table.find((group_id, user_id)))
            .set(group_members::role.eq(role))
            .execute(c)
            .await
    })?;
    Ok(())
}

/// How many members count as owners (owner-equivalent organization creators included).
pub async fn owner_count(conn: &mut Conn<'_>, group: &GroupRow) -> Result<usize, DbError> {
    let members = members_of(conn, std::slice::from_ref(&group.id)).await?;
    Ok(members
        .iter()
        .filter(|m| m.role == ROLE_OWNER || group.is_owner_equivalent(m))
        .count())
}
