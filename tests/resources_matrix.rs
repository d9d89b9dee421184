//! Who may touch what: every team, organization, project and file route that names a resource, called
//! by a stranger, a plain member and the owner; then bad bodies on every JSON route, which must get a
//! 4xx JSON answer and never a 500. On every configured backend.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{
    call, call_raw, conversation, file_part, project_member, text_part, upload, user, User, PNG,
};
use serde_json::{json, Value};

struct World {
    owner: User,
    member: User,
    stranger: User,
    team: String,
    project: String,
    file: String,
    stored: String,
    channel: String,
}

async fn world(t: &TestServer) -> World {
    let owner = user(t, "owner").await;
    let member = user(t, "member").await;
    let stranger = user(t, "stranger").await;
    let o = Some(owner.token.as_str());
    let (_, body) = call(t, Method::POST, "/api/teams", o, Some(json!({"name": "T"}))).await;
    let team = body["team"]["id"].as_str().unwrap().to_owned();
    call(
        t,
        Method::POST,
        &format!("/api/teams/{team}/invite"),
        o,
        Some(json!({"email": member.email})),
    )
    .await;
    let (status, _) = call(
        t,
        Method::POST,
        &format!("/api/teams/{team}/accept-invite"),
        Some(&member.token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = call(
        t,
        Method::POST,
        "/api/projects",
        o,
        Some(json!({"name": "P", "teamId": team})),
    )
    .await;
    let project = body["project"]["id"].as_str().unwrap().to_owned();
    project_member(t, &project, &member.id, "member").await;
    let (status, body) = upload(
        t,
        ListenerKind::Unified,
        "/api/files/upload",
        o,
        &[
            file_part("files", "a.png", "image/png", PNG),
            text_part("projectId", &project),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let file = body["files"][0]["id"].as_str().unwrap().to_owned();
    let stored = body["files"][0]["filename"].as_str().unwrap().to_owned();
    let channel = conversation(t, "channel", Some(&team), None).await;
    World {
        owner,
        member,
        stranger,
        team,
        project,
        file,
        stored,
        channel,
    }
}

async fn status_of(
    t: &TestServer,
    method: &Method,
    path: &str,
    token: &str,
    body: &Option<Value>,
) -> u16 {
    if path.starts_with("/uploads/") {
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        return res.status().as_u16();
    }
    call(t, method.clone(), path, Some(token), body.clone())
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stranger_member_owner_matrix() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let w = world(&t).await;
        let (team, project, file) = (&w.team, &w.project, &w.file);
        // (method, path, body, stranger, plain member, owner); run in order, owner last per row.
        let rows: Vec<(Method, String, Option<Value>, u16, u16, u16)> = vec![
            (
                Method::GET,
                format!("/api/teams/{team}"),
                None,
                403,
                200,
                200,
            ),
            (
                Method::PUT,
                format!("/api/teams/{team}"),
                Some(json!({"description": "d"})),
                403,
                403,
                200,
            ),
            (
                Method::POST,
                format!("/api/teams/{team}/invite"),
                Some(json!({"email": "new@example.com"})),
                403,
                403,
                200,
            ),
            (
                Method::PUT,
                format!("/api/teams/{team}/members/{}", w.member.id),
                Some(json!({"role": "member"})),
                403,
                403,
                200,
            ),
            (
                Method::PUT,
                format!("/api/organizations/{team}"),
                Some(json!({"description": "d"})),
                403,
                403,
                200,
            ),
            (
                Method::GET,
                format!("/api/projects/{project}"),
                None,
                403,
                200,
                200,
            ),
            (
                Method::PUT,
                format!("/api/projects/{project}"),
                Some(json!({"status": "planning"})),
                403,
                403,
                200,
            ),
            (
                Method::GET,
                format!("/api/projects/{project}/channel"),
                None,
                403,
                200,
                200,
            ),
            (
                Method::POST,
                format!("/api/projects/{project}/channel"),
                Some(json!({"channelId": w.channel})),
                403,
                200,
                200,
            ),
            (
                Method::GET,
                format!("/api/files/{file}"),
                None,
                404,
                404,
                200,
            ),
            (
                Method::PUT,
                format!("/api/files/{file}"),
                Some(json!({"tags": ["a"]})),
                404,
                404,
                200,
            ),
            (
                Method::GET,
                format!("/uploads/{}", w.stored),
                None,
                404,
                200,
                200,
            ),
            (
                Method::DELETE,
                format!("/api/files/{file}"),
                None,
                404,
                404,
                200,
            ),
            (
                Method::DELETE,
                format!("/api/organizations/{team}"),
                None,
                403,
                403,
                200,
            ),
        ];
        for (method, path, body, stranger, member, owner) in rows {
            let got = [
                status_of(&t, &method, &path, &w.stranger.token, &body).await,
                status_of(&t, &method, &path, &w.member.token, &body).await,
                status_of(&t, &method, &path, &w.owner.token, &body).await,
            ];
            assert_eq!(
                got,
                [stranger, member, owner],
                "{backend:?} {method} {path}"
            );
        }
        // Removing a member: not a stranger's call; the owner's (the team is gone now, so a new one).
        let o = Some(w.owner.token.as_str());
        let (_, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "T2"})),
        )
        .await;
        let t2 = body["team"]["id"].as_str().unwrap().to_owned();
        call(
            &t,
            Method::POST,
            &format!("/api/teams/{t2}/invite"),
            o,
            Some(json!({"email": w.member.email})),
        )
        .await;
        call(
            &t,
            Method::POST,
            &format!("/api/teams/{t2}/accept-invite"),
            Some(&w.member.token),
            None,
        )
        .await;
        let path = format!("/api/teams/{t2}/members/{}", w.member.id);
        assert_eq!(
            call(&t, Method::DELETE, &path, Some(&w.stranger.token), None)
                .await
                .0,
            403
        );
        assert_eq!(call(&t, Method::DELETE, &path, o, None).await.0, 200);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_on_every_json_route() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let w = world(&t).await;
        let (team, project, file) = (&w.team, &w.project, &w.file);
        let routes: Vec<(Method, String)> = vec![
            (Method::POST, "/api/teams".into()),
            (Method::PUT, format!("/api/teams/{team}")),
            (Method::POST, format!("/api/teams/{team}/invite")),
            (
                Method::PUT,
                format!("/api/teams/{team}/members/{}", w.member.id),
            ),
            (Method::POST, "/api/organizations".into()),
            (Method::PUT, format!("/api/organizations/{team}")),
            (Method::POST, "/api/projects".into()),
            (Method::PUT, format!("/api/projects/{project}")),
            (Method::POST, format!("/api/projects/{project}/channel")),
            (Method::PUT, format!("/api/files/{file}")),
        ];
        let huge = "x".repeat(100_000);
        let too_big = format!("{{\"name\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
        let raw_bodies: Vec<(&str, String)> = vec![
            ("application/json", "{\"name\": ".into()),
            ("application/json", "[]".into()),
            ("application/json", "\"text\"".into()),
            ("application/json", "null".into()),
            ("application/json", too_big),
            ("text/plain", "name=x".into()),
        ];
        let json_bodies = [
            json!({"name": {"$gt": ""}, "description": ["x"], "email": 1, "role": [], "status": {}, "priority": 2, "channelId": {}, "tags": [1], "isPublic": "yes"}),
            json!({"name": huge, "description": huge, "email": huge, "role": huge, "status": huge, "priority": huge, "channelId": huge, "tags": [huge], "teamId": huge}),
            json!({"name": "a\u{0}b", "description": "\u{0}", "email": "a\u{0}@b.c", "role": "admin", "status": "active", "channelId": "c\u{0}", "tags": ["\u{0}"], "teamId": "t\u{0}"}),
            json!({"name": "' OR 1=1; --", "email": "' OR '1'='1@x.y", "role": "admin' --", "status": "active'; DROP TABLE projects; --", "channelId": "' OR 1=1 --", "teamId": "' OR 1=1 --"}),
        ];
        for (method, path) in &routes {
            for (ctype, body) in &raw_bodies {
                let (status, json, resp_type) = call_raw(
                    &t,
                    method.clone(),
                    path,
                    &w.owner.token,
                    ctype,
                    body.clone(),
                )
                .await;
                assert!(
                    (400..500).contains(&status),
                    "{backend:?} {method} {path} {ctype} {}: {status} {json}",
                    &body[..body.len().min(20)]
                );
                assert!(resp_type.starts_with("application/json"), "{method} {path}");
                assert!(
                    json["message"].is_string() || json["error"].is_string(),
                    "{method} {path}: {json}"
                );
            }
            for body in &json_bodies {
                let (status, json) = call(
                    &t,
                    method.clone(),
                    path,
                    Some(&w.owner.token),
                    Some(body.clone()),
                )
                .await;
                assert!(status < 500, "{backend:?} {method} {path}: {status} {json}");
                if status >= 400 {
                    assert!(
                        json["message"].is_string() || json["error"].is_string(),
                        "{method} {path}: {json}"
                    );
                }
            }
        }
        // The SQL-ish values were stored as plain text, never interpreted.
        let (status, body) = call(&t, Method::GET, "/api/teams", Some(&w.owner.token), None).await;
        assert_eq!(status, 200);
        assert!(body["teams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "' OR 1=1; --"));
        let (status, body) = call(
            &t,
            Method::GET,
            &format!("/api/files/{file}"),
            Some(&w.owner.token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // Unknown ids of any shape are 404s.
        for path in ["/api/teams/%27%20OR%201%3D1", "/api/projects/..%2F..%2Fetc"] {
            let (status, body) = call(&t, Method::GET, path, Some(&w.owner.token), None).await;
            assert_eq!(status, 404, "{path} {body}");
        }
        // A NUL anywhere in the URI is refused before any route (issue 10 §2, web/nul.rs).
        for path in [
            "/api/teams/%00",
            "/api/projects/%00",
            "/api/projects/%00/channel",
            "/api/files/%00",
            "/uploads/%00",
            "/api/files?projectId=%00",
        ] {
            let (status, body) = call(&t, Method::GET, path, Some(&w.owner.token), None).await;
            assert_eq!(status, 400, "{path} {body}");
            assert_eq!(body["message"], "Request must not contain NUL characters");
        }
        for (method, path, body) in [
            (
                Method::PUT,
                "/api/teams/%00".to_string(),
                json!({"name": "x"}),
            ),
            (
                Method::POST,
                "/api/teams/%00/invite".to_string(),
                json!({"email": "a@b.c"}),
            ),
            (
                Method::POST,
                "/api/teams/%00/accept-invite".to_string(),
                json!({}),
            ),
            (
                Method::PUT,
                format!("/api/teams/{team}/members/%00"),
                json!({"role": "admin"}),
            ),
            (
                Method::DELETE,
                format!("/api/teams/{team}/members/%00"),
                json!({}),
            ),
            (
                Method::PUT,
                "/api/organizations/%00".to_string(),
                json!({"name": "x"}),
            ),
            (
                Method::DELETE,
                "/api/organizations/%00".to_string(),
                json!({}),
            ),
            (
                Method::PUT,
                "/api/projects/%00".to_string(),
                json!({"name": "x"}),
            ),
            (
                Method::POST,
                format!("/api/projects/{project}/channel"),
                json!({"channelId": "\u{0}"}),
            ),
            (
                Method::PUT,
                "/api/files/%00".to_string(),
                json!({"tags": []}),
            ),
            (Method::DELETE, "/api/files/%00".to_string(), json!({})),
        ] {
            // Issue 10 §2: one rule, before any route: a NUL in the URI or the body is a 400.
            let (status, json) =
                call(&t, method.clone(), &path, Some(&w.owner.token), Some(body)).await;
            assert_eq!(status, 400, "{backend:?} {method} {path}: {json}");
            assert_eq!(json["message"], "Request must not contain NUL characters");
        }
        t.stop().await;
    }
}

/// The frontend's resource flow on the rollback `serve auth` (prefix `/api` only) and on `serve
/// unified` without the prefix (what the production ingress sends): organization, team, invite,
/// project, then upload, list, download and delete a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_flow_on_auth_and_bare_unified() {
    for backend in backends() {
        for (target, kind, prefix) in [
            (Target::Auth, ListenerKind::Auth, "/api"),
            (Target::Unified, ListenerKind::Unified, ""),
        ] {
            let t = TestServer::start(target, backend).await;
            let a = user(&t, "alice").await;
            let b = user(&t, "bob").await;
            let p = |path: &str| format!("{prefix}{path}");
            let go = |method: Method, path: String, token: &str, body: Option<Value>| {
                let token = token.to_owned();
                let t = &t;
                async move {
                    resources_support::call_on(t, kind, method, &path, Some(&token), body).await
                }
            };
            let (status, _) = go(
                Method::POST,
                p("/organizations"),
                &a.token,
                Some(json!({"name": "Org"})),
            )
            .await;
            assert_eq!(status, 201);
            let (status, team) = go(
                Method::POST,
                p("/teams"),
                &a.token,
                Some(json!({"name": "Team"})),
            )
            .await;
            assert_eq!(status, 200);
            let team_id = team["team"]["id"].as_str().unwrap().to_owned();
            let (status, _) = go(
                Method::POST,
                p(&format!("/teams/{team_id}/invite")),
                &a.token,
                Some(json!({"email": b.email})),
            )
            .await;
            assert_eq!(status, 200);
            let (status, _) = go(
                Method::POST,
                p(&format!("/teams/{team_id}/accept-invite")),
                &b.token,
                None,
            )
            .await;
            assert_eq!(status, 200);
            let (status, project) = go(
                Method::POST,
                p("/projects"),
                &a.token,
                Some(json!({"name": "P", "teamId": team_id})),
            )
            .await;
            assert_eq!(status, 200);
            let project_id = project["project"]["id"].as_str().unwrap().to_owned();
            let (status, body) = upload(
                &t,
                kind,
                &p("/files/upload"),
                Some(&a.token),
                &[
                    file_part("files", "a.png", "image/png", PNG),
                    text_part("projectId", &project_id),
                ],
            )
            .await;
            assert_eq!(status, 200, "{target:?} {body}");
            let file = &body["files"][0];
            let (status, list) = go(Method::GET, p("/files"), &a.token, None).await;
            assert_eq!((status, list["files"].as_array().unwrap().len()), (200, 1));
            let res = t
                .client
                .get(t.url(kind, file["url"].as_str().unwrap()))
                .bearer_auth(&a.token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
            let (status, _) = go(
                Method::DELETE,
                p(&format!("/files/{}", file["id"].as_str().unwrap())),
                &a.token,
                None,
            )
            .await;
            assert_eq!(status, 200);
            t.stop().await;
        }
    }
}
