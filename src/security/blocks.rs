//! The blocked and allow-listed addresses of this instance, in memory (OPERATOR §8).
//!
//! The database is the truth. Each instance reloads it every `block_refresh_secs`; a change made on
//! this instance is applied to the memory at once and announced on a Redis channel, whose
//! subscribers (the other instances) reload at once too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store;
use crate::cluster::Cluster;
use crate::db::{Db, DbError};
use crate::web::guard::IpGate;

#[derive(Default)]
struct Snapshot {
    /// Address → end of the block (`None`: until removed).
    blocked: HashMap<IpAddr, Option<DateTime<Utc>>>,
    allowed: HashMap<IpAddr, Option<DateTime<Utc>>>,
}

fn holds(until: &Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    until.is_none_or(|u| u > now)
}

/// An address in its one spelling: IPv4-mapped IPv6 becomes IPv4.
pub fn normalise(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Parses an address from a path or a row (`[::1]` and surrounding blanks accepted).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim().trim_start_matches('[').trim_end_matches(']');
    t.parse::<IpAddr>().ok().map(normalise)
}

pub struct BlockList {
    db: Db,
    snapshot: RwLock<Snapshot>,
    /// Where a change is announced to the other instances (used only with Redis).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    cluster: Cluster,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    channel: String,
}

impl BlockList {
    pub fn new(db: Db, cluster: Cluster, key_prefix: &str) -> Arc<BlockList> {
        Arc::new(BlockList {
            db,
            snapshot: RwLock::new(Snapshot::default()),
            cluster,
            channel: format!("{key_prefix}security:blocks"),
        })
    }

    /// Starts reloading every `every`, and at once when another instance announces a change.
    pub fn start(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let list = self.clone();
        tokio::spawn(async move {
            #[cfg(feature = "redis")]
            let mut changes = match list.cluster.link() {
                Some(link) => Some(link.subscribe(list.channel.clone(), 16).await),
                None => None,
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(feature = "redis")]
                {
                    let announced = async {
                        match changes.as_mut() {
                            Some(rx) => rx.recv().await.is_some(),
                            None => std::future::pending::<bool>().await,
                        }
                    };
                    let open = tokio::select! {
                        _ = tick.tick() => true,
                        open = announced => open,
                    };
                    if !open {
                        changes = None;
                    }
                }
                #[cfg(not(feature = "redis"))]
                tick.tick().await;
                if let Err(e) = list.reload().await {
                    // Keep the last known list: an outage must not unblock everyone.
                    tracing::debug!(error = %e, "blocked addresses not reloaded");
                }
            }
        })
    }

    /// Reads both lists from the database.
    pub async fn reload(&self) -> Result<(), DbError> {
        let now = Utc::now();
        let blocks = store::active_blocks(&self.db, now).await?;
        let allows = store::active_allows(&self.db, now).await?;
        let mut next = Snapshot::default();
        for b in blocks {
            if let Some(ip) = parse_ip(&b.ip) {
                next.blocked
                    .insert(ip, b.blocked_until.map(|t| t.as_datetime()));
            }
        }
        for a in allows {
            if let Some(ip) = parse_ip(&a.ip) {
                next.allowed.insert(ip, a.until.map(|t| t.as_datetime()));
            }
        }
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Applies a change made here at once, and tells the other instances.
    pub async fn changed(&self) {
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "blocked addresses not reloaded after a change");
        }
        #[cfg(feature = "redis")]
        if let Some(link) = self.cluster.link() {
            link.publish(self.channel.clone(), b"changed".to_vec())
                .await;
        }
    }

    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        s.allowed
            .get(&normalise(ip))
            .is_some_and(|u| holds(u, Utc::now()))
    }

    pub fn blocked_count(&self) -> usize {
        let now = Utc::now();
        let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        s.blocked.values().filter(|u| holds(u, now)).count()
    }
}

impl IpGate for BlockList {
    fn is_blocked(&self, ip: IpAddr) -> bool {
        let ip = normalise(ip);
        let now = Utc::now();
        let s = self.snapshot.read().unwrap_or_else(|p| p.into_inner());
        if s.allowed.get(&ip).is_some_and(|u| holds(u, now)) {
            return false;
        }
        s.blocked.get(&ip).is_some_and(|u| holds(u, now))
    }
}
