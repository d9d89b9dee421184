//! Every HTTP call of the frontend users run that docs/frontend-calls.md says flux answers, issued on a
//! real server by real signed-up users with real ids, on every configured backend. The table is read
//! from the doc, so the doc and this test cannot drift: a row marked `yes` whose route is missing (404
//! or 405) or failing (5xx) fails here, and so does a `yes (501)` row that answers anything but 501.
//! A `yes (fake provider)` row (the integrations, which need a provider) is not called here: its test
//! file must exist and issue the row's path, so the doc cannot point at a test that does not cover it.

// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use std::collections::HashMap;

use common::{backends, TestServer};
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_raw, file_part, multipart, BOUNDARY, PNG};
use serde_json::{json, Value};

const DOC: &str = include_str!("../docs/frontend-calls.md");
const PASSWORD: &str = "Corr3ct-Horse-Battery";

#[derive(Debug, Clone)]
struct Row {
    number: u32,
    method: String,
    path: String,
    /// `yes (501)`: an intentional JSON 501 (Apple Sign In is not offered).
    not_implemented: bool,
}

/// A `yes (fake provider)` row: answered, and verified by the test files its Test column names.
#[derive(Debug, Clone)]
struct FakeProviderRow {
    number: u32,
    path: String,
    tests: Vec<String>,
}

const MARKS: [&str; 4] = ["yes", "yes (501)", "yes (fake provider)", "not yet"];

/// The numbered rows of the doc's main table, split into its columns.
fn table() -> Vec<(u32, Vec<&'static str>)> {
    let mut rows = Vec::new();
    for line in DOC.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        // "| # | Method | Path | files | called | reads | issue | flux | handler | test |"
        let Some(Ok(number)) = cols.get(1).map(|c| c.parse::<u32>()) else {
            continue;
        };
        // A numbered row with a lost or extra cell would otherwise drop out of the check unseen.
        assert_eq!(
            cols.len(),
            12,
            "row {number} of docs/frontend-calls.md: {line}"
        );
        assert!(
            MARKS.contains(&cols[8]),
            "row {number}: flux column must be one of {MARKS:?}, not {:?}",
            cols[8]
        );
        rows.push((number, cols));
    }
    rows
}

/// The rows of the doc's main table whose flux column says `yes` or `yes (501)`: called here.
fn answered_rows() -> Vec<Row> {
    table()
        .into_iter()
        .filter(|(_, cols)| cols[8] == "yes" || cols[8] == "yes (501)")
        .map(|(number, cols)| Row {
            number,
            method: cols[2].to_owned(),
            path: cols[3].to_owned(),
            not_implemented: cols[8] == "yes (501)",
        })
        .collect()
}

fn fake_provider_rows() -> Vec<FakeProviderRow> {
    table()
        .into_iter()
        .filter(|(_, cols)| cols[8] == "yes (fake provider)")
        .map(|(number, cols)| FakeProviderRow {
            number,
            path: cols[3].to_owned(),
            tests: cols[10]
                .split(',')
                .map(|t| t.trim().trim_matches('`').to_owned())
                .filter(|t| !t.is_empty() && t != "—")
                .collect(),
        })
        .collect()
}

/// Whether `text` (a test's source) issues a path of the doc's `template`: a string literal starting
/// with `/api/` whose segments equal the template's, a `:param` standing for any one segment (a
/// concrete one or a `{placeholder}`, never `..`). The query string is ignored.
fn issues_path(text: &str, template: &str) -> bool {
    let want: Vec<&str> = template.split('/').collect();
    text.match_indices("\"/api/").any(|(at, _)| {
        let rest = &text[at + 1..];
        let end = rest
            .find(|c: char| c == '"' || c == '?' || c.is_whitespace())
            .unwrap_or(rest.len());
        let got: Vec<&str> = rest[..end].split('/').collect();
        got.len() == want.len()
            && want.iter().zip(&got).all(|(w, g)| {
                if w.starts_with(':') {
                    !g.is_empty() && *g != ".." && *g != "."
                } else {
                    w == g
                }
            })
    })
}

