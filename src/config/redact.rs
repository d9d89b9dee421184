//! The one URL redactor: every database or Redis URL that reaches a log line or an error goes
//! through [`redact_url`].

/// Byte range of the authority (`user:pass@host:port`) in a `scheme://authority/path?query` URL.
fn authority_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let len = url[start..].find(['/', '?']).unwrap_or(url.len() - start);
    Some((start, start + len))
}

/// The URL with any password replaced by `***`: the userinfo's (`user:pass@`, the last `@` ends it,
/// so a password holding `@` is hidden whole) and a `password=` query parameter, which
/// tokio-postgres also accepts.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some((start, end)) = authority_range(url) {
        let authority = &url[start..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                out = format!("{}***{}", &url[..start + colon + 1], &url[start + at..]);
            }
        }
    }
    let mut from = 0;
    while let Some(found) = out[from..].find("password=") {
        let pos = from + found;
        let value_start = pos + "password=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        // Only a parameter name, not `xpassword=`.
        let starts_param = pos == 0 || matches!(out.as_bytes()[pos - 1], b'?' | b'&');
        if starts_param {
            out.replace_range(value_start..value_end, "***");
            from = value_start + 3;
        } else {
            from = value_start;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://flux:hunter2@db:5432/flux"),
            "postgres://flux:***@db:5432/flux"
        );
        assert_eq!(
            redact_url("postgres://flux:s3cr@t@db.example:5432/flux"),
            "postgres://flux:***@db.example:5432/flux"
        );
        assert_eq!(redact_url("postgres://flux@h/db"), "postgres://flux@h/db");
        assert_eq!(redact_url("sqlite://data/flux.db"), "sqlite://data/flux.db");
        assert_eq!(redact_url("redis://:pw@r:6379/0"), "redis://:***@r:6379/0");
        // Issue 10 §7: the start-up line used a redactor that missed this one.
        assert_eq!(
            redact_url("postgres://h/db?user=a&password=b&x=1"),
            "postgres://h/db?user=a&password=***&x=1"
        );
        assert_eq!(
            redact_url("postgres://u:p@h/db?password=b"),
            "postgres://u:***@h/db?password=***"
        );
    }
}
