//! Checks of what clients send, shared by every module: text fields, names and descriptions, e-mail
//! addresses, ids. Each failure is a clear 400 in the route's legacy wording, never a 500.

use actix_web::http::StatusCode;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// Longest user name (the column's CHECK).
pub const MAX_USER_NAME_CHARS: usize = 255;
/// Longest e-mail address (RFC 5321).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Whether an id from a path, query or body can be looked up at all. PostgreSQL refuses text with a
/// NUL byte (an error, not "no row"), so such ids are treated as unknown before reaching the store.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 512 && !id.contains('\0')
}

/// Whether any string of a JSON value (object keys included) holds a NUL: the socket events'
/// counterpart of the HTTP rule in `web::nul`.
pub fn has_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A validator failure: `{"error", "field"}` as the legacy validators, plus `message` with the same
/// text so the frontend can show it (CONTRACT §13 #12).
pub fn field_error(text: &str, field: &str) -> ApiError {
    ApiError::with_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidInput,
        json!({ "error": text, "field": field, "message": text }),
    )
}

/// Text fields may not carry NUL bytes (PostgreSQL cannot store them).
pub fn nul_text() -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidInput,
        "Text must not contain NUL characters",
    )
}

/// Trimmed text, `None` when empty; 400 with `too_long` when over `max` characters.
pub fn text_field(
    value: Option<&str>,
    max: usize,
    too_long: &str,
) -> Result<Option<String>, ApiError> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(ApiError::bad_request(ErrorCode::InvalidInput, too_long));
    }
    if v.contains('\0') {
        return Err(nul_text());
    }
    Ok(Some(v.to_owned()))
}

/// A name the route requires: `{what} name is required` when missing or blank.
pub fn required_name(value: Option<&str>, max: usize, what: &str) -> Result<String, ApiError> {
    text_field(value, max, &name_too_long(what, max))?.ok_or_else(|| {
        ApiError::bad_request(ErrorCode::MissingField, format!("{what} name is required"))
    })
}

/// A description on create: trimmed, `None` when blank.
pub fn description_field(value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    text_field(value, max, &description_too_long(max))
}

/// A description on update: absent keeps the old one, an empty string clears it (CONTRACT §6).
pub fn description_update(value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    value
        .map(|d| description_field(Some(d), max).map(Option::unwrap_or_default))
        .transpose()
}

pub fn name_too_long(what: &str, max: usize) -> String {
    format!("{what} name must be at most {max} characters")
}

pub fn description_too_long(max: usize) -> String {
    format!("Description must be at most {max} characters")
}

/// Trimmed and lower-cased: the one form e-mails are stored and looked up in.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A pragmatic `validator.isEmail`: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(email: &str) -> bool {
    if email.len() > MAX_EMAIL_CHARS || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// Normalised and plausibly an address (one `@` with text on both sides, no spaces): the looser
/// check team invites have always used.
pub fn plausible_email(raw: &str) -> Option<String> {
    let email = normalize_email(raw);
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.chars().count() <= MAX_EMAIL_CHARS;
    plausible.then_some(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_email("ada@example.com"));
        assert!(is_email("a.b+c@sub.example.co"));
        assert!(!is_email("ada@example"));
        assert!(!is_email("ada example@x.com"));
        assert!(!is_email("@x.com"));
        assert!(!is_email("a@b@c.com"));
        assert!(!is_email("a@x..com"));
        assert!(!is_email("'; DROP TABLE users; --@x.com"));
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
        assert_eq!(plausible_email(" A@b "), Some("a@b".into()));
        assert_eq!(plausible_email("a b@c"), None);
        assert_eq!(plausible_email("@c"), None);
    }

    #[test]
    fn text_fields() {
        assert_eq!(
            text_field(Some("  x "), 5, "long").unwrap(),
            Some("x".into())
        );
        assert_eq!(text_field(Some("   "), 5, "long").unwrap(), None);
        let e = text_field(Some("abcdef"), 5, "too long").unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.body()["message"], "too long");
        assert_eq!(text_field(Some("a\0b"), 5, "x").unwrap_err().status(), 400);
        let e = required_name(None, 5, "Team").unwrap_err();
        assert_eq!(e.body()["message"], "Team name is required");
        assert_eq!(
            description_update(Some(""), 5).unwrap(),
            Some(String::new())
        );
        assert_eq!(description_update(None, 5).unwrap(), None);
        assert!(!usable_id("a\0"));
        assert!(!usable_id(""));
        assert!(usable_id("abc"));
    }

    #[test]
    fn nul_anywhere_in_json() {
        assert!(has_nul(&json!({"a": [1, {"b": "x\u{0}"}]})));
        assert!(has_nul(&json!({"k\u{0}": 1})));
        assert!(!has_nul(&json!({"a": [1, {"b": "x"}], "c": null})));
    }
}
