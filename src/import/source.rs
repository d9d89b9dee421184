//! Reading the legacy JSON files (CONTRACT §15.1): each `<name>.json` holds `{ "<name>": [ … ] }`.
//!
//! Syntax errors are fatal (nothing has been written yet, and a half-read file would import half a
//! data set); a record of the wrong shape is only that record's anomaly.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{ImportError, Tally};
use crate::db::Timestamp;

/// The legacy files, in the order they are imported (references point backwards in this order).
pub const FILES: [&str; 6] = [
    "users", "teams", "channels", "projects", "files", "messages",
];

/// One legacy file: absent, or its records as raw JSON values.
#[derive(Debug)]
pub enum Records {
    Missing,
    Found(Vec<Value>),
}

/// Every legacy file of a directory, parsed.
#[derive(Debug)]
pub struct Source {
    pub dir: PathBuf,
    pub files: Vec<(&'static str, Records)>,
}

impl Source {
    /// Reads and parses every file before anything is written.
    pub fn read(dir: &Path) -> Result<Source, ImportError> {
        let meta = std::fs::metadata(dir).map_err(|e| ImportError::Dir {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        if !meta.is_dir() {
            return Err(ImportError::Dir {
                dir: dir.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        // Listing it proves it is readable, so a permission problem is not mistaken for "no files".
        std::fs::read_dir(dir).map_err(|e| ImportError::Dir {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut files = Vec::new();
        for name in FILES {
            files.push((name, read_file(dir, name)?));
        }
        Ok(Source {
            dir: dir.to_path_buf(),
            files,
        })
    }

    pub fn take(&mut self, name: &str) -> Records {
        self.files
            .iter_mut()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| std::mem::replace(r, Records::Missing))
            .unwrap_or(Records::Missing)
    }
}

fn read_file(dir: &Path, name: &'static str) -> Result<Records, ImportError> {
    let path = dir.join(format!("{name}.json"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Records::Missing),
        Err(e) => {
            return Err(ImportError::File {
                path,
                reason: e.to_string(),
            })
        }
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| ImportError::File {
        path: path.clone(),
        // serde_json's text ends with "at line L column C".
        reason: format!("malformed JSON: {e}"),
    })?;
    let records = match value {
        Value::Object(mut map) => match map.remove(name) {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(ImportError::File {
                    path,
                    reason: format!("\"{name}\" is not an array"),
                })
            }
            None => {
                return Err(ImportError::File {
                    path,
                    reason: format!("expected an object {{\"{name}\": [ … ]}}"),
                })
            }
        },
        // Some exports wrote the bare list; nothing is ambiguous about it.
        Value::Array(items) => items,
        _ => {
            return Err(ImportError::File {
                path,
                reason: format!("expected an object {{\"{name}\": [ … ]}}"),
            })
        }
    };
    Ok(Records::Found(records))
}

/// A record of type `T`, or why it is not one.
/// One record of a file that passed the checks every entity shares.
pub struct Admitted<T> {
    /// Its position in the file (0-based).
    pub index: usize,
    pub id: String,
    /// How anomalies name it, e.g. `user "17"`.
    pub label: String,
    pub record: T,
}

/// The records of one file that read as `T`, have a usable id not repeated in the file, and are not
/// in flux already (`existing`); the others are tallied as rejected or already present.
pub fn admit<T: DeserializeOwned>(
    records: Vec<Value>,
    kind: &str,
    id_of: impl Fn(&T) -> &LegacyId,
    existing: &std::collections::HashSet<String>,
    tally: &mut Tally,
) -> Vec<Admitted<T>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(records.len());
    for (index, value) in records.into_iter().enumerate() {
        let record: T = match self::record(value) {
            Ok(r) => r,
            Err(e) => {
                tally.reject(format!("record #{}: {e}", index + 1));
                continue;
            }
        };
        let id = id_of(&record).0.clone();
        if let Some(problem) = id_problem(&id) {
            tally.reject(format!("record #{}: {problem}", index + 1));
            continue;
        }
        let label = format!("{kind} {id:?}");
        if !seen.insert(id.clone()) {
            tally.reject(format!("{label}: duplicate id (the first record wins)"));
            continue;
        }
        if existing.contains(&id) {
            tally.existing += 1;
            continue;
        }
        out.push(Admitted {
            index,
            id,
            label,
            record,
        });
    }
    out
}

pub fn record<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("unreadable record: {e}"))
}

/// A legacy id: text (`"<ms>-<hex>"`, UUIDs) or an integer; stored as text, unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LegacyId(pub String);

impl<'de> Deserialize<'de> for LegacyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(LegacyId(s)),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(LegacyId(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected an id (text or integer), found {other}"
            ))),
        }
    }
}

