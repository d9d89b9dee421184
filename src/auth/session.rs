//! Refresh tokens (CONTRACT §2.2): 64 random bytes as hex for the client, SHA-256 for the database,
//! one family per login so that reuse of a rotated token can revoke everything descended from it.

use std::net::IpAddr;

use actix_web::HttpRequest;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::model::{PublicUser, UserRow};
use crate::auth::store::{self, NewSession};
use crate::auth::AuthState;
use crate::error::ApiError;

/// A fresh opaque refresh token: 128 hex characters.
pub fn new_token() -> String {
    let mut bytes = [0u8; 64];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a refresh token records about the device that got it.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub fingerprint: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// IPv4 /24 or IPv6 /64, so that a device keeps its fingerprint across nearby addresses.
fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Device {
    pub fn of(req: &HttpRequest, trusted_proxies: usize) -> Device {
        let ip = crate::web::request::client_ip(req, trusted_proxies);
        let ua = header(req, "user-agent");
        let material = format!(
            "{ua}|{}|{}|{}",
            header(req, "accept-language"),
            header(req, "accept-encoding"),
            ip.map(network_of).unwrap_or_default()
        );
        Device {
            name: device_name(ua),
            fingerprint: hex::encode(Sha256::digest(material.as_bytes())),
            ip: ip.map(|ip| ip.to_string()),
            user_agent: (!ua.is_empty()).then(|| ua.chars().take(512).collect()),
        }
    }
}

/// "Chrome on macOS" and the like, enough for a session list.
fn device_name(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map_or("Unknown browser", |(_, name)| name);
    let os = [
        ("Windows", "Windows"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("Android", "Android"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

pub fn new_session(
    state: &AuthState,
    user_id: &str,
    family_id: String,
    device: &Device,
) -> (String, NewSession) {
    let token = new_token();
    let now = crate::db::now();
    let ttl =
        chrono::Duration::seconds(i64::try_from(state.refresh_token_ttl_secs).unwrap_or(604_800));
    let session = NewSession {
        id: crate::db::new_id(),
        user_id: user_id.to_owned(),
        token_hash: hash_token(&token),
        family_id,
        device_name: Some(device.name.clone()),
        device_fingerprint: Some(device.fingerprint.clone()),
        ip_address: device.ip.clone(),
        user_agent: device.user_agent.clone(),
        created_at: now,
        last_used_at: now,
        expires_at: (now.as_datetime() + ttl).into(),
    };
    (token, session)
}

/// AuthResponse (CONTRACT §3): the frontend reads `token` and `user`; `accessToken` is the same jwt.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub token: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub token_type: &'static str,
    pub user: PublicUser,
}

/// A new access token and a new refresh-token family for `user` (signup, login, Google).
pub async fn issue(
    state: &AuthState,
    req: &HttpRequest,
    user: &UserRow,
    failure: &'static str,
) -> Result<AuthResponse, ApiError> {
    let access = state
        .tokens
        .issue_access(&user.id, &user.email, &user.user_type)
        .map_err(|e| ApiError::internal(failure, e))?;
    let device = Device::of(req, state.trusted_proxies);
    let (refresh, session) = new_session(state, &user.id, crate::db::new_id(), &device);
    store::insert_session(&state.db, session)
        .await
        .map_err(|e| ApiError::storage(failure, e))?;
    Ok(AuthResponse {
        token: access.clone(),
        access_token: access,
        refresh_token: refresh,
        expires_in: state.tokens.ttl_secs(),
        token_type: "Bearer",
        user: PublicUser::from(user),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_hashes() {
        let t = new_token();
        assert_eq!(t.len(), 128);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, new_token());
        assert_eq!(hash_token(&t).len(), 64);
        assert_ne!(hash_token(&t), t);
    }

    #[test]
    fn device_names_and_networks() {
        assert_eq!(
            device_name("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"),
            "Chrome on macOS"
        );
        assert_eq!(device_name(""), "Unknown browser");
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }
}
