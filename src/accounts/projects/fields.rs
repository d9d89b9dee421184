//! Reading the hand-checked JSON bodies of tasks and milestones: any subset of fields, each with its
//! own 400, so a status-only Kanban update and a full edit go through the same rules.

use actix_web::http::StatusCode;
use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};

pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_DESCRIPTION_CHARS: usize = 5000;

pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::message(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message)
}

/// The body as an object, or 400.
pub fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::message(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            "Request body must be a JSON object",
        )),
    }
}

/// A field that may be absent, `null` (cleared) or set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    pub fn set(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
}

/// A string field; a non-string value is a 400.
pub fn string(map: &Map<String, Value>, key: &str) -> Result<Field<String>, ApiError> {
    match map.get(key) {
        None => Ok(Field::Absent),
        Some(Value::Null) => Ok(Field::Null),
        Some(Value::String(s)) if s.contains('\0') => Err(invalid(format!("Invalid {key}"))),
        Some(Value::String(s)) => Ok(Field::Set(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

/// The title: required on create, optional on update, never blank, at most 500 characters.
pub fn title(
    map: &Map<String, Value>,
    required: bool,
    what: &str,
) -> Result<Option<String>, ApiError> {
    let missing = || {
        ApiError::message(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingField,
            format!("{what} title is required"),
        )
    };
    match string(map, "title")? {
        Field::Absent if !required => Ok(None),
        Field::Absent | Field::Null => Err(missing()),
        Field::Set(t) if t.trim().is_empty() => Err(missing()),
        Field::Set(t) if t.trim().chars().count() > MAX_TITLE_CHARS => Err(invalid(format!(
            "{what} title must be at most {MAX_TITLE_CHARS} characters"
        ))),
        Field::Set(t) => Ok(Some(t.trim().to_owned())),
    }
}

/// The description (`null` clears it to `""`).
pub fn description(map: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match string(map, "description")? {
        Field::Absent => Ok(None),
        Field::Null => Ok(Some(String::new())),
        Field::Set(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => Err(invalid(format!(
            "Description must be at most {MAX_DESCRIPTION_CHARS} characters"
        ))),
        Field::Set(d) => Ok(Some(d)),
    }
}

/// One of `allowed`, kept as sent; `null` counts as absent.
pub fn choice(
    map: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match string(map, key)? {
        Field::Absent | Field::Null => Ok(None),
        Field::Set(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
        Field::Set(_) => Err(invalid(format!(
            "Invalid {key}. Allowed: {}",
            allowed.join(", ")
        ))),
    }
}

/// Whether `text` is a calendar date (`2026-01-31`) or an RFC 3339 instant.
pub fn is_date(text: &str) -> bool {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || DateTime::parse_from_rfc3339(text).is_ok()
}

/// `dueDate`: a date or instant kept as sent, `null` or `""` clearing it.
pub fn due_date(map: &Map<String, Value>) -> Result<Field<String>, ApiError> {
    match string(map, "dueDate")? {
        Field::Set(d) if d.trim().is_empty() => Ok(Field::Null),
        Field::Set(d) if is_date(d.trim()) => Ok(Field::Set(d.trim().to_owned())),
        Field::Set(_) => Err(invalid("Invalid dueDate")),
        other => Ok(other),
    }
}

/// An optional user id (`assignedTo`), `null` or `""` clearing it.
pub fn user_ref(map: &Map<String, Value>, key: &str) -> Result<Field<String>, ApiError> {
    match string(map, key)? {
        Field::Set(u) if u.trim().is_empty() => Ok(Field::Null),
        Field::Set(u) if u.chars().count() > 200 => Err(invalid(format!("Invalid {key}"))),
        Field::Set(u) => Ok(Field::Set(u.trim().to_owned())),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        object(v).unwrap()
    }

    #[test]
    fn fields_follow_their_rules() {
        assert!(object(json!([1])).is_err());
        assert!(title(&map(json!({})), true, "Task").is_err());
        assert_eq!(title(&map(json!({})), false, "Task").unwrap(), None);
        assert!(title(&map(json!({"title": "  "})), false, "Task").is_err());
        assert!(title(&map(json!({"title": 3})), false, "Task").is_err());
        assert!(due_date(&map(json!({"dueDate": "2026-02-30"}))).is_err());
        assert_eq!(
            due_date(&map(json!({"dueDate": "2026-02-03"}))).unwrap(),
            Field::Set("2026-02-03".into())
        );
        assert!(due_date(&map(json!({"dueDate": "2026-02-03T10:00:00.000Z"}))).is_ok());
        assert!(user_ref(&map(json!({"assignedTo": 5})), "assignedTo").is_err());
        assert_eq!(
            user_ref(&map(json!({"assignedTo": null})), "assignedTo").unwrap(),
            Field::Null
        );
        assert!(choice(&map(json!({"status": "done"})), "status", &["todo"]).is_err());
    }
}
