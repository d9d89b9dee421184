//! Every use of a provider token: the token endpoint (exchange and refresh), and API calls that
//! decrypt the stored token, refresh it before expiry and once after a provider 401, and map the
//! provider's answer. Only the configured bases are called; provider bodies stay out of logs.

use std::sync::Arc;

use actix_web::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Duration as ChronoDuration;
use serde_json::Value;

use super::crypto::Aad;
use super::store::{self, TokenRow};
use super::{IntegrationError, IntegrationsState, Provider};
use crate::db::Timestamp;

/// Refresh this long before the provider's expiry, so a call never starts with a dying token.
const REFRESH_MARGIN_SECS: i64 = 60;

/// What a token endpoint granted.
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    pub token_type: String,
    /// The whole answer, for provider extras (Slack's team); never logged or returned.
    pub raw: Value,
}

/// One API request to a provider.
pub struct ApiCall {
    pub method: reqwest::Method,
    /// A full URL under the provider's API base (see [`IntegrationsState::api_url`]).
    pub url: String,
    pub query: Vec<(String, String)>,
    pub json: Option<Value>,
}

impl ApiCall {
    pub fn get(url: String) -> ApiCall {
        ApiCall {
            method: reqwest::Method::GET,
            url,
            query: Vec::new(),
            json: None,
        }
    }
    pub fn with_json(method: reqwest::Method, url: String, body: Value) -> ApiCall {
        ApiCall {
            method,
            url,
            query: Vec::new(),
            json: Some(body),
        }
    }
}

/// A provider's successful answer.
pub struct Answer {
    pub body: Value,
    /// `Link: <…>; rel="next"` (GitHub pagination).
    pub next: Option<String>,
}

pub fn aad<'a>(user: &'a str, p: Provider, field: &'a str) -> Aad<'a> {
    Aad {
        user_id: user,
        provider: p.as_str(),
        field,
    }
}