#[test]
fn the_path_matcher_can_fail() {
    let src =
        r#"call(&t, Method::GET, "/api/integrations/github/repositories/octo/repo/issues?x=1", a)"#;
    let t = "/api/integrations/github/repositories/:owner/:repo/issues";
    assert!(issues_path(src, t));
    assert!(!issues_path(
        src,
        "/api/integrations/github/repositories/:owner/:repo"
    ));
    assert!(!issues_path(
        src,
        "/api/integrations/github/repos/:owner/:repo/issues"
    ));
    assert!(!issues_path(
        r#""/api/integrations/github/repositories/octo/../issues""#,
        t
    ));
    assert!(issues_path(
        r#""/api/integrations/{provider}/auth""#,
        "/api/integrations/:provider/auth"
    ));
}

#[test]
fn fake_provider_rows_name_a_test_that_issues_their_path() {
    let rows = fake_provider_rows();
    // The sixteen integration calls are marked so; a parser that finds none proves nothing.
    assert!(
        rows.len() >= 10,
        "only {} fake-provider rows parsed",
        rows.len()
    );
    for row in rows {
        assert!(
            !row.tests.is_empty(),
            "row {} ({}): name the test that covers it",
            row.number,
            row.path
        );
        for test in &row.tests {
            assert!(
                test.starts_with("tests/") && test.ends_with(".rs"),
                "row {}: {test:?} is not a test file",
                row.number
            );
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(test);
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("row {}: {test}: {e}", row.number));
            assert!(
                issues_path(&text, &row.path),
                "row {}: {test} never calls {}",
                row.number,
                row.path
            );
        }
    }
}

struct Caller {
    id: String,
    email: String,
    token: String,
}

