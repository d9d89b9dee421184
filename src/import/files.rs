//! `files.json` → `files` (CONTRACT §15.3). Only the metadata moves: the bytes stay in the legacy
//! uploads folder, and are served once copied into flux's upload store under the same name
//! (`filename` is both `stored_name` and `storage_key`, as uploads record them).

use diesel_async::RunQueryDsl;
use serde::Deserialize;
use serde_json::Value;

use super::source::{admit, Admitted, LegacyId};
use super::{non_blank, optional_ts, required_ts, write_failed, ImportError, Known, Tally};
use crate::accounts::files::storage::is_stored_name;
use crate::accounts::files::store::FileRow;
use crate::db::schema::files;
use crate::db::{Conn, Json};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyFile {
    id: LegacyId,
    original_name: Option<String>,
    filename: Option<String>,
    size: Option<Value>,
    mimetype: Option<String>,
    uploaded_by: Option<LegacyId>,
    uploaded_at: Option<Value>,
    updated_at: Option<Value>,
    tags: Option<Value>,
    description: Option<String>,
    is_public: Option<bool>,
    project_id: Option<LegacyId>,
}

pub(super) async fn import(
    conn: &mut Conn<'_>,
    known: &mut Known,
    records: Vec<Value>,
    tally: &mut Tally,
) -> Result<(), ImportError> {
    let mut unservable = 0usize;
    for admitted in admit::<LegacyFile>(records, "file", |r| &r.id, &known.files, tally) {
        let Admitted {
            id,
            label,
            record: f,
            ..
        } = admitted;
        let Some(owner_id) = f
            .uploaded_by
            .map(|u| u.0)
            .filter(|u| known.users.contains(u))
        else {
            tally.reject(format!(
                "{label}: uploadedBy is missing or not a known user"
            ));
            continue;
        };
        let Some(stored_name) = non_blank(f.filename) else {
            tally.reject(format!("{label}: no filename"));
            continue;
        };
        if !is_stored_name(&stored_name) {
            unservable += 1;
            tally.anomaly(format!(
                "{label}: filename {stored_name:?} is not a name the upload store serves; imported, but downloads will fail until it is renamed"
            ));
        }
        let size = match f.size.as_ref().and_then(Value::as_i64) {
            Some(n) if n >= 0 => n,
            _ => {
                tally.anomaly(format!(
                    "{label}: size {} is not a byte count; set to 0",
                    f.size.unwrap_or(Value::Null)
                ));
                0
            }
        };
        let tags = match f.tags {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .into_iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
            Some(other) => {
                tally.anomaly(format!(
                    "{label}: tags {other} are not a list of texts; dropped"
                ));
                Vec::new()
            }
        };
        let project_id = match f.project_id.map(|p| p.0) {
            Some(p) if known.projects.contains(&p) => Some(p),
            Some(p) => {
                tally.anomaly(format!(
                    "{label}: projectId {p:?} is not a known project; left empty"
                ));
                None
            }
            None => None,
        };
        let created_at = required_ts(f.uploaded_at.as_ref(), "uploadedAt", &label, tally);
        let updated_at =
            optional_ts(f.updated_at.as_ref(), "updatedAt", &label, tally).unwrap_or(created_at);
        let row = FileRow {
            id: id.clone(),
            owner_id,
            project_id,
            original_name: non_blank(f.original_name).unwrap_or_else(|| stored_name.clone()),
            storage_key: stored_name.clone(),
            stored_name,
            size,
            mime_type: non_blank(f.mimetype)
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
            sniffed_type: None,
            description: f.description,
            tags: Json(tags),
            is_public: f.is_public.unwrap_or(false),
            created_at,
            updated_at,
        };
        crate::db!(conn, |c| {
            diesel::insert_into(files::table)
                .values(row.clone())
                .execute(c)
                .await
        })
        .map_err(|e| write_failed("files", "file", &id)(e.into()))?;
        known.files.insert(id);
        tally.imported += 1;
    }
    if tally.imported > unservable {
        tally.notes.push(
            "file contents are not copied: put the legacy uploads folder's files into flux's upload store (<data_dir>/uploads) under the same names".into(),
        );
    }
    Ok(())
}
