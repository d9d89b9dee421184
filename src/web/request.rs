//! Who is calling, at the HTTP level: the bearer token, the client address, the request id.
//!
//! Request ids: tracing-actix-web opens a span per request with a fresh id; [`echo_request_id`]
//! echoes it to the client so a support report can be matched to the log lines.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest};
use std::net::IpAddr;
use tracing_actix_web::RequestId;

pub async fn echo_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(id) = id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            response.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-request-id"),
                value,
            );
        }
    }
    Ok(response)
}

/// The token: the second space-separated word of `Authorization`, scheme unchecked, as the original.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(' ').nth(1))
        .filter(|t| !t.is_empty() && *t != "null" && *t != "undefined")
}

/// The client address: the socket peer, or with `trusted_proxies = n > 0` the n-th `X-Forwarded-For`
/// entry from the right (what the nearest trusted proxy saw), never the client-controlled left-most one.
pub fn client_ip(req: &HttpRequest, trusted_proxies: usize) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip());
    if trusted_proxies == 0 {
        return peer;
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    if forwarded.is_empty() {
        return peer;
    }
    let index = forwarded.len().saturating_sub(trusted_proxies);
    forwarded.get(index).copied().or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_is_the_second_word() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer abc.def"))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc.def"));
        let req = TestRequest::default()
            .insert_header(("Authorization", "Bearer null"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
        let req = TestRequest::default()
            .insert_header(("Authorization", "abc"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }

    #[test]
    fn client_ip_uses_the_trusted_hop() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.7"))
            .to_http_request();
        assert_eq!(client_ip(&req, 0), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(client_ip(&req, 1), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(client_ip(&req, 2), Some("6.6.6.6".parse().unwrap()));
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .to_http_request();
        assert_eq!(client_ip(&req, 1), Some("10.0.0.1".parse().unwrap()));
    }
}
