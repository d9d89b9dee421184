//! The dashboards' calls of issue 12 on a real server, on every configured backend: the member lists
//! of a team, an organization and a project, their statistics, deleting a team, the organization
//! invite's stored note, and the frontend's project status and priority words — each for a member, a
//! stranger and bad input.

// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_raw, user, User};
use serde_json::{json, Value};

async fn create(t: &TestServer, who: &User, path: &str, body: Value) -> Value {
    let (status, body) = call(t, Method::POST, path, Some(&who.token), Some(body)).await;
    assert!(status == 200 || status == 201, "{path}: {status} {body}");
    body
}

/// `who` joins group `id` through an invite from `inviter`.
async fn join(t: &TestServer, id: &str, inviter: &User, who: &User, role: &str) {
    create(
        t,
        inviter,
        &format!("/api/teams/{id}/invite"),
        json!({"email": who.email, "role": role}),
    )
    .await;
    create(t, who, &format!("/api/teams/{id}/accept-invite"), json!({})).await;
}

async fn get(t: &TestServer, who: &User, path: &str) -> (u16, Value) {
    call(t, Method::GET, path, Some(&who.token), None).await
}

fn by_user<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == id)
        .unwrap_or_else(|| panic!("{id} missing from {list}"))
}

async fn stored_invite_message(t: &TestServer, email: &str) -> Option<String> {
    use flux::db::schema::group_invites;
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_read().await.unwrap();
    flux::db!(conn, |c| {
        group_invites::table
            .filter(group_invites::email.eq(email))
            .select(group_invites::message)
            .first::<Option<String>>(c)
            .await
    })
    .unwrap()
}

