//! What a message may carry as attachments (issue 10 §6). Clients render an attachment's URLs as
//! links and images, so each must be a web address: `http(s)://…`, or a path under this server's
//! own `/uploads/` (what the upload routes answer). `javascript:`, `data:`, `file:` and the like
//! are refused. Who uploaded is the caller, whatever the payload says.

use serde_json::Value;

/// Longest URL accepted in an attachment.
const MAX_URL_BYTES: usize = 2048;
/// The path prefix of files this server stores (`GET /uploads/<name>`).
const OWN_UPLOADS: &str = "/uploads/";

/// Keys whose value a client may put in an `href` or `src`.
fn is_url_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("url") || k == "href" || k == "src" || k == "link"
}

/// An address a browser can only fetch or navigate to, never run.
pub fn safe_url(raw: &str) -> bool {
    if raw.len() > MAX_URL_BYTES || raw.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    if let Some(rest) = raw.strip_prefix(OWN_UPLOADS) {
        return !rest.is_empty() && !rest.split('/').any(|seg| seg == "..");
    }
    match url::Url::parse(raw) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

/// The attachments to store: every URL field checked, `uploadedBy` set to the caller, and the
/// legacy `path` (a server path in the original) dropped. `Err` names what was refused.
pub fn sanitize(items: Vec<Value>, caller: &str) -> Result<Vec<Value>, &'static str> {
    items
        .into_iter()
        .map(|mut item| {
            let Value::Object(map) = &mut item else {
                return Err("Attachments must be objects");
            };
            for (key, value) in map.iter() {
                if !is_url_key(key) {
                    continue;
                }
                match value {
                    Value::Null => {}
                    Value::String(s) if safe_url(s) => {}
                    _ => return Err("Attachment URLs must be http(s) or /uploads/ addresses"),
                }
            }
            map.remove("path");
            map.insert("uploadedBy".into(), Value::String(caller.to_owned()));
            Ok(item)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        assert!(safe_url("https://cdn.example/x.png"));
        assert!(safe_url("http://localhost:3001/uploads/a.png"));
        assert!(safe_url("/uploads/0190-abc.png"));
        for bad in [
            "javascript:alert(1)",
            " javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>",
            "file:///etc/passwd",
            "vbscript:x",
            "//evil.example/x",
            "/api/auth/logout-all",
            "/uploads/",
            "/uploads/../api",
            "https://",
            "java\tscript:alert(1)",
            "",
        ] {
            assert!(!safe_url(bad), "{bad}");
        }
    }

    #[test]
    fn uploader_is_the_caller() {
        let out = sanitize(
            vec![json!({"url": "/uploads/a.txt", "uploadedBy": "someone-else", "path": "/srv/x"})],
            "me",
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!({"url": "/uploads/a.txt", "uploadedBy": "me"})]
        );
        assert!(sanitize(vec![json!({"url": "javascript:alert(1)"})], "me").is_err());
        assert!(sanitize(vec![json!({"thumbnailUrl": 5})], "me").is_err());
    }
}
