//! GitHub issue sync (OPERATOR §4): one link at a time with its creator's token, following
//! `Link: rel="next"` for at most 10 pages and skipping pull requests; and the periodic run, on one
//! instance at a time when a Redis lease is available.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::store::{self, IssueRow, LinkRow};
use super::tokens::ApiCall;
use super::{IntegrationError, IntegrationsState, Provider};

const MAX_PAGES: usize = 10;

/// The issue of a GitHub payload, or `None` for a pull request (GitHub lists those as issues too)
/// or something that is not an issue.
pub(super) fn issue_row(v: &Value) -> Option<IssueRow> {
    if v.get("pull_request").is_some_and(|p| !p.is_null()) {
        return None;
    }
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let names = |k: &str, field: &str| {
        Value::Array(
            v.get(k)
                .and_then(Value::as_array)
                .map(|items| items.iter().filter_map(|i| i.get(field).cloned()).collect())
                .unwrap_or_default(),
        )
    };
    Some(IssueRow {
        number: v.get("number")?.as_i64()?,
        github_id: v.get("id")?.as_i64()?,
        title: text("title")?.chars().take(1000).collect(),
        body: text("body").map(|b| b.chars().take(65_536).collect()),
        state: text("state").unwrap_or_else(|| "open".into()),
        labels: names("labels", "name"),
        assignees: names("assignees", "login"),
        html_url: text("html_url").unwrap_or_default(),
        created_at: text("created_at"),
        updated_at: text("updated_at"),
        closed_at: text("closed_at"),
    })
}

/// Store one issue of a link, and turn it into a task once when the link asks for that.
pub(super) async fn store_issue(
    state: &IntegrationsState,
    link: &LinkRow,
    issue: &IssueRow,
) -> Result<(), crate::db::DbError> {
    let new = store::upsert_issue(&state.db, &link.id, issue).await?;
    if new && link.auto_create_tasks {
        store::create_task_for_issue(&state.db, link, issue).await?;
    }
    Ok(())
}

/// Sync one link now; its status goes syncing → idle (or error with `last_error`).
pub(super) async fn sync_link(
    state: &IntegrationsState,
    link: &LinkRow,
) -> Result<usize, IntegrationError> {
    store::set_sync_status(&state.db, &link.id, "syncing", None, false).await?;
    match fetch(state, link).await {
        Ok(issues) => {
            for issue in &issues {
                store_issue(state, link, issue).await?;
            }
            store::set_sync_status(&state.db, &link.id, "idle", None, true).await?;
            Ok(issues.len())
        }
        Err(e) => {
            let reason = match &e {
                IntegrationError::NotConnected(_) => "GitHub is not connected".to_string(),
                IntegrationError::Expired(_) => "GitHub connection expired".to_string(),
                IntegrationError::NotFound(_) => "Repository not found".to_string(),
                IntegrationError::Refused(_, m) => m.clone(),
                _ => "GitHub request failed".to_string(),
            };
            store::set_sync_status(&state.db, &link.id, "error", Some(&reason), false).await?;
            Err(e)
        }
    }
}

async fn fetch(
    state: &IntegrationsState,
    link: &LinkRow,
) -> Result<Vec<IssueRow>, IntegrationError> {
    let base = state.api_url(Provider::Github, "/");
    let path = format!(
        "/repos/{}/{}/issues",
        super::github::segment(&link.owner)?,
        super::github::segment(&link.repo)?
    );
    let mut call = ApiCall::get(state.api_url(Provider::Github, &path));
    call.query = vec![
        ("state".into(), "all".into()),
        ("per_page".into(), "100".into()),
    ];
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let answer = state.call(&link.user_id, Provider::Github, &call).await?;
        if let Some(items) = answer.body.as_array() {
            out.extend(items.iter().filter_map(issue_row));
        }
        match answer.next {
            // Only the configured API base is ever called, whatever a Link header says.
            Some(next) if next.starts_with(&base) => {
                call = ApiCall::get(next);
            }
            _ => break,
        }
    }
    Ok(out)
}

/// Something that lets one instance at a time run the periodic sync.
pub trait Lease: Send + Sync {
    /// Take or renew the lease for `ttl`; `false` when another instance holds it.
    fn acquire(&self, ttl: Duration) -> BoxFuture<'_, bool>;
}

/// The periodic sync's switch (admins turn it on and off) and its shutdown.
pub struct AutoSync {
    enabled: AtomicBool,
    stopped: AtomicBool,
    interval: Duration,
    wake: tokio::sync::Notify,
}

impl AutoSync {
    pub fn new(enabled: bool, interval_secs: u64) -> AutoSync {
        AutoSync {
            enabled: AtomicBool::new(enabled),
            stopped: AtomicBool::new(false),
            interval: Duration::from_secs(interval_secs.max(10)),
            wake: tokio::sync::Notify::new(),
        }
    }
    pub fn running(&self) -> bool {
        self.enabled.load(Ordering::Relaxed) && !self.stopped.load(Ordering::Relaxed)
    }
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.wake.notify_waiters();
    }
}

/// The loop: every interval, when enabled and holding the lease, sync every link.
pub(super) fn start(state: IntegrationsState, lease: Option<Arc<dyn Lease>>) {
    if !state.settings.github.configured() {
        return;
    }
    tokio::spawn(async move {
        let auto = state.sync.clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(auto.interval) => {}
                () = auto.wake.notified() => {}
            }
            if auto.stopped.load(Ordering::Relaxed) {
                break;
            }
            if !auto.running() {
                continue;
            }
            // The lease outlives one round so a slow round is not run twice.
            let held = match &lease {
                Some(lease) => lease.acquire(auto.interval * 2).await,
                None => true,
            };
            if !held {
                continue;
            }
            let links = match store::links_to_sync(&state.db).await {
                Ok(links) => links,
                Err(e) => {
                    tracing::warn!(error = %e, "GitHub auto-sync cannot list links");
                    continue;
                }
            };
            for link in links {
                if let Err(e) = sync_link(&state, &link).await {
                    tracing::info!(link_id = %link.id, error = %e, "GitHub auto-sync of a link failed");
                }
            }
        }
    });
}

/// The lease under Redis: `SET key instance NX PX ttl`, renewed by its holder.
#[cfg(feature = "redis")]
pub struct RedisLease {
    pub cluster: crate::cluster::Cluster,
    pub key: String,
}

#[cfg(feature = "redis")]
impl Lease for RedisLease {
    fn acquire(&self, ttl: Duration) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let Some(link) = self.cluster.link() else {
                return true;
            };
            let me = link.instance_id().to_string();
            let key = self.key.clone();
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let held = link
                .run(|mut c| async move {
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&me)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c)
                        .await?;
                    if set.is_some() {
                        return Ok(true);
                    }
                    let holder: Option<String> =
                        redis::cmd("GET").arg(&key).query_async(&mut c).await?;
                    if holder.as_deref() == Some(me.as_str()) {
                        let _: i64 = redis::cmd("PEXPIRE")
                            .arg(&key)
                            .arg(ttl_ms)
                            .query_async(&mut c)
                            .await?;
                        return Ok(true);
                    }
                    Ok::<bool, redis::RedisError>(false)
                })
                .await;
            // Redis down: nobody can coordinate, so skip this round rather than run everywhere.
            held.unwrap_or(false)
        })
    }
}
