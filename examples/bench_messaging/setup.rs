//! Who the generator's clients are.
//!
//! - `signup` (what `scripts/bench-messaging` uses): every client signs up over the API, user 0
//!   creates a team, invites everyone, each accepts, and user 0 creates a team channel, exactly as
//!   real clients would (and as `../shared/loadgen/setup.js` does). The server must allow that many
//!   signups per IP (the scripts raise `rate_limit.auth_max` for the run).
//! - `seed`: users, team and channel are written straight into the server's database and tokens are
//!   minted with its secret: thousands of idle sockets, or a second instance on the same database.

use anyhow::{bail, Context};
use diesel::ExpressionMethods;
use serde_json::{json, Value};

use flux::auth::token::TokenKeys;
use flux::db::schema::{conversations, group_members, groups, users};
use flux::db::{now, Db, DbOptions};

/// The clients' access tokens and the channel they share (if any).
pub struct Crowd {
    pub tokens: Vec<String>,
    pub channel: String,
}

/// A CSRF token and the cookie that carries it (double submit).
struct Csrf {
    token: String,
}

struct Api {
    http: reqwest::Client,
    base: String,
    csrf: Csrf,
}

struct User {
    email: String,
    token: String,
}

impl Api {
    async fn new(addr: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::new();
        let base = format!("http://{addr}");
        let body: Value = http
            .get(format!("{base}/api/csrf-token"))
            .send()
            .await?
            .json()
            .await?;
        let token = body["csrfToken"]
            .as_str()
            .context("no csrfToken in /api/csrf-token")?
            .to_string();
        Ok(Api {
            http,
            base,
            csrf: Csrf { token },
        })
    }

    async fn call(
        &self,
        bearer: Option<&str>,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf.token)
            .header("cookie", format!("_csrf={}", self.csrf.token));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    async fn signup(&self, run: &str, i: usize) -> anyhow::Result<User> {
        let email = format!("bench-{run}-{i}@example.com");
        let body = self
            .call(
                None,
                "/api/auth/signup",
                Some(json!({
                    "email": email,
                    "password": format!("Bench-Passw0rd-{i}"),
                    "name": format!("Bench {i}"),
                    "userType": "client",
                })),
            )
            .await?;
        let token = body["token"]
            .as_str()
            .or(body["accessToken"].as_str())
            .context("signup answered no token")?
            .to_string();
        Ok(User { email, token })
    }
}

/// `clients` users who signed up, in one team channel.
pub async fn signup(addr: &str, run: &str, clients: usize) -> anyhow::Result<Crowd> {
    let api = Api::new(addr).await?;
    let mut users = Vec::with_capacity(clients);
    for i in 0..clients {
        users.push(api.signup(run, i).await?);
    }
    let owner = &users[0];
    let team = api
        .call(
            Some(&owner.token),
            "/api/teams",
            Some(json!({ "name": format!("bench {run}") })),
        )
        .await?;
    let team = team["team"]["id"]
        .as_str()
        .context("POST /api/teams answered no team.id")?
        .to_string();
    for u in &users[1..] {
        api.call(
            Some(&owner.token),
            &format!("/api/teams/{team}/invite"),
            Some(json!({ "email": u.email, "role": "member" })),
        )
        .await?;
        api.call(
            Some(&u.token),
            &format!("/api/teams/{team}/accept-invite"),
            None,
        )
        .await?;
    }
    let channel = api
        .call(
            Some(&owner.token),
            "/api/channels",
            Some(json!({ "name": format!("bench-{run}"), "teamId": team })),
        )
        .await?;
    let channel = channel["id"]
        .as_str()
        .or(channel["channel"]["id"].as_str())
        .context("POST /api/channels answered no id")?
        .to_string();
    Ok(Crowd {
        tokens: users.into_iter().map(|u| u.token).collect(),
        channel,
    })
}

/// `clients` users written into the database; with `in_channel`, members of one team channel.
pub async fn seed(
    db_url: &str,
    secret: &str,
    run: &str,
    clients: usize,
    in_channel: bool,
    user_type: &str,
) -> anyhow::Result<Crowd> {
    // Scoped: its `load` would shadow other traits' methods.
    use diesel_async::RunQueryDsl;
    let db = Db::connect(&DbOptions::new(db_url.to_string())).await?;
    // The server refuses access tokens that live longer than its access TTL (issue 10), so the
    // seeded ones live exactly as long as the default `auth.access_token_ttl_secs` (Settings.toml).
    const ACCESS_TTL_SECS: u64 = 900;
    let keys = TokenKeys::new(secret, ACCESS_TTL_SECS);
    let at = now();
    let team = format!("bench-team-{run}");
    let channel = format!("bench-channel-{run}");
    let mut conn = db.get_write().await?;
    flux::db!(conn, |c| {
        diesel::insert_into(groups::table)
            .values((
                groups::id.eq(&team),
                groups::name.eq(&team),
                groups::created_at.eq(at),
                groups::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })?;
    flux::db!(conn, |c| {
        diesel::insert_into(conversations::table)
            .values((
                conversations::id.eq(&channel),
                conversations::kind.eq("channel"),
                conversations::name.eq("bench"),
                conversations::group_id.eq(&team),
                conversations::created_at.eq(at),
                conversations::updated_at.eq(at),
            ))
            .execute(c)
            .await
    })?;
    let mut tokens = Vec::with_capacity(clients);
    for i in 0..clients {
        let id = format!("bench-{run}-{i}");
        let email = format!("{id}@bench.test");
        flux::db!(conn, |c| {
            diesel::insert_into(users::table)
                .values((
                    users::id.eq(&id),
                    users::email.eq(&email),
                    users::name.eq(&id),
                    users::user_type.eq(user_type),
                    users::created_at.eq(at),
                    users::updated_at.eq(at),
                ))
                .execute(c)
                .await
        })?;
        if in_channel {
            flux::db!(conn, |c| {
                diesel::insert_into(group_members::table)
                    .values((
                        group_members::group_id.eq(&team),
                        group_members::user_id.eq(&id),
                        group_members::joined_at.eq(at),
                    ))
                    .execute(c)
                    .await
            })?;
        }
        tokens.push(keys.issue_access(&id, &email, user_type)?);
    }
    Ok(Crowd { tokens, channel })
}
