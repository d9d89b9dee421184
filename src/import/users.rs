//! `users.json` → `users` (CONTRACT §15.3): legacy bcrypt hashes keep scheme `escaped_v1`, which
//! login verifies against the escaped password and rehashes to argon2id on first success.

use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, Admitted, LegacyId};
use super::{non_blank, one_of, optional_ts, required_ts, write_failed, ImportError, Known, Tally};
use crate::auth::model::NewUser;
use crate::auth::password::SCHEME_LEGACY;
use crate::db::schema::users;
use crate::db::{Conn, Json};
use crate::input::{is_email, normalize_email};

const USER_TYPES: [&str; 3] = ["client", "designer", "admin"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyUser {
    id: LegacyId,
    email: Option<String>,
    name: Option<String>,
    user_type: Option<String>,
    password: Option<String>,
    google_id: Option<LegacyId>,
    avatar: Option<String>,
    created_at: Option<Value>,
    updated_at: Option<Value>,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    for admitted in admit::<LegacyUser>(records, "user", |r| &r.id, &known.users, tally) {
        let Admitted {
            id,
            label,
            record: u,
            ..
        } = admitted;
        let email = normalize_email(u.email.as_deref().unwrap_or_default());
        if email.is_empty() {
            tally.reject(format!("{label}: no e-mail"));
            continue;
        }
        // Case-folded duplicates are reported, never merged: which account is the real one is a
        // decision for a person.
        if let Some(first) = known.emails.get(&email) {
            tally.reject(format!(
                "{label}: duplicate e-mail {email} (already used by user {first:?})"
            ));
            continue;
        }
        if !is_email(&email) {
            tally.anomaly(format!(
                "{label}: {email:?} is not a valid e-mail address; imported, but login will refuse it"
            ));
        }
        let name = match non_blank(u.name) {
            Some(n) => n,
            None => {
                let fallback = email.split('@').next().unwrap_or("user").to_owned();
                tally.anomaly(format!("{label}: no name; set to {fallback:?}"));
                fallback
            }
        };
        let user_type = one_of(
            u.user_type.as_deref(),
            &USER_TYPES,
            "client",
            "userType",
            &label,
            tally,
        );
        let password_hash = match non_blank(u.password) {
            Some(h) if h.starts_with("$2") => Some(h),
            Some(_) => {
                tally.anomaly(format!(
                    "{label}: password is not a bcrypt hash; imported without a password"
                ));
                None
            }
            None => None,
        };
        let google_sub = match u.google_id.map(|g| g.0).filter(|g| !g.is_empty()) {
            Some(sub) if known.google_subs.contains(&sub) => {
                tally.anomaly(format!(
                    "{label}: googleId {sub} already belongs to another user; imported without it"
                ));
                None
            }
            other => other,
        };
        let created_at = required_ts(u.created_at.as_ref(), "createdAt", &label, tally);
        let updated_at =
            optional_ts(u.updated_at.as_ref(), "updatedAt", &label, tally).unwrap_or(created_at);
        let row = NewUser {
            id: id.clone(),
            email: email.clone(),
            name,
            password_scheme: password_hash.as_ref().map(|_| SCHEME_LEGACY.to_owned()),
            password_hash,
            user_type,
            avatar_url: non_blank(u.avatar),
            preferences: Json(serde_json::json!({})),
            // Google verified the address of a Google account (as the Google sign-in route assumes).
            email_verified: google_sub.is_some(),
            google_sub: google_sub.clone(),
            is_active: true,
            created_at,
            updated_at,
        };
        crate::db!(conn, |c| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map_err(|e| write_failed("users", "user", &id)(e.into()))?;
        known.emails.insert(email, id.clone());
        known.google_subs.extend(google_sub);
        known.users.insert(id);
        tally.imported += 1;
    }
    Ok(())
}
