//! Bounded pagination for every list (CONTRACT §14.3: no unbounded `limit`, no `NaN`).

use serde::Deserialize;

pub const MAX_LIMIT: u32 = 100;

/// List bodies are bare arrays (the frontend maps over them directly); a list's total and, for
/// message history, the sequence watermark that `?since=` recovery resumes from travel in these
/// headers. `web::cors` exposes them to the browser.
pub const TOTAL_COUNT: &str = "X-Total-Count";
pub const LAST_SEQ: &str = "X-Last-Seq";

/// `?limit=&page=` or `?limit=&offset=`; out-of-range or non-numeric values fall back to the bounds
/// instead of reaching the database.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub page: Option<String>,
    pub offset: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
    pub page: u32,
}

impl PageQuery {
    pub fn resolve(&self, default_limit: u32) -> Page {
        let limit = self
            .limit
            .as_deref()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|v| v.clamp(1, i64::from(MAX_LIMIT)) as u32)
            .unwrap_or(default_limit.min(MAX_LIMIT));
        let page = self
            .page
            .as_deref()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|v| v.clamp(1, 1_000_000) as u32);
        let offset = match (page, self.offset.as_deref()) {
            (Some(p), _) => u64::from(p - 1) * u64::from(limit),
            (None, Some(o)) => o
                .trim()
                .parse::<i64>()
                .map(|v| v.clamp(0, 100_000_000) as u64)
                .unwrap_or(0),
            (None, None) => 0,
        };
        Page {
            limit,
            offset,
            page: page.unwrap_or((offset / u64::from(limit)) as u32 + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(limit: Option<&str>, page: Option<&str>, offset: Option<&str>) -> PageQuery {
        PageQuery {
            limit: limit.map(String::from),
            page: page.map(String::from),
            offset: offset.map(String::from),
        }
    }

    #[test]
    fn bounds() {
        assert_eq!(
            q(None, None, None).resolve(50),
            Page {
                limit: 50,
                offset: 0,
                page: 1
            }
        );
        assert_eq!(q(Some("100000"), None, None).resolve(50).limit, 100);
        assert_eq!(q(Some("-3"), None, None).resolve(50).limit, 1);
        assert_eq!(q(Some("NaN"), None, None).resolve(20).limit, 20);
        assert_eq!(
            q(Some("10"), Some("3"), None).resolve(20),
            Page {
                limit: 10,
                offset: 20,
                page: 3
            }
        );
        assert_eq!(q(Some("10"), None, Some("35")).resolve(20).offset, 35);
        assert_eq!(q(Some("10"), None, Some("-1")).resolve(20).offset, 0);
    }
}