/// Longest id the API looks up (`messaging::chat::MAX_ID_CHARS`); a longer one could be stored but
/// never reached.
const MAX_ID_CHARS: usize = 200;

/// Why an id cannot be used as a key, if it cannot.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("empty id")
    } else if id.chars().count() > MAX_ID_CHARS {
        Some("id longer than 200 characters")
    } else if id.contains('\0') {
        Some("id contains a NUL character")
    } else {
        None
    }
}

/// A legacy timestamp: an ISO 8601 string (`Date.toISOString()`), or epoch milliseconds.
pub fn timestamp(value: &Value) -> Option<Timestamp> {
    match value {
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc).into());
            }
            // Without a zone the legacy services meant UTC (they only ever wrote toISOString()).
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().into())
        }
        Value::Number(n) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .map(Timestamp::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        let iso = timestamp(&json!("2024-03-01T10:20:30.456Z")).unwrap();
        assert_eq!(iso.to_iso_millis(), "2024-03-01T10:20:30.456Z");
        let offset = timestamp(&json!("2024-03-01T12:20:30+02:00")).unwrap();
        assert_eq!(offset.to_iso_millis(), "2024-03-01T10:20:30.000Z");
        let naive = timestamp(&json!("2024-03-01T10:20:30.5")).unwrap();
        assert_eq!(naive.to_iso_millis(), "2024-03-01T10:20:30.500Z");
        let millis = timestamp(&json!(1_709_288_430_456_i64)).unwrap();
        assert_eq!(millis.to_iso_millis(), "2024-03-01T10:20:30.456Z");
        assert!(timestamp(&json!("yesterday")).is_none());
        assert!(timestamp(&json!(null)).is_none());
        assert!(timestamp(&json!(true)).is_none());
    }

    #[test]
    fn ids() {
        let id: LegacyId = serde_json::from_value(json!(42)).unwrap();
        assert_eq!(id.0, "42");
        let id: LegacyId = serde_json::from_value(json!("1700000000000-ab12")).unwrap();
        assert_eq!(id.0, "1700000000000-ab12");
        assert!(serde_json::from_value::<LegacyId>(json!(1.5)).is_err());
        assert!(serde_json::from_value::<LegacyId>(json!(null)).is_err());
        assert_eq!(id_problem(""), Some("empty id"));
        assert_eq!(
            id_problem(&"x".repeat(201)),
            Some("id longer than 200 characters")
        );
        assert_eq!(id_problem("u1"), None);
    }

    #[test]
    fn file_shapes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.json"), r#"{"users":[{"id":"u1"}]}"#).unwrap();
        std::fs::write(dir.path().join("teams.json"), r#"[{"id":"t1"}]"#).unwrap();
        std::fs::write(dir.path().join("files.json"), r#"{"files":[]}"#).unwrap();
        let mut source = Source::read(dir.path()).unwrap();
        assert!(matches!(source.take("users"), Records::Found(v) if v.len() == 1));
        assert!(matches!(source.take("teams"), Records::Found(v) if v.len() == 1));
        assert!(matches!(source.take("files"), Records::Found(v) if v.is_empty()));
        assert!(matches!(source.take("messages"), Records::Missing));

        std::fs::write(
            dir.path().join("channels.json"),
            "{\"channels\": [\n  {\"id\": 1,}\n]}",
        )
        .unwrap();
        let err = Source::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("channels.json"), "{err}");
        assert!(err.contains("line 2"), "{err}");

        std::fs::write(dir.path().join("channels.json"), r#"{"chanels":[]}"#).unwrap();
        let err = Source::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("channels.json") && err.contains("expected an object"),
            "{err}"
        );

        let missing = dir.path().join("nope");
        let err = Source::read(&missing).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