async fn invite_count(t: &TestServer) -> i64 {
    use flux::db::schema::group_invites;
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_read().await.unwrap();
    flux::db!(conn, |c| {
        group_invites::table.count().get_result::<i64>(c).await
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lists_of_teams_organizations_and_projects() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let team = create(&t, &owner, "/api/teams", json!({"name": "T"})).await["team"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        join(&t, &team, &owner, &colleague, "member").await;
        let org = create(&t, &owner, "/api/organizations", json!({"name": "O"})).await;
        let org = org["organization"]["id"]
            .as_str()
            .or(org["id"].as_str())
            .unwrap()
            .to_owned();
        let project = create(
            &t,
            &owner,
            "/api/projects",
            json!({"name": "P", "teamId": team, "members": []}),
        )
        .await["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Team: a bare array with who each member is.
        let (status, list) = get(&t, &colleague, &format!("/api/teams/{team}/members")).await;
        assert_eq!(status, 200, "{backend:?} {list}");
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        let o = by_user(&list, &owner.id);
        assert_eq!(o["name"], "owner");
        assert_eq!(o["email"], owner.email.as_str());
        assert_eq!(o["role"], "owner");
        assert_eq!(o["teamId"], team.as_str());
        assert_eq!(o["id"], owner.id.as_str());
        assert_eq!(o["isActive"], true);
        assert!(o["joinedAt"].as_str().unwrap().ends_with('Z'), "{o}");
        assert_eq!(by_user(&list, &colleague.id)["role"], "member");

        // Organization: the same, keyed by organizationId.
        let (status, list) = get(&t, &owner, &format!("/api/organizations/{org}/members")).await;
        assert_eq!(status, 200, "{backend:?} {list}");
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        assert_eq!(by_user(&list, &owner.id)["organizationId"], org.as_str());

        // Project: its owner plus the team's members, with project roles.
        let (status, list) = get(&t, &colleague, &format!("/api/projects/{project}/members")).await;
        assert_eq!(status, 200, "{backend:?} {list}");
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        assert_eq!(by_user(&list, &owner.id)["role"], "owner");
        let c = by_user(&list, &colleague.id);
        assert_eq!(c["role"], "member");
        assert_eq!(c["name"], "colleague");
        assert_eq!(c["projectId"], project.as_str());

        // Strangers: 403 with a message; unknown ids: 404; no token: 401.
        for path in [
            format!("/api/teams/{team}/members"),
            format!("/api/organizations/{org}/members"),
            format!("/api/projects/{project}/members"),
        ] {
            let (status, body) = get(&t, &stranger, &path).await;
            assert_eq!(status, 403, "{backend:?} {path} {body}");
            assert!(body["message"].is_string(), "{body}");
            let (status, _) = call(&t, Method::GET, &path, None, None).await;
            assert_eq!(status, 401, "{path}");
        }
        for path in [
            "/api/teams/nope/members",
            "/api/organizations/nope/members",
            "/api/projects/nope/members",
            "/api/projects/%E2%98%83/members",
        ] {
            let (status, body) = get(&t, &owner, path).await;
            assert_eq!(status, 404, "{backend:?} {path} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_statistics() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let org = create(&t, &owner, "/api/organizations", json!({"name": "O"})).await;
        let org = org["organization"]["id"]
            .as_str()
            .or(org["id"].as_str())
            .unwrap()
            .to_owned();
        let team = create(
            &t,
            &owner,
            &format!("/api/organizations/{org}/teams"),
            json!({"name": "T"}),
        )
        .await;
        let team = team["id"]
            .as_str()
            .or(team["team"]["id"].as_str())
            .unwrap()
            .to_owned();
        join(&t, &team, &owner, &colleague, "member").await;
        let project = |name: &'static str, status: &'static str| json!({"name": name, "teamId": team, "status": status, "members": []});
        let p1 = create(&t, &owner, "/api/projects", project("A", "active")).await["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        create(&t, &owner, "/api/projects", project("B", "completed")).await;
        create(&t, &owner, "/api/projects", project("C", "on-hold")).await;
        for (title, status) in [("a", "completed"), ("b", "todo"), ("c", "in-progress")] {
            create(
                &t,
                &owner,
                &format!("/api/projects/{p1}/tasks"),
                json!({"title": title, "status": status}),
            )
            .await;
        }

        let (status, s) = get(&t, &colleague, &format!("/api/projects/{p1}/stats")).await;
        assert_eq!(status, 200, "{backend:?} {s}");
        assert_eq!(s["totalMembers"], 2, "{s}");
        assert_eq!(s["totalFiles"], 0);
        assert_eq!(s["totalFileSize"], 0);
        assert_eq!(s["completionPercentage"], 33, "{s}");
        assert!(s["lastActivity"].as_str().unwrap().ends_with('Z'), "{s}");

        let (status, s) = get(&t, &colleague, &format!("/api/teams/{team}/stats")).await;
        assert_eq!(status, 200, "{backend:?} {s}");
        assert_eq!(s["totalMembers"], 2, "{s}");
        assert_eq!(s["totalProjects"], 3, "{s}");
        assert_eq!(s["activeProjects"], 1, "{s}");
        assert_eq!(s["completedProjects"], 1, "{s}");
        assert_eq!(s["totalOrganizations"], 1, "{s}");

        let (status, s) = get(&t, &owner, &format!("/api/organizations/{org}/stats")).await;
        assert_eq!(status, 200, "{backend:?} {s}");
        assert_eq!(s["totalTeams"], 1, "{s}");
        assert_eq!(s["totalProjects"], 3, "{s}");
        assert_eq!(s["totalMembers"], 2, "{s}");
        assert_eq!(s["activeProjects"], 1, "{s}");

        // The colleague is in the team, not in the organization itself.
        let (status, _) = get(&t, &colleague, &format!("/api/organizations/{org}/stats")).await;
        assert_eq!(status, 403, "{backend:?}");
        for path in [
            format!("/api/projects/{p1}/stats"),
            format!("/api/teams/{team}/stats"),
            format!("/api/organizations/{org}/stats"),
        ] {
            let (status, body) = get(&t, &stranger, &path).await;
            assert_eq!(status, 403, "{backend:?} {path} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        for path in [
            "/api/projects/nope/stats",
            "/api/teams/nope/stats",
            "/api/organizations/nope/stats",
        ] {
            let (status, body) = get(&t, &owner, path).await;
            assert_eq!(status, 404, "{backend:?} {path} {body}");
        }
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_team() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let team = create(&t, &owner, "/api/teams", json!({"name": "T"})).await["team"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        join(&t, &team, &owner, &colleague, "admin").await;
        let project = create(
            &t,
            &owner,
            "/api/projects",
            json!({"name": "P", "teamId": team}),
        )
        .await["project"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/teams/{team}");
        let org = create(&t, &owner, "/api/organizations", json!({"name": "O"})).await;
        let org = org["organization"]["id"]
            .as_str()
            .or(org["id"].as_str())
            .unwrap()
            .to_owned();

        // A stranger and an admin may not; an organization is not a team; unknown is 404.
        let (status, body) = call(&t, Method::DELETE, &path, Some(&stranger.token), None).await;
        assert_eq!(status, 403, "{backend:?} {body}");
        assert!(body["message"].is_string(), "{body}");
        let (status, _) = call(&t, Method::DELETE, &path, Some(&colleague.token), None).await;
        assert_eq!(status, 403, "{backend:?}");
        let (status, _) = call(
            &t,
            Method::DELETE,
            &format!("/api/teams/{org}"),
            Some(&owner.token),
            None,
        )
        .await;
        assert_eq!(status, 404, "{backend:?}");
        let (status, _) = call(
            &t,
            Method::DELETE,
            "/api/teams/nope",
            Some(&owner.token),
            None,
        )
        .await;
        assert_eq!(status, 404, "{backend:?}");
        let (status, _) = get(&t, &colleague, &format!("/api/projects/{project}")).await;
        assert_eq!(status, 200, "{backend:?}: nothing was deleted yet");

        let (status, body) = call(&t, Method::DELETE, &path, Some(&owner.token), None).await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["success"], true);
        let (status, _) = get(&t, &owner, &path).await;
        assert_eq!(status, 404, "{backend:?}");
        // The project stays with its owner; the team's colleague loses it.
        let (status, _) = get(&t, &owner, &format!("/api/projects/{project}")).await;
        assert_eq!(status, 200, "{backend:?}");
        let (status, _) = get(&t, &colleague, &format!("/api/projects/{project}")).await;
        assert_eq!(status, 403, "{backend:?}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_invite_message_is_stored() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let stranger = user(&t, "stranger").await;
        let org = create(&t, &owner, "/api/organizations", json!({"name": "O"})).await;
        let org = org["organization"]["id"]
            .as_str()
            .or(org["id"].as_str())
            .unwrap()
            .to_owned();
        let path = format!("/api/organizations/{org}/invite");
        let body = create(
            &t,
            &owner,
            &path,
            json!({"email": "new@example.com", "role": "member", "message": "Welcome aboard"}),
        )
        .await;
        assert_eq!(body["invite"]["message"], "Welcome aboard");
        assert_eq!(
            stored_invite_message(&t, "new@example.com")
                .await
                .as_deref(),
            Some("Welcome aboard"),
            "{backend:?}"
        );
        // Inviting again refreshes the note with the invite.
        create(
            &t,
            &owner,
            &path,
            json!({"email": "new@example.com", "message": "Second note"}),
        )
        .await;
        assert_eq!(
            stored_invite_message(&t, "new@example.com")
                .await
                .as_deref(),
            Some("Second note")
        );
        // No note: none stored, an empty string echoed.
        let body = create(&t, &owner, &path, json!({"email": "plain@example.com"})).await;
        assert_eq!(body["invite"]["message"], "");
        assert_eq!(stored_invite_message(&t, "plain@example.com").await, None);

        // A stranger's or a bad invite stores nothing.
        let before = invite_count(&t).await;
        let (status, _) = call(
            &t,
            Method::POST,
            &path,
            Some(&stranger.token),
            Some(json!({"email": "x@example.com", "message": "hi"})),
        )
        .await;
        assert_eq!(status, 403, "{backend:?}");
        for bad in [
            json!({"email": "y@example.com", "message": 5}),
            json!({"email": "y@example.com", "message": "m".repeat(1001)}),
            json!({"email": "not-an-email", "message": "hi"}),
        ] {
            let (status, body) = call(&t, Method::POST, &path, Some(&owner.token), Some(bad)).await;
            assert_eq!(status, 400, "{backend:?} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        let (status, _, _) = call_raw(
            &t,
            Method::POST,
            &path,
            &owner.token,
            "application/json",
            "{",
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(invite_count(&t).await, before, "{backend:?}");
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frontends_project_status_and_priority_words() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let stranger = user(&t, "stranger").await;
        // CreateProject and the project forms send these (src/types/organization.ts, 1ef9d91).
        let body = create(
            &t,
            &owner,
            "/api/projects",
            json!({"name": "P", "status": "on-hold", "priority": "urgent"}),
        )
        .await;
        let id = body["project"]["id"].as_str().unwrap().to_owned();
        assert_eq!(body["project"]["status"], "on-hold", "{backend:?}");
        assert_eq!(body["project"]["priority"], "urgent");
        for status in [
            "planning",
            "active",
            "completed",
            "cancelled",
            "in-progress",
        ] {
            let (code, body) = call(
                &t,
                Method::PUT,
                &format!("/api/projects/{id}"),
                Some(&owner.token),
                Some(json!({"status": status})),
            )
            .await;
            assert_eq!(code, 200, "{backend:?} {status} {body}");
            assert_eq!(body["project"]["status"], status);
        }
        let (code, _) = call(
            &t,
            Method::PUT,
            &format!("/api/projects/{id}"),
            Some(&stranger.token),
            Some(json!({"status": "on-hold"})),
        )
        .await;
        assert!(code == 403 || code == 404, "{backend:?} {code}");
        let (_, list) = get(&t, &owner, "/api/projects").await;
        let before = list["projects"].as_array().unwrap().len();
        for bad in [
            json!({"name": "Q", "status": "paused"}),
            json!({"name": "Q", "priority": "critical!"}),
            json!({"name": "Q", "status": 3}),
        ] {
            let (code, body) = call(
                &t,
                Method::POST,
                "/api/projects",
                Some(&owner.token),
                Some(bad),
            )
            .await;
            assert_eq!(code, 400, "{backend:?} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        let (_, list) = get(&t, &owner, "/api/projects").await;
        assert_eq!(list["projects"].as_array().unwrap().len(), before);
        let (_, p) = get(&t, &owner, &format!("/api/projects/{id}")).await;
        assert_eq!(
            p["status"], "in-progress",
            "{backend:?}: the stranger changed nothing"
        );
        t.stop().await;
    }
}