impl IntegrationsState {
    /// POST to the token endpoint; `Err` carries a cause for the log, never the body.
    pub(super) async fn token_request(
        &self,
        p: Provider,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<Grant, String> {
        let cfg = self.provider(p);
        let mut req = self
            .http
            .post(&cfg.token_url)
            .header(reqwest::header::ACCEPT, "application/json");
        if cfg.token_auth == "basic" {
            let basic = STANDARD.encode(format!("{}:{}", cfg.client_id, cfg.client_secret));
            req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
        } else {
            form.push(("client_id", cfg.client_id.clone()));
            form.push(("client_secret", cfg.client_secret.clone()));
        }
        let res = req
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("token endpoint unreachable: {}", e.without_url()))?;
        let status = res.status();
        if !status.is_success() {
            return Err(format!("token endpoint answered {status}"));
        }
        let body: Value = res
            .json()
            .await
            .map_err(|_| "token endpoint answered no JSON".to_string())?;
        if body.get("error").is_some_and(|e| !e.is_null()) {
            return Err("token endpoint answered an error".into());
        }
        if body.get("ok") == Some(&Value::Bool(false)) {
            return Err("token endpoint answered ok:false".into());
        }
        // Slack's v2 answer carries the user token under `authed_user` when no bot token is issued.
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .or_else(|| {
                body.pointer("/authed_user/access_token")
                    .and_then(Value::as_str)
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "token endpoint answered no access_token".to_string())?
            .to_string();
        let refresh_token = body
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let expires_at = body
            .get("expires_in")
            .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
            .filter(|s| *s > 0)
            .map(|s| Timestamp::from(chrono::Utc::now() + ChronoDuration::seconds(s)));
        let scopes = body
            .get("scope")
            .and_then(Value::as_str)
            .map(|s| {
                s.split([',', ' '])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let token_type = body
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or("bearer")
            .to_string();
        Ok(Grant {
            access_token: access,
            refresh_token,
            expires_at,
            scopes,
            token_type,
            raw: body,
        })
    }

    /// Call the provider's API as `user`, with the stored token.
    pub(super) async fn call(
        &self,
        user: &str,
        p: Provider,
        call: &ApiCall,
    ) -> Result<Answer, IntegrationError> {
        let row = store::token(&self.db, user, p.as_str())
            .await?
            .ok_or(IntegrationError::NotConnected(p))?;
        let mut access = self.usable_token(&row, p).await?;
        let mut refreshed = false;
        loop {
            let res = self
                .send(&access, call)
                .await
                .map_err(|cause| IntegrationError::Upstream(p, cause))?;
            if res.status() == reqwest::StatusCode::UNAUTHORIZED {
                if refreshed {
                    store::set_status(&self.db, user, p.as_str(), "expired").await?;
                    return Err(IntegrationError::Expired(p));
                }
                // One refresh and one retry after a provider 401.
                access = self.refresh(user, p, Some(&access)).await?;
                refreshed = true;
                continue;
            }
            let answer = answer(p, res).await;
            if answer.is_ok() {
                if let Err(e) = store::touch(&self.db, user, p.as_str()).await {
                    tracing::warn!(error = %e, "cannot record the integration's last use");
                }
            }
            return answer;
        }
    }

    async fn send(&self, token: &str, call: &ApiCall) -> Result<reqwest::Response, String> {
        let mut req = self
            .http
            .request(call.method.clone(), &call.url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = &call.json {
            req = req.json(body);
        }
        req.send()
            .await
            .map_err(|e| format!("provider unreachable: {}", e.without_url()))
    }

    /// The stored access token, refreshed first when it expires within the margin.
    async fn usable_token(&self, row: &TokenRow, p: Provider) -> Result<String, IntegrationError> {
        let dying = row.expires_at.is_some_and(|at| {
            at.as_datetime() <= chrono::Utc::now() + ChronoDuration::seconds(REFRESH_MARGIN_SECS)
        });
        if row.status == "expired" || dying {
            return self.refresh(&row.user_id, p, None).await;
        }
        Ok(self
            .sealer
            .open(&row.access_token_enc, aad(&row.user_id, p, "access_token"))?)
    }

    /// Refresh the user's token (one refresh at a time per user and provider). `stale` is the token
    /// that failed: when another request has replaced it meanwhile, that replacement is used.
    pub(super) async fn refresh(
        &self,
        user: &str,
        p: Provider,
        stale: Option<&str>,
    ) -> Result<String, IntegrationError> {
        let lock = {
            let mut map = self
                .refreshing
                .lock()
                .map_err(|_| IntegrationError::Internal("refresh lock poisoned".into()))?;
            map.entry((user.to_string(), p))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let _guard = lock.lock().await;
        let row = store::token(&self.db, user, p.as_str())
            .await?
            .ok_or(IntegrationError::NotConnected(p))?;
        let current = self
            .sealer
            .open(&row.access_token_enc, aad(user, p, "access_token"))?;
        let fresh = row.expires_at.is_none_or(|at| {
            at.as_datetime() > chrono::Utc::now() + ChronoDuration::seconds(REFRESH_MARGIN_SECS)
        });
        // Someone else refreshed while this request waited for the lock.
        let replaced = stale.is_none_or(|s| s != current);
        if row.status == "connected" && fresh && replaced {
            return Ok(current);
        }
        let Some(refresh_enc) = &row.refresh_token_enc else {
            store::set_status(&self.db, user, p.as_str(), "expired").await?;
            return Err(IntegrationError::Expired(p));
        };
        let refresh_token = self
            .sealer
            .open(refresh_enc, aad(user, p, "refresh_token"))?;
        let grant = self
            .token_request(
                p,
                vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh_token.clone()),
                ],
            )
            .await;
        let grant = match grant {
            Ok(grant) => grant,
            Err(cause) => {
                tracing::warn!(provider = p.as_str(), error = %cause, "token refresh failed");
                store::set_status(&self.db, user, p.as_str(), "expired").await?;
                return Err(IntegrationError::Expired(p));
            }
        };
        let access_enc = self
            .sealer
            .seal(&grant.access_token, aad(user, p, "access_token"))?;
        // Providers that do not rotate refresh tokens send none back: keep the old one.
        let refresh = grant.refresh_token.unwrap_or(refresh_token);
        let refresh_enc = self.sealer.seal(&refresh, aad(user, p, "refresh_token"))?;
        store::store_refreshed(
            &self.db,
            user,
            p.as_str(),
            &access_enc,
            Some(&refresh_enc),
            grant.expires_at,
        )
        .await?;
        tracing::info!(
            provider = p.as_str(),
            user_id = user,
            "integration token refreshed"
        );
        Ok(grant.access_token)
    }
}

/// A provider's answer (other than 401) as a result.
async fn answer(p: Provider, res: reqwest::Response) -> Result<Answer, IntegrationError> {
    let status = res.status();
    let next = res
        .headers()
        .get(reqwest::header::LINK)
        .and_then(|v| v.to_str().ok())
        .and_then(next_link);
    let body: Value = if status == reqwest::StatusCode::NO_CONTENT {
        Value::Null
    } else {
        res.json().await.unwrap_or(Value::Null)
    };
    if status.is_success() {
        return Ok(Answer { body, next });
    }
    match status.as_u16() {
        404 => Err(IntegrationError::NotFound("Not found".into())),
        code @ 400..=499 => {
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .map(|m| m.chars().take(500).collect::<String>())
                .unwrap_or_else(|| format!("{} refused the request", p.title()));
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            Err(IntegrationError::Refused(status, message))
        }
        _ => Err(IntegrationError::Upstream(
            p,
            format!("provider answered {status}"),
        )),
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_link_of_github() {
        let h = r#"<https://api.github.com/repos/o/r/issues?page=2>; rel="next", <https://api.github.com/repos/o/r/issues?page=5>; rel="last""#;
        assert_eq!(
            super::next_link(h).as_deref(),
            Some("https://api.github.com/repos/o/r/issues?page=2")
        );
        assert_eq!(super::next_link(r#"<x>; rel="prev""#), None);
    }
}
