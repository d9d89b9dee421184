//! `flux migrate import-json DIR`: the original Node services' JSON files into flux's database
//! (CONTRACT §15.1 shapes, §15.3 mapping).
//!
//! - Everything runs in one transaction: a failure leaves the database as it was, and `--dry-run`
//!   does the same work and rolls it back, so its counts and anomalies are exactly those of a real
//!   run.
//! - Idempotent: a record whose legacy id is already stored is left alone (with its members,
//!   invites and participants), so a second run changes nothing, and passwords rehashed at login
//!   since the first run are not put back.
//! - Bad data is an anomaly, never fatal: the record (or the reference) is skipped or given a
//!   default, and the report says which and why.

mod channels;
mod files;
mod messages;
mod projects;
pub mod source;
mod teams;
mod users;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde_json::Value;

use crate::config::Settings;
use crate::db::schema::{
    conversations, files as files_t, group_invites, groups, messages as messages_t,
    projects as projects_t, users as users_t,
};
use crate::db::{Conn, Db, DbError, DbOptions, Schema, Timestamp};
use source::{Records, Source, FILES};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {reason}", dir.display())]
    Dir { dir: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error(
        "the schema of {target} is not up to date ({pending} pending migration(s)); run `flux migrate run` first"
    )]
    NotMigrated { target: String, pending: usize },
    #[error("{context}: {source}")]
    Write {
        context: String,
        #[source]
        source: DbError,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What happened to one legacy file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub name: &'static str,
    /// `None` when the file does not exist.
    pub tally: Option<Tally>,
}

/// Counts of one file. Every record is exactly one of imported, already present or rejected;
/// anomalies also cover fixed-up fields and skipped members of imported records.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub records: usize,
    pub imported: usize,
    pub existing: usize,
    pub rejected: usize,
    pub anomalies: Vec<String>,
    /// Side effects worth telling (e.g. direct conversations created).
    pub notes: Vec<String>,
}

impl Tally {
    fn anomaly(&mut self, text: impl Into<String>) {
        self.anomalies.push(text.into());
    }

    pub(super) fn reject(&mut self, text: impl fmt::Display) {
        self.rejected += 1;
        self.anomalies.push(format!("{text}; not imported"));
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(t) = &self.tally else {
            return write!(f, "{}.json: not found, skipped", self.name);
        };
        write!(
            f,
            "{}.json: {} record(s): {} imported, {} already present, {} rejected; {} anomal{}",
            self.name,
            t.records,
            t.imported,
            t.existing,
            t.rejected,
            t.anomalies.len(),
            if t.anomalies.len() == 1 { "y" } else { "ies" }
        )?;
        for note in &t.notes {
            write!(f, "\n    note: {note}")?;
        }
        for a in &t.anomalies {
            write!(f, "\n  - {a}")?;
        }
        Ok(())
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub dry_run: bool,
    pub files: Vec<FileReport>,
}

impl Summary {
    pub fn anomalies(&self) -> usize {
        self.tallies().map(|t| t.anomalies.len()).sum()
    }

