//! What hangs off an organization (issue 12), on every configured backend: invites and leaving with
//! the team rules, its teams, and its projects, each for a member, a stranger and bad input, with the
//! shapes the frontend's OrganizationContext and useOrganizations read.

// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, user, User};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

async fn create_org(t: &TestServer, creator: &User, name: &str) -> String {
    let (status, body) = call(
        t,
        Method::POST,
        "/api/organizations",
        Some(&creator.token),
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["organization"]["id"].as_str().unwrap().to_owned()
}

/// `who` joins organization `org` through an invite from `inviter`.
async fn join(t: &TestServer, org: &str, inviter: &User, who: &User) {
    let (status, body) = call(
        t,
        Method::POST,
        &format!("/api/organizations/{org}/invite"),
        Some(&inviter.token),
        Some(json!({"email": who.email, "role": "member"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        t,
        Method::POST,
        &format!("/api/teams/{org}/accept-invite"),
        Some(&who.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn invites_of(t: &TestServer, org: &str, owner: &User) -> Vec<Value> {
    let (status, body) = call(
        t,
        Method::GET,
        &format!("/api/teams/{org}"),
        Some(&owner.token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["invites"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_invites_and_leaving_follow_the_team_rules() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let creator = user(&t, "creator").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let org = create_org(&t, &creator, "Acme").await;
        let invite_path = format!("/api/organizations/{org}/invite");
        let c = Some(creator.token.as_str());
        let m = Some(member.token.as_str());
        let s = Some(stranger.token.as_str());

        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            c,
            Some(json!({"email": member.email.to_uppercase(), "role": "member", "message": "Welcome"})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["message"], "Invitation sent successfully");
        let invite = &body["invite"];
        assert_eq!(invite["email"], member.email.as_str());
        assert_eq!(invite["role"], "member");
        assert_eq!(invite["status"], "pending");
        assert_eq!(invite["invitedBy"], creator.id.as_str());
        assert_eq!(invite["organizationId"], org.as_str());
        assert_eq!(invite["message"], "Welcome");

        // A stranger cannot invite; an unknown organization is 404; bad bodies store nothing.
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            s,
            Some(json!({"email": "x@example.com"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/organizations/nope/invite",
            c,
            Some(json!({"email": "x@example.com"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Organization not found"}))
        );
        for bad in [
            json!({}),
            json!({"email": ""}),
            json!({"email": "not-an-email"}),
            json!({"email": "y@example.com", "role": "owner"}),
            json!({"email": "y@example.com", "role": 7}),
            json!({"email": "y@example.com", "message": 5}),
            json!({"email": "y@example.com", "message": "m".repeat(1001)}),
            json!(["y@example.com"]),
        ] {
            let (status, body) = call(&t, Method::POST, &invite_path, c, Some(bad.clone())).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        assert_eq!(invites_of(&t, &org, &creator).await.len(), 1, "{backend:?}");

        let (status, _) = call(
            &t,
            Method::POST,
            &format!("/api/teams/{org}/accept-invite"),
            m,
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(&t, Method::GET, "/api/organizations", m, None).await;
        assert_eq!(status, 200);
        assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body[0]["id"], org.as_str());
        assert_eq!(body[0]["role"], "member");
        // Already a member: the team rule.
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            c,
            Some(json!({"email": member.email})),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"message": "User is already an organization member"})
            )
        );
        // A plain member cannot invite either.
        let (status, _) = call(
            &t,
            Method::POST,
            &invite_path,
            m,
            Some(json!({"email": "z@example.com"})),
        )
        .await;
        assert_eq!(status, 403);

        // Leaving: the last owner cannot; a stranger is refused; a member leaves.
        let leave = format!("/api/organizations/{org}/leave");
        let (status, body) = call(&t, Method::POST, &leave, c, None).await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"message": "An organization must keep at least one owner"})
            ),
            "{backend:?}"
        );
        let (status, _) = call(&t, Method::POST, &leave, s, None).await;
        assert_eq!(status, 403);
        let (status, body) = call(&t, Method::POST, "/api/organizations/nope/leave", m, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Organization not found"}))
        );
        let (status, body) = call(&t, Method::POST, &leave, m, None).await;
        assert_eq!(
            (status, body),
            (
                200,
                json!({"success": true, "message": "Left organization successfully"})
            )
        );
        let (_, body) = call(&t, Method::GET, "/api/organizations", m, None).await;
        assert_eq!(body, json!([]));
        let (status, _) = call(&t, Method::POST, &leave, m, None).await;
        assert_eq!(status, 403, "no longer a member");
        let (_, body) = call(&t, Method::GET, "/api/organizations", c, None).await;
        assert_eq!(body[0]["memberCount"], 1);
        let (status, _) = call(&t, Method::POST, &leave, None, None).await;
        assert_eq!(status, 401);

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_teams_and_projects() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let creator = user(&t, "creator").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let org = create_org(&t, &creator, "Acme").await;
        join(&t, &org, &creator, &member).await;
        let c = Some(creator.token.as_str());
        let m = Some(member.token.as_str());
        let s = Some(stranger.token.as_str());
        let teams_path = format!("/api/organizations/{org}/teams");

        // Teams: owners and admins create, members read a bare array.
        let (status, team) = call(
            &t,
            Method::POST,
            &teams_path,
            c,
            Some(json!({"name": " Design ", "description": "UI", "organizationId": org})),
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {team}");
        assert_eq!(
            keys(&team),
            [
                "createdAt",
                "description",
                "id",
                "memberCount",
                "name",
                "organizationId"
            ]
        );
        assert_eq!(team["name"], "Design");
        assert_eq!(team["memberCount"], 1);
        let tid = team["id"].as_str().unwrap().to_owned();
        for (token, want) in [(m, 403), (s, 403)] {
            let (status, _) = call(
                &t,
                Method::POST,
                &teams_path,
                token,
                Some(json!({"name": "X"})),
            )
            .await;
            assert_eq!(status, want, "{backend:?}");
        }
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/organizations/nope/teams",
            c,
            Some(json!({"name": "X"})),
        )
        .await;
        assert_eq!(status, 404);
        for bad in [
            json!({}),
            json!({"name": "  "}),
            json!({"name": 5}),
            json!({"name": "n".repeat(300)}),
        ] {
            let (status, body) = call(&t, Method::POST, &teams_path, c, Some(bad.clone())).await;
            assert_eq!(status, 400, "{backend:?} {bad} {body}");
        }
        let (status, list) = call(&t, Method::GET, &teams_path, m, None).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 1, "bad input stored nothing: {list:?}");
        assert_eq!(list[0]["id"], tid.as_str());
        assert_eq!(list[0]["description"], "UI");
        assert_eq!(list[0]["memberCount"], 1);
        assert!(list[0]["createdAt"].as_str().unwrap().ends_with('Z'));
        assert_eq!(call(&t, Method::GET, &teams_path, s, None).await.0, 403);
        assert_eq!(
            call(&t, Method::GET, "/api/organizations/nope/teams", c, None)
                .await
                .0,
            404
        );
        // The team is a team: its creator owns it.
        let (status, body) = call(&t, Method::GET, &format!("/api/teams/{tid}"), c, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["members"][0]["role"], "owner");

        // Projects in the team (its members) and in the organization (its members).
        let (status, body) = call(
            &t,
            Method::POST,
            &format!("/api/teams/{tid}/projects"),
            c,
            Some(json!({"name": "Site", "members": []})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["project"]["teamId"], tid.as_str());
        let site = body["project"]["id"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &t,
            Method::POST,
            &format!("/api/teams/{tid}/projects"),
            s,
            Some(json!({"name": "Nope"})),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/teams/nope/projects",
            c,
            Some(json!({"name": "Nope"})),
        )
        .await;
        assert_eq!(status, 404);
        let org_projects = format!("/api/organizations/{org}/projects");
        let (status, body) = call(
            &t,
            Method::POST,
            &org_projects,
            m,
            Some(json!({"name": "Brand", "organizationId": org})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["project"]["teamId"], org.as_str());
        let brand = body["project"]["id"].as_str().unwrap().to_owned();
        let (status, _) = call(
            &t,
            Method::POST,
            &org_projects,
            s,
            Some(json!({"name": "Nope"})),
        )
        .await;
        assert_eq!(status, 403);
        for (path, bad) in [
            (org_projects.clone(), json!({})),
            (
                org_projects.clone(),
                json!({"name": "x", "status": "bogus"}),
            ),
            (org_projects.clone(), json!(["x"])),
            (format!("/api/teams/{tid}/projects"), json!({"name": 3})),
            (format!("/api/teams/{tid}/projects"), json!("x")),
        ] {
            let (status, body) = call(&t, Method::POST, &path, c, Some(bad.clone())).await;
            assert_eq!(status, 400, "{backend:?} {path} {bad} {body}");
        }

        let (status, list) = call(&t, Method::GET, &org_projects, m, None).await;
        assert_eq!(status, 200, "{list}");
        let mut ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        ids.sort();
        let mut want = vec![site.as_str(), brand.as_str()];
        want.sort();
        assert_eq!(ids, want, "{backend:?}: bad input stored nothing");
        assert_eq!(call(&t, Method::GET, &org_projects, s, None).await.0, 403);
        assert_eq!(
            call(&t, Method::GET, "/api/organizations/nope/projects", c, None)
                .await
                .0,
            404
        );

        // A team's projects: the organization's members see them, strangers do not.
        let tp = format!("/api/organizations/{org}/teams/{tid}/projects");
        let (status, list) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["id"], site.as_str());
        assert_eq!(list[0]["name"], "Site");
        assert_eq!(call(&t, Method::GET, &tp, s, None).await.0, 403);
        let (_, other_team) = call(
            &t,
            Method::POST,
            "/api/teams",
            c,
            Some(json!({"name": "Elsewhere"})),
        )
        .await;
        let other = other_team["team"]["id"].as_str().unwrap();
        let (status, body) = call(
            &t,
            Method::GET,
            &format!("/api/organizations/{org}/teams/{other}/projects"),
            c,
            None,
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Team not found"})),
            "a team outside the organization"
        );
        let (status, _) = call(
            &t,
            Method::GET,
            &format!("/api/organizations/nope/teams/{tid}/projects"),
            c,
            None,
        )
        .await;
        assert_eq!(status, 404);

        // Deleting the organization leaves its team standing.
        let (status, _) = call(
            &t,
            Method::DELETE,
            &format!("/api/organizations/{org}"),
            c,
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(&t, Method::GET, &format!("/api/teams/{tid}"), c, None).await;
        assert_eq!(status, 200);

        t.stop().await;
    }
}
