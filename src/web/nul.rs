//! One rule for NUL bytes, before any route or store sees a request: a NUL in the percent-decoded
//! path or query, in a JSON body (raw or escaped as `\u0000`, in any string) or in a urlencoded body
//! is a 400. PostgreSQL refuses such text with an error (a 500 if it got that far) and SQLite
//! compares it oddly (a search for `%00%00` matched everything), so no module has to remember it.
//!
//! The body is scanned as it streams, up to the listener's JSON body limit (a longer body gets the
//! 413 the JSON extractor would give), then handed to the route unchanged.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::StreamExt as _;

use crate::error::{ApiError, ErrorCode};

/// What the rule needs of the listener: the largest body it would read.
#[derive(Debug, Clone, Copy)]
pub struct NulPolicy {
    pub body_limit: usize,
}

fn refused() -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidInput,
        "Request must not contain NUL characters",
    )
}

/// Whether percent-decoding `raw` yields a NUL byte (a raw NUL counts too).
pub fn decodes_to_nul(raw: &str) -> bool {
    let b = raw.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0 => return true,
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    if h == 0 && l == 0 {
                        return true;
                    }
                    i += 3;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    false
}

/// Finds a NUL in JSON text fed in pieces: a raw NUL byte or the escape `\u0000` (but not
/// `\\u0000`, an escaped backslash followed by text). Outside strings a backslash is not JSON at
/// all, so tracking escapes alone is enough.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonNulScan {
    state: Scan,
    found: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Scan {
    #[default]
    Text,
    Backslash,
    /// After `\u` and this many `0` digits.
    Unicode(u8),
}

impl JsonNulScan {
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        for &c in bytes {
            if self.found {
                break;
            }
            self.state = match (self.state, c) {
                (_, 0) => {
                    self.found = true;
                    Scan::Text
                }
                (Scan::Text, b'\\') => Scan::Backslash,
                (Scan::Text, _) => Scan::Text,
                (Scan::Backslash, b'u') => Scan::Unicode(0),
                (Scan::Backslash, _) => Scan::Text,
                (Scan::Unicode(3), b'0') => {
                    self.found = true;
                    Scan::Text
                }
                (Scan::Unicode(n), b'0') => Scan::Unicode(n + 1),
                (Scan::Unicode(_), b'\\') => Scan::Backslash,
                (Scan::Unicode(_), _) => Scan::Text,
            };
        }
        self.found
    }

    pub fn found(&self) -> bool {
        self.found
    }
}

/// Whether a whole JSON text holds a NUL anywhere.
pub fn json_has_nul(bytes: &[u8]) -> bool {
    JsonNulScan::default().feed(bytes)
}

enum BodyKind {
    Json,
    Form,
}

fn body_kind(req: &ServiceRequest) -> Option<BodyKind> {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())?
        .to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim().to_owned();
    if essence == "application/json" || essence.ends_with("+json") {
        Some(BodyKind::Json)
    } else if essence == "application/x-www-form-urlencoded" {
        Some(BodyKind::Form)
    } else {
        None
    }
}

pub async fn middleware(
    policy: web::Data<NulPolicy>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri = req.uri();
    let in_uri = decodes_to_nul(uri.path()) || uri.query().is_some_and(decodes_to_nul);
    if in_uri {
        tracing::debug!("NUL in the request URI");
        let res = refused().error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let Some(kind) = body_kind(&req) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let limit = policy.body_limit;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    let mut scan = JsonNulScan::default();
    let mut outcome: Option<ApiError> = None;
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            // The route's extractor reports a broken body in its own words.
            Err(_) => break,
        };
        if body.len() + chunk.len() > limit {
            outcome = Some(crate::web::body_too_large(limit));
            break;
        }
        body.extend_from_slice(&chunk);
        if matches!(kind, BodyKind::Json) && scan.feed(&chunk) {
            outcome = Some(refused());
            break;
        }
    }
    if outcome.is_none()
        && matches!(kind, BodyKind::Form)
        && decodes_to_nul(&String::from_utf8_lossy(&body))
    {
        outcome = Some(refused());
    }
    if let Some(e) = outcome {
        tracing::debug!(status = e.status().as_u16(), "request body refused");
        let res = e.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let (_, mut restored) = actix_http::h1::Payload::create(true);
    restored.unread_data(body.freeze());
    req.set_payload(restored.into());
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert!(decodes_to_nul("/api/users/%00"));
        assert!(decodes_to_nul("q=a%00b"));
        assert!(decodes_to_nul("q=%00"));
        assert!(decodes_to_nul("a\0"));
        assert!(!decodes_to_nul("q=%2500"));
        assert!(!decodes_to_nul("q=%0"));
        assert!(!decodes_to_nul("q=%"));
        assert!(!decodes_to_nul("q=%0g0"));
        assert!(!decodes_to_nul("/api/users/abc%20d"));
    }

    #[test]
    fn json_escapes() {
        assert!(json_has_nul(br#"{"a":"x\u0000y"}"#));
        assert!(json_has_nul(b"{\"a\":\"x\0\"}"));
        assert!(json_has_nul(br#"{"a":["\\\u0000"]}"#));
        assert!(!json_has_nul(br#"{"a":"\\u0000"}"#));
        assert!(!json_has_nul(br#"{"a":"\u0001\u1000"}"#));
        assert!(!json_has_nul(br#"{"a":"u0000"}"#));
        // Split anywhere, the answer is the same.
        let text = br#"{"a":"x\u0000y"}"#;
        for cut in 0..text.len() {
            let mut s = JsonNulScan::default();
            s.feed(&text[..cut]);
            s.feed(&text[cut..]);
            assert!(s.found(), "cut at {cut}");
        }
    }
}
