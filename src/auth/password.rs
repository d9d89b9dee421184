//! Password hashing: argon2id for new hashes, bcrypt for imported legacy ones (CONTRACT §2.8).
//!
//! Hashing costs tens of milliseconds of one CPU, so it runs on tokio's blocking pool behind a
//! semaphore: a login storm queues for the permits instead of occupying every core, and the async
//! workers keep answering sockets and cheap requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::AuthSettings;

/// `users.password_scheme` of a legacy bcrypt hash of the trimmed, HTML-escaped password.
pub const SCHEME_LEGACY: &str = "escaped_v1";
/// `users.password_scheme` of an argon2id hash of the password as typed.
pub const SCHEME_ARGON2: &str = "raw_v2";

/// Longest password accepted; argon2 would take any length, but a megabyte password is an attack.
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password task failed: {0}")]
    Task(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// Right password, stored in a scheme we are moving away from: rehash now.
    MatchNeedsRehash,
}

impl Verdict {
    pub fn is_match(self) -> bool {
        self != Verdict::Mismatch
    }
}

/// The hasher shared by every request of a server.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    capacity: usize,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// A hash of a random password: unknown e-mails are verified against it so that the response
    /// time does not tell whether an account exists.
    dummy: Arc<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Passwords {
    pub fn new(settings: &AuthSettings) -> Passwords {
        let params = Params::new(
            settings.argon2_memory_kib.max(Params::MIN_M_COST),
            settings.argon2_iterations.max(1),
            1,
            None,
        )
        .unwrap_or_default();
        let capacity = match settings.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut random = [0u8; 24];
        rand::fill(&mut random);
        let dummy = hash_sync(&params, &hex::encode(random)).unwrap_or_default();
        Passwords {
            params,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            dummy: Arc::new(dummy),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most hashes that ever ran at once (never above [`capacity`](Self::capacity)).
    pub fn peak_in_flight(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// An argon2id PHC string of `password` (scheme [`SCHEME_ARGON2`]).
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.params.clone();
        self.run(move || hash_sync(&params, &password)).await?
    }

    /// Checks `password` (as typed) against a stored hash of either scheme.
    pub async fn verify(
        &self,
        password: String,
        stored: String,
        scheme: Option<String>,
    ) -> Result<Verdict, PasswordError> {
        let params = self.params.clone();
        self.run(move || verify_sync(&params, &password, &stored, scheme.as_deref()))
            .await
    }

    /// Spends the time of a real verification and always fails (unknown account, no password).
    pub async fn verify_dummy(&self, password: String) -> Result<Verdict, PasswordError> {
        let stored = self.dummy.as_ref().clone();
        self.verify(password, stored, Some(SCHEME_ARGON2.into()))
            .await
            .map(|_| Verdict::Mismatch)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Task(e.to_string()))?;
        let (in_flight, peak) = (self.in_flight.clone(), self.peak.clone());
        tokio::task::spawn_blocking(move || {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = work();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            out
        })
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_sync(params: &Params, password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_sync(params: &Params, password: &str, stored: &str, scheme: Option<&str>) -> Verdict {
    let legacy = scheme == Some(SCHEME_LEGACY) || (scheme.is_none() && stored.starts_with("$2"));
    if legacy {
        // The legacy service hashed escape(trim(password)) with bcrypt (cost 10).
        return match bcrypt::verify(legacy_transform(password), stored) {
            Ok(true) => Verdict::MatchNeedsRehash,
            _ => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Mismatch;
    };
    if argon2(params)
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verdict::Mismatch;
    }
    // Stored with other costs than today's: rehash so cost upgrades reach every active account.
    let current = parsed.params.get_decimal("m") == Some(params.m_cost())
        && parsed.params.get_decimal("t") == Some(params.t_cost());
    if current {
        Verdict::Match
    } else {
        Verdict::MatchNeedsRehash
    }
}

/// `validateInput.sanitizeInput` of the legacy services: `escape(trim(value))` (CONTRACT §2.8).
pub fn legacy_transform(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.trim().chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '/' => out.push_str("&#x2F;"),
            '\\' => out.push_str("&#x5C;"),
            '`' => out.push_str("&#96;"),
            c => out.push(c),
        }
    }
    out
}

/// The signup policy (CONTRACT §3.2): the validator's texts, in its order.
pub fn policy_error(password: &str) -> Option<&'static str> {
    if password.chars().count() < 8 {
        return Some("Password must be at least 8 characters long");
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Some("Password must be at most 1024 characters long");
    }
    let lower = password.chars().any(|c| c.is_lowercase());
    let upper = password.chars().any(|c| c.is_uppercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    if !(lower && upper && digit) {
        return Some("Password must contain at least one uppercase letter, one lowercase letter, and one number");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::new(Params::MIN_M_COST, 1, 1, None).unwrap()
    }

    #[test]
    fn legacy_escape_matches_the_validator() {
        assert_eq!(
            legacy_transform("  a&b<c>d\"e'f/g\\h`i  "),
            "a&amp;b&lt;c&gt;d&quot;e&#x27;f&#x2F;g&#x5C;h&#96;i"
        );
    }

    #[test]
    fn argon2_round_trip_and_cost_upgrade() {
        let h = hash_sync(&params(), "Secret123").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(
            verify_sync(&params(), "Secret123", &h, Some(SCHEME_ARGON2)),
            Verdict::Match
        );
        assert_eq!(
            verify_sync(&params(), "Secret124", &h, Some(SCHEME_ARGON2)),
            Verdict::Mismatch
        );
        let stronger = Params::new(Params::MIN_M_COST * 2, 1, 1, None).unwrap();
        assert_eq!(
            verify_sync(&stronger, "Secret123", &h, Some(SCHEME_ARGON2)),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(
            verify_sync(&params(), "Secret123", "garbage", None),
            Verdict::Mismatch
        );
    }

    #[test]
    fn legacy_bcrypt_of_the_escaped_password() {
        let stored = bcrypt::hash(legacy_transform("P&ss<word>1"), 4).unwrap();
        assert_eq!(
            verify_sync(&params(), " P&ss<word>1 ", &stored, Some(SCHEME_LEGACY)),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(
            verify_sync(&params(), "P&ss<word>1", &stored, None),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(
            verify_sync(&params(), "P&ss<word>2", &stored, Some(SCHEME_LEGACY)),
            Verdict::Mismatch
        );
    }

    fn settings(concurrency: usize) -> AuthSettings {
        let mut s = crate::config::Settings::load_from(None, &Default::default())
            .unwrap()
            .auth;
        s.argon2_memory_kib = 8192;
        s.argon2_iterations = 2;
        s.password_hash_concurrency = concurrency;
        s
    }

    /// The cap holds under a storm, and hashing never blocks the async thread: on a current-thread
    /// runtime a ticker keeps running while eight hashes are computed.
    #[test]
    fn hashing_is_capped_and_off_the_async_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let passwords = Passwords::new(&settings(2));
            let ticks = Arc::new(AtomicUsize::new(0));
            let ticker = {
                let ticks = ticks.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        ticks.fetch_add(1, Ordering::SeqCst);
                    }
                })
            };
            let started = std::time::Instant::now();
            let jobs: Vec<_> = (0..8)
                .map(|i| {
                    let p = passwords.clone();
                    tokio::spawn(async move { p.hash(format!("Password{i}")).await })
                })
                .collect();
            for job in jobs {
                assert!(job.await.unwrap().unwrap().starts_with("$argon2id$"));
            }
            let elapsed = started.elapsed();
            ticker.abort();
            assert_eq!(passwords.peak_in_flight(), 2, "cap reached, never exceeded");
            let ticks = ticks.load(Ordering::SeqCst);
            // Hashing on this thread would leave the ticker at most one tick between two hashes
            // (8); a free thread ticks every 1-2 ms. Generous slack for timer granularity.
            let expected = (elapsed.as_millis() as usize / 10).max(24);
            assert!(ticks >= expected, "{ticks} ticks in {elapsed:?}");
        });
    }

    #[test]
    fn policy() {
        assert!(policy_error("short1A").is_some());
        assert!(policy_error("alllowercase1").is_some());
        assert!(policy_error("Good1password").is_none());
        assert!(policy_error(&"Aa1".repeat(400)).is_some());
    }
}