    fn tallies(&self) -> impl Iterator<Item = &Tally> {
        self.files.iter().filter_map(|f| f.tally.as_ref())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = |get: fn(&Tally) -> usize| self.tallies().map(get).sum::<usize>();
        let missing: Vec<String> = self
            .files
            .iter()
            .filter(|r| r.tally.is_none())
            .map(|r| format!("{}.json", r.name))
            .collect();
        write!(
            f,
            "{}: {} imported, {} already present, {} rejected, {} anomal{}",
            if self.dry_run {
                "dry run, nothing written"
            } else {
                "import complete"
            },
            sum(|t| t.imported),
            sum(|t| t.existing),
            sum(|t| t.rejected),
            self.anomalies(),
            if self.anomalies() == 1 { "y" } else { "ies" }
        )?;
        if !missing.is_empty() {
            write!(f, "; not found: {}", missing.join(", "))?;
        }
        Ok(())
    }
}

/// Opens the database ([`crate::db::open`]). Pending migrations are applied where `flux serve`
/// would apply them itself (development SQLite), except in a dry run, which writes nothing; anywhere
/// else they are an error telling to run `flux migrate run`. Returns the names of the migrations
/// applied.
pub async fn connect(settings: &Settings, dry_run: bool) -> Result<(Db, Vec<String>), ImportError> {
    let schema = match Schema::on_start(settings) {
        Schema::Migrate if !dry_run => Schema::Migrate,
        _ => Schema::RequireCurrent,
    };
    match crate::db::open(&DbOptions::from(&settings.database), schema).await {
        Ok(opened) => Ok(opened),
        Err(DbError::SchemaBehind { pending }) => Err(ImportError::NotMigrated {
            target: crate::config::redact_url(&settings.database.url),
            pending: pending.len(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Why the import transaction stopped.
enum TxEnd {
    /// A dry run finished: roll back, keep the report.
    DryRun(Summary),
    Failed(ImportError),
}

impl From<diesel::result::Error> for TxEnd {
    fn from(e: diesel::result::Error) -> Self {
        TxEnd::Failed(ImportError::Db(e.into()))
    }
}

impl From<DbError> for TxEnd {
    fn from(e: DbError) -> Self {
        TxEnd::Failed(e.into())
    }
}

impl From<ImportError> for TxEnd {
    fn from(e: ImportError) -> Self {
        TxEnd::Failed(e)
    }
}

/// Reads and parses every legacy file of `dir`: malformed input fails here, before any connection
/// or write.
pub fn read(dir: &Path) -> Result<Source, ImportError> {
    Source::read(dir)
}

/// Imports `source` in one transaction (rolled back when `dry_run`). `progress` sees each file's
/// report as soon as that file is done.
pub async fn run(
    db: &Db,
    mut source: Source,
    dry_run: bool,
    progress: &mut (dyn FnMut(&FileReport) + Send),
) -> Result<Summary, ImportError> {
    let outcome = db
        .transaction(async move |mut conn| {
            let mut known = Known::load(&mut conn).await?;
            let mut summary = Summary {
                dry_run,
                files: Vec::new(),
            };
            for name in FILES {
                let tally = match source.take(name) {
                    Records::Missing => None,
                    Records::Found(records) => {
                        let mut tally = Tally {
                            records: records.len(),
                            ..Tally::default()
                        };
                        let (conn, known, t) = (&mut conn, &mut known, &mut tally);
                        match name {
                            "users" => users::import(conn, known, records, t).await?,
                            "teams" => teams::import(conn, known, records, t).await?,
                            "channels" => channels::import(conn, known, records, t).await?,
                            "projects" => projects::import(conn, known, records, t).await?,
                            "files" => files::import(conn, known, records, t).await?,
                            _ => messages::import(conn, known, records, t).await?,
                        }
                        Some(tally)
                    }
                };
                let report = FileReport { name, tally };
                progress(&report);
                summary.files.push(report);
            }
            if dry_run {
                Err(TxEnd::DryRun(summary))
            } else {
                Ok(summary)
            }
        })
        .await;
    match outcome {
        Ok(summary) | Err(TxEnd::DryRun(summary)) => Ok(summary),
        Err(TxEnd::Failed(e)) => Err(e),
    }
}

/// A required name of at most `max` characters (teams, projects); otherwise the record is rejected.
fn required_name(
    name: Option<String>,
    max: usize,
    label: &str,
    tally: &mut Tally,
) -> Option<String> {
    let Some(name) = non_blank(name) else {
        tally.reject(format!("{label}: no name"));
        return None;
    };
    if name.chars().count() > max {
        tally.reject(format!("{label}: name longer than {max} characters"));
        return None;
    }
    Some(name)
}

/// Ids already stored, plus those imported so far in this run: what references may point at.
#[derive(Debug, Default)]
struct Known {
    users: HashSet<String>,
    /// Lower-cased e-mail → user id.
    emails: HashMap<String, String>,
    google_subs: HashSet<String>,
    groups: HashSet<String>,
    invites: HashSet<String>,
    projects: HashSet<String>,
    conversations: HashSet<String>,
    files: HashSet<String>,
    messages: HashSet<String>,
}

impl Known {
    async fn load(conn: &mut Conn<'_>) -> Result<Known, DbError> {
        let users: Vec<(String, String, Option<String>)> = crate::db!(conn, |c| {
            users_t::table
                .select((users_t::id, users_t::email, users_t::google_sub))
                .load(c)
                .await
        })?;
        let mut known = Known::default();
        for (id, email, sub) in users {
            known.emails.insert(email, id.clone());
            known.google_subs.extend(sub);
            known.users.insert(id);
        }
        known.groups = crate::db!(conn, |c| { groups::table.select(groups::id).load(c).await })?
            .into_iter()
            .collect();
        known.invites = crate::db!(conn, |c| {
            group_invites::table.select(group_invites::id).load(c).await
        })?
        .into_iter()
        .collect();
        known.projects = crate::db!(conn, |c| {
            projects_t::table.select(projects_t::id).load(c).await
        })?
        .into_iter()
        .collect();
        known.conversations = crate::db!(conn, |c| {
            conversations::table.select(conversations::id).load(c).await
        })?
        .into_iter()
        .collect();
        known.files = crate::db!(conn, |c| {
            files_t::table.select(files_t::id).load(c).await
        })?
        .into_iter()
        .collect();
        known.messages = crate::db!(conn, |c| {
            messages_t::table.select(messages_t::id).load(c).await
        })?
        .into_iter()
        .collect();
        Ok(known)
    }
}

/// Turns a storage error of one record into an import error naming the file and the record.
fn write_failed(file: &str, what: &str, id: &str) -> impl FnOnce(DbError) -> ImportError {
    let context = format!("{file}.json: cannot store {what} {id:?}");
    move |source| ImportError::Write { context, source }
}

/// A required timestamp: missing or unreadable is an anomaly, and the record gets the current time.
fn required_ts(value: Option<&Value>, field: &str, label: &str, tally: &mut Tally) -> Timestamp {
    match value {
        None | Some(Value::Null) => {
            tally.anomaly(format!("{label}: {field} missing; set to now"));
            crate::db::now()
        }
        Some(v) => optional_ts(Some(v), field, label, tally).unwrap_or_else(crate::db::now),
    }
}

/// An optional timestamp: absent is `None`; unreadable is an anomaly and the current time.
fn optional_ts(
    value: Option<&Value>,
    field: &str,
    label: &str,
    tally: &mut Tally,
) -> Option<Timestamp> {
    match value {
        None | Some(Value::Null) => None,
        Some(v) => Some(source::timestamp(v).unwrap_or_else(|| {
            tally.anomaly(format!(
                "{label}: {field} {v} is not a timestamp; set to now"
            ));
            crate::db::now()
        })),
    }
}

/// One of `allowed`, or `default` with an anomaly when the value is something else.
fn one_of(
    value: Option<&str>,
    allowed: &[&str],
    default: &'static str,
    field: &str,
    label: &str,
    tally: &mut Tally,
) -> String {
    match value {
        None => default.to_owned(),
        Some(v) if allowed.contains(&v) => v.to_owned(),
        Some(v) => {
            tally.anomaly(format!(
                "{label}: invalid {field} {v:?}; set to {default:?}"
            ));
            default.to_owned()
        }
    }
}

/// Text that is blank after trimming counts as absent.
fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

const MEMBER_ROLES: [&str; 3] = ["owner", "admin", "member"];

/// A member of a team or project, checked.
struct Member {
    user_id: String,
    role: String,
    joined_at: Timestamp,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyMember {
    user_id: source::LegacyId,
    role: Option<String>,
    joined_at: Option<Value>,
}

/// The usable members of `members[]`: unknown users and repeated entries are skipped and reported;
/// a missing `joinedAt` is the parent's creation time.
fn members(
    list: Option<Vec<Value>>,
    parent_created: Timestamp,
    label: &str,
    known: &Known,
    tally: &mut Tally,
) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for (i, value) in list.unwrap_or_default().into_iter().enumerate() {
        let m: LegacyMember = match source::record(value) {
            Ok(m) => m,
            Err(e) => {
                tally.anomaly(format!("{label}: member #{}: {e}; skipped", i + 1));
                continue;
            }
        };
        let user_id = m.user_id.0;
        if !known.users.contains(&user_id) {
            tally.anomaly(format!(
                "{label}: member {user_id:?} is not a known user; member skipped"
            ));
            continue;
        }
        if out.iter().any(|o| o.user_id == user_id) {
            tally.anomaly(format!(
                "{label}: member {user_id:?} listed twice; the first entry wins"
            ));
            continue;
        }
        let member_label = format!("{label}: member {user_id:?}");
        let role = one_of(
            m.role.as_deref(),
            &MEMBER_ROLES,
            "member",
            "role",
            &member_label,
            tally,
        );
        let joined_at = optional_ts(m.joined_at.as_ref(), "joinedAt", &member_label, tally)
            .unwrap_or(parent_created);
        out.push(Member {
            user_id,
            role,
            joined_at,
        });
    }
    out
}

/// A user reference that may be dropped (`createdBy`, `invitedBy`): unknown is an anomaly and `None`.
fn user_ref(
    id: Option<source::LegacyId>,
    field: &str,
    label: &str,
    known: &Known,
    tally: &mut Tally,
) -> Option<String> {
    let id = id?.0;
    if known.users.contains(&id) {
        Some(id)
    } else {
        tally.anomaly(format!(
            "{label}: {field} {id:?} is not a known user; left empty"
        ));
        None
    }
}