async fn signup(t: &TestServer, name: &str) -> Caller {
    let email = format!(
        "{name}-{}@example.com",
        &uuid::Uuid::new_v4().to_string()[..8]
    );
    let (status, body) = call(
        t,
        Method::POST,
        "/api/auth/signup",
        None,
        Some(json!({"email": email, "password": PASSWORD, "name": name, "userType": "designer"})),
    )
    .await;
    assert_eq!(status, 200, "signup: {body}");
    Caller {
        id: body["user"]["id"].as_str().unwrap().to_owned(),
        email,
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

async fn ok(t: &TestServer, who: &Caller, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = call(t, method, path, Some(&who.token), Some(body)).await;
    assert!(status == 200 || status == 201, "{path}: {status} {answer}");
    answer
}

fn id_of(v: &Value, keys: &[&str]) -> String {
    for k in keys {
        let found = if k.is_empty() { &v["id"] } else { &v[*k]["id"] };
        if let Some(id) = found.as_str() {
            return id.to_owned();
        }
    }
    panic!("no id under {keys:?} in {v}");
}

/// The world the calls run in: what every path parameter stands for.
struct World {
    a: Caller,
    b: Caller,
    /// Invited to the team, not yet accepted: the caller of `accept-invite`.
    c: Caller,
    ids: HashMap<&'static str, String>,
}

async fn world(t: &TestServer) -> World {
    let a = signup(t, "owner").await;
    let b = signup(t, "colleague").await;
    let c = signup(t, "invitee").await;
    let org = ok(
        t,
        &a,
        Method::POST,
        "/api/organizations",
        json!({"name": "Studio"}),
    )
    .await;
    let org = id_of(&org, &["organization", ""]);
    let team = ok(
        t,
        &a,
        Method::POST,
        &format!("/api/organizations/{org}/teams"),
        json!({"name": "Design"}),
    )
    .await;
    let team = id_of(&team, &["", "team"]);
    for who in [&b, &c] {
        ok(
            t,
            &a,
            Method::POST,
            &format!("/api/teams/{team}/invite"),
            json!({"email": who.email, "role": "member"}),
        )
        .await;
    }
    ok(
        t,
        &b,
        Method::POST,
        &format!("/api/teams/{team}/accept-invite"),
        json!({}),
    )
    .await;
    let project = ok(
        t,
        &a,
        Method::POST,
        "/api/projects",
        json!({"name": "Show", "teamId": team, "members": [], "status": "planning", "priority": "urgent"}),
    )
    .await;
    let project = id_of(&project, &["project"]);
    let task = ok(
        t,
        &a,
        Method::POST,
        &format!("/api/projects/{project}/tasks"),
        json!({"title": "Opener"}),
    )
    .await;
    let task = id_of(&task, &["task"]);
    let milestone = ok(
        t,
        &a,
        Method::POST,
        &format!("/api/projects/{project}/milestones"),
        json!({"title": "Premiere"}),
    )
    .await;
    let milestone = id_of(&milestone, &["milestone"]);
    let (status, file, _) = call_raw(
        t,
        Method::POST,
        &format!("/api/projects/{project}/files"),
        &a.token,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        multipart(&[file_part("file", "logo.png", "image/png", PNG)]),
    )
    .await;
    assert!(status == 200 || status == 201, "file: {status} {file}");
    let file = id_of(&file, &["", "file"]);
    let conversation = ok(
        t,
        &a,
        Method::POST,
        "/api/conversations",
        json!({"name": "crew", "type": "group", "participants": [b.id]}),
    )
    .await;
    let conversation = id_of(&conversation, &["", "conversation"]);
    let message = ok(
        t,
        &a,
        Method::POST,
        "/api/messages",
        json!({"conversationId": conversation, "content": "hello"}),
    )
    .await;
    let message = id_of(&message, &["", "message"]);
    // b mentions a: a real notification for a.
    ok(
        t,
        &b,
        Method::POST,
        "/api/messages",
        json!({"conversationId": conversation, "content": "@owner look", "mentions": [a.id]}),
    )
    .await;
    let (status, notes) = call(t, Method::GET, "/api/notifications", Some(&a.token), None).await;
    assert_eq!(status, 200, "{notes}");
    let notification = notes[0]["id"].as_str().expect("a notification").to_owned();
    let mut ids = HashMap::new();
    ids.insert(":orgId", org);
    ids.insert(":teamId", team);
    ids.insert(":projectId", project);
    ids.insert(":taskId", task);
    ids.insert(":milestoneId", milestone);
    ids.insert(":fileId", file);
    ids.insert(":conversationId", conversation);
    ids.insert(":messageId", message);
    ids.insert(":notificationId", notification);
    ids.insert(":userId", b.id.clone());
    // 👍, percent-encoded as messagingService.removeReaction sends it.
    ids.insert(":reaction", "%F0%9F%91%8D".to_owned());
    World { a, b, c, ids }
}

fn fill(template: &str, w: &World) -> String {
    template
        .split('/')
        .map(|seg| match w.ids.get(seg) {
            Some(id) => id.clone(),
            None => {
                assert!(!seg.starts_with(':'), "no id for {seg} in {template}");
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A body the frontend would send for `method path` (templates, as in the doc).
fn body_for(method: &str, path: &str, w: &World) -> Option<Value> {
    let unique = uuid::Uuid::new_v4().to_string();
    Some(match (method, path) {
        ("POST", "/api/conversations/:conversationId/participants") => {
            json!({"userIds": [w.c.id]})
        }
        ("DELETE", "/api/conversations/:conversationId/participants") => {
            json!({"userIds": [w.c.id]})
        }
        ("GET", _) | ("DELETE", _) => return None,
        ("POST", "/api/auth/signup") => json!({
            "email": format!("new-{}@example.com", &unique[..8]),
            "password": PASSWORD, "name": "New", "userType": "client"}),
        ("POST", "/api/auth/login") => json!({"email": w.a.email, "password": PASSWORD}),
        ("POST", "/api/auth/google") => json!({}),
        ("POST", "/api/organizations") => json!({"name": "Another"}),
        ("PUT", "/api/organizations/:orgId") => json!({"name": "Studio 2"}),
        ("POST", "/api/organizations/:orgId/teams") => json!({"name": "Sound"}),
        ("POST", "/api/organizations/:orgId/invite") => {
            json!({"email": "guest@example.com", "role": "member", "message": "Join us"})
        }
        ("POST", "/api/organizations/:orgId/projects")
        | ("POST", "/api/teams/:teamId/projects")
        | ("POST", "/api/projects") => {
            json!({"name": "More", "teamId": w.ids[":teamId"], "members": []})
        }
        ("POST", "/api/teams") => json!({"name": "Lighting"}),
        ("PUT", "/api/teams/:teamId") => json!({"name": "Design 2"}),
        ("POST", "/api/teams/:teamId/invite") => json!({"email": "guest2@example.com"}),
        ("PUT", "/api/teams/:teamId/members/:userId") => json!({"role": "admin"}),
        ("PUT", "/api/projects/:projectId") => json!({"status": "on-hold"}),
        ("POST", "/api/projects/:projectId/channel") => {
            json!({"channelId": w.ids[":conversationId"]})
        }
        ("POST", "/api/projects/:projectId/tasks") => {
            json!({"title": "Encore", "priority": "high"})
        }
        ("PUT", "/api/projects/:projectId/tasks/:taskId") => json!({"status": "in-progress"}),
        ("POST", "/api/projects/:projectId/milestones") => json!({"title": "Tour"}),
        ("PUT", "/api/projects/:projectId/milestones/:milestoneId") => {
            json!({"status": "completed"})
        }
        ("PUT", "/api/files/:fileId") => json!({"description": "the logo"}),
        ("POST", "/api/channels") => json!({"name": "general", "teamId": w.ids[":teamId"]}),
        ("POST", "/api/conversations") => {
            json!({"name": "side", "type": "group", "participants": [w.b.id]})
        }
        ("POST", "/api/messages") => {
            json!({"conversationId": w.ids[":conversationId"], "content": "again"})
        }
        ("PATCH", "/api/messages/:messageId") => json!({"content": "hello, edited"}),
        ("PATCH", "/api/conversations/:conversationId") => json!({"name": "crew 2"}),
        ("PATCH", "/api/conversations/:conversationId/archive") => json!({"archived": true}),
        ("POST", "/api/messages/:messageId/reactions") => json!({"reaction": "👍"}),
        ("POST", "/api/notifications/:notificationId/snooze") => {
            json!({"snoozeUntil": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()})
        }
        _ => json!({}),
    })
}

/// Calls that end something run last, children before parents, so every other call finds its ids.
fn phase(row: &Row) -> u32 {
    match (row.method.as_str(), row.path.as_str()) {
        ("DELETE", "/api/projects/:projectId/tasks/:taskId") => 10,
        ("DELETE", "/api/messages/:messageId") => 11,
        ("DELETE", "/api/files/:fileId") => 12,
        ("DELETE", "/api/teams/:teamId/members/:userId") => 13,
        ("DELETE", "/api/projects/:projectId") => 14,
        ("DELETE", "/api/teams/:teamId") => 15,
        ("POST", "/api/organizations/:orgId/leave") => 16,
        ("DELETE", "/api/organizations/:orgId") => 17,
        ("POST", "/api/auth/logout") => 18,
        ("DELETE", _) => 9,
        _ => 0,
    }
}

/// Whether an answer shows a missing or broken route.
fn broken(status: u16, row: &Row) -> bool {
    if row.not_implemented {
        return status != 501;
    }
    status == 404 || status == 405 || status >= 500
}

async fn issue(t: &TestServer, row: &Row, w: &World) -> (u16, Value) {
    let mut path = fill(&row.path, w);
    // The query string the frontend sends with it, where the call means nothing without one.
    if row.path == "/api/messages/search" {
        path.push_str("?query=hello");
    }
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let token = if row.path.ends_with("/accept-invite") {
        &w.c.token
    } else {
        &w.a.token
    };
    let multipart_field = match (row.method.as_str(), row.path.as_str()) {
        ("POST", "/api/projects/:projectId/files") => Some("file"),
        ("POST", "/api/files/upload") => Some("files"),
        _ => None,
    };
    if let Some(field) = multipart_field {
        let (status, body, _) = call_raw(
            t,
            method,
            &path,
            token,
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(&[file_part(field, "cue.png", "image/png", PNG)]),
        )
        .await;
        return (status, body);
    }
    call(
        t,
        method,
        &path,
        Some(token),
        body_for(&row.method, &row.path, w),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_flux_claims_to_answer_is_answered() {
    let mut rows = answered_rows();
    // The doc lists about a hundred calls; most are answered. A parser that finds none proves nothing.
    assert!(rows.len() >= 60, "only {} answered rows parsed", rows.len());
    rows.sort_by_key(|r| (phase(r), r.number));
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        // The check itself can see a missing route.
        let probe = Row {
            number: 0,
            method: "GET".into(),
            path: "/api/projects/:projectId/no-such-route".into(),
            not_implemented: false,
        };
        let w = world(&t).await;
        let (status, _) = issue(&t, &probe, &w).await;
        assert!(
            broken(status, &probe),
            "{backend:?}: probe answered {status}"
        );

        let mut failures = Vec::new();
        for row in &rows {
            let (status, body) = issue(&t, row, &w).await;
            eprintln!(
                "{backend:?} row {} {} {} -> {status}",
                row.number, row.method, row.path
            );
            if broken(status, row) {
                failures.push(format!(
                    "row {} {} {} -> {status} {body}",
                    row.number, row.method, row.path
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{backend:?}: calls docs/frontend-calls.md marks `yes` that flux does not answer:\n{}",
            failures.join("\n")
        );
        t.stop().await;
    }
}
