//! Teams and organizations (CONTRACT §5, §6) on a real server, on every configured backend: success
//! shapes, each documented error, the role rules of §14.2, and bad bodies.

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_on, call_raw, user};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_story_roles_and_invites() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let m = Some(member.token.as_str());
        let s = Some(stranger.token.as_str());

        // Create: the frontend reads message + team; the creator is owner.
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "  Design  ", "description": "UI", "organizationId": "ignored"})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["message"], "Team created successfully");
        let team = &body["team"];
        assert_eq!(
            keys(team),
            sorted(&[
                "id",
                "name",
                "description",
                "createdBy",
                "createdAt",
                "updatedAt",
                "members",
                "invites"
            ])
        );
        assert_eq!(team["name"], "Design");
        assert_eq!(team["createdBy"], owner.id.as_str());
        assert_eq!(team["members"][0]["userId"], owner.id.as_str());
        assert_eq!(team["members"][0]["role"], "owner");
        assert!(team["members"][0]["joinedAt"]
            .as_str()
            .unwrap()
            .ends_with('Z'));
        let id = team["id"].as_str().unwrap().to_owned();
        let tp = format!("/api/teams/{id}");

        // Create errors.
        for bad in [
            json!({}),
            json!({"name": ""}),
            json!({"name": "   "}),
            json!({"name": null}),
        ] {
            let (status, body) = call(&t, Method::POST, "/api/teams", o, Some(bad)).await;
            assert_eq!(
                (status, body),
                (400, json!({"message": "Team name is required"}))
            );
        }
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "x".repeat(256)})),
        )
        .await;
        assert_eq!(status, 400);
        assert!(body["message"].as_str().unwrap().contains("at most 255"));
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "a", "description": "d".repeat(2001)})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, body) =
            call(&t, Method::POST, "/api/teams", o, Some(json!({"name": 5}))).await;
        assert_eq!(status, 400);
        assert_eq!(body["message"], "Invalid request body");
        let (status, body, ctype) = call_raw(
            &t,
            Method::POST,
            "/api/teams",
            &owner.token,
            "application/json",
            "{\"name\": ",
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("Malformed JSON body"))
        );
        assert!(ctype.starts_with("application/json"));
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            None,
            Some(json!({"name": "a"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Authentication required"}))
        );
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            Some("not.a.jwt"),
            Some(json!({"name": "a"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Invalid or expired token"}))
        );
        // SQL-ish text is stored as text.
        let sqlish = "x'); DROP TABLE groups; --";
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams",
            s,
            Some(json!({"name": sqlish})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["team"]["name"], sqlish);

        // List: only the caller's teams; bounded paging.
        let (status, body) = call(&t, Method::GET, "/api/teams", o, None).await;
        assert_eq!(status, 200);
        let teams = body["teams"].as_array().unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0]["id"], id.as_str());
        let (_, body) = call(&t, Method::GET, "/api/teams", m, None).await;
        assert_eq!(body, json!({"teams": []}));
        call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "Second"})),
        )
        .await;
        let (_, body) = call(&t, Method::GET, "/api/teams?limit=1", o, None).await;
        assert_eq!(body["teams"].as_array().unwrap().len(), 1);
        assert_eq!(body["teams"][0]["name"], "Second");
        let (_, body) = call(&t, Method::GET, "/api/teams?limit=1&page=2", o, None).await;
        assert_eq!(body["teams"][0]["name"], "Design");
        let (status, body) = call(&t, Method::GET, "/api/teams?limit=NaN&page=-4", o, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["teams"].as_array().unwrap().len(), 2);

        // Read: member only.
        let (status, body) = call(&t, Method::GET, &tp, o, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["id"], id.as_str());
        let (status, body) = call(&t, Method::GET, &tp, s, None).await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = call(&t, Method::GET, "/api/teams/nope", o, None).await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));

        // Invite.
        let invite_path = format!("{tp}/invite");
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            o,
            Some(json!({"email": format!("  {}  ", member.email.to_uppercase())})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Invitation sent successfully");
        let invite = &body["invite"];
        assert_eq!(
            keys(invite),
            sorted(&["id", "email", "role", "invitedBy", "invitedAt", "status"])
        );
        assert_eq!(invite["email"], member.email.as_str());
        assert_eq!(invite["role"], "member");
        assert_eq!(invite["status"], "pending");
        assert_eq!(invite["invitedBy"], owner.id.as_str());
        for (bad, text) in [
            (json!({}), "Email is required"),
            (json!({"email": "  "}), "Email is required"),
            (json!({"email": "not-an-email"}), "Valid email is required"),
            (
                json!({"email": "a@b.c", "role": "owner"}),
                "Role must be admin or member",
            ),
            (
                json!({"email": "a@b.c", "role": "god"}),
                "Role must be admin or member",
            ),
        ] {
            let (status, body) = call(&t, Method::POST, &invite_path, o, Some(bad)).await;
            assert_eq!((status, body), (400, json!({"message": text})));
        }
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            o,
            Some(json!({"email": ["x"]})),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            s,
            Some(json!({"email": "x@y.z"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/teams/nope/invite",
            o,
            Some(json!({"email": "x@y.z"})),
        )
        .await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));

        // Accept.
        let accept = format!("{tp}/accept-invite");
        let (status, body) = call(&t, Method::POST, &accept, s, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Invitation not found"}))
        );
        let (status, body) = call(&t, Method::POST, "/api/teams/nope/accept-invite", m, None).await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));
        let (status, body) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!(status, 403, "not a member before accepting: {body}");
        let (status, body) = call(&t, Method::POST, &accept, m, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Successfully joined the team");
        assert_eq!(body["team"]["members"].as_array().unwrap().len(), 2);
        let (status, _) = call(&t, Method::POST, &accept, m, None).await;
        assert_eq!(status, 404, "an invite is used once");
        let (status, body) = call(
            &t,
            Method::POST,
            &invite_path,
            o,
            Some(json!({"email": member.email})),
        )
        .await;
        assert_eq!(
            (status, body),
            (400, json!({"message": "User is already a team member"}))
        );

        // Pending invite e-mails: owners and admins only.
        call(
            &t,
            Method::POST,
            &invite_path,
            o,
            Some(json!({"email": "later@example.com"})),
        )
        .await;
        let (_, body) = call(&t, Method::GET, &tp, o, None).await;
        let emails: Vec<&str> = body["invites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["email"].as_str().unwrap())
            .collect();
        assert!(emails.contains(&"later@example.com"), "{body}");
        let (status, body) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["invites"], json!([]));
        let (_, body) = call(&t, Method::GET, "/api/teams", m, None).await;
        assert_eq!(body["teams"][0]["invites"], json!([]));

        // Update: owner/admin only; empty name keeps, empty description clears.
        let (status, body) = call(&t, Method::PUT, &tp, m, Some(json!({"name": "Mine"}))).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(&t, Method::PUT, &tp, s, Some(json!({"name": "Mine"}))).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            "/api/teams/nope",
            o,
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));
        let (status, body) = call(
            &t,
            Method::PUT,
            &tp,
            o,
            Some(json!({"name": "", "description": ""})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "Design");
        assert_eq!(body["description"], "");
        assert!(body["updatedAt"].is_string());
        let (status, body) = call(&t, Method::PUT, &tp, o, Some(json!({"name": "Renamed"}))).await;
        assert_eq!((status, body["name"].as_str()), (200, Some("Renamed")));
        let (status, _) = call(&t, Method::PUT, &tp, o, Some(json!({"name": true}))).await;
        assert_eq!(status, 400);

        // Roles: owner only, valid roles, never without an owner.
        let member_path = format!("{tp}/members/{}", member.id);
        let owner_path = format!("{tp}/members/{}", owner.id);
        let (status, body) = call(
            &t,
            Method::PUT,
            &member_path,
            m,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Only team owner can change roles"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            &member_path,
            s,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(status, 403, "{body}");
        for bad in [json!({}), json!({"role": "boss"}), json!({"role": 1})] {
            let (status, body) = call(&t, Method::PUT, &member_path, o, Some(bad)).await;
            assert_eq!(status, 400, "{body}");
        }
        let (status, body) = call(
            &t,
            Method::PUT,
            &member_path,
            o,
            Some(json!({"role": "boss"})),
        )
        .await;
        assert_eq!(
            body,
            json!({"message": "Valid role is required"}),
            "{status}"
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            &format!("{tp}/members/{}", stranger.id),
            o,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Member not found"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            "/api/teams/nope/members/x",
            o,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));
        let (status, body) = call(
            &t,
            Method::PUT,
            &owner_path,
            o,
            Some(json!({"role": "member"})),
        )
        .await;
        assert_eq!(status, 400, "the last owner cannot step down: {body}");
        let (status, body) = call(
            &t,
            Method::PUT,
            &member_path,
            o,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Member role updated successfully");
        assert_eq!(
            keys(&body["member"]),
            sorted(&["userId", "role", "joinedAt"])
        );
        assert_eq!(body["member"]["role"], "admin");

        // An admin manages but cannot remove the owner; the last owner cannot leave.
        let (status, _) = call(
            &t,
            Method::POST,
            &invite_path,
            m,
            Some(json!({"email": stranger.email, "role": "admin"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(&t, Method::DELETE, &owner_path, m, None).await;
        assert_eq!(
            (status, body),
            (400, json!({"message": "Cannot remove team owner"}))
        );
        let (status, body) = call(&t, Method::DELETE, &owner_path, o, None).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = call(&t, Method::DELETE, &member_path, s, None).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::DELETE,
            &format!("{tp}/members/{}", stranger.id),
            o,
            None,
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Member not found"}))
        );
        let (status, _) = call(&t, Method::DELETE, "/api/teams/nope/members/x", o, None).await;
        assert_eq!(status, 404);

        // The stranger accepts the admin invite, then the owner hands over and leaves.
        let (status, body) = call(&t, Method::POST, &accept, s, None).await;
        assert_eq!(status, 200, "{body}");
        let stranger_path = format!("{tp}/members/{}", stranger.id);
        let (status, _) = call(
            &t,
            Method::PUT,
            &stranger_path,
            o,
            Some(json!({"role": "owner"})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(&t, Method::DELETE, &owner_path, o, None).await;
        assert_eq!(
            (status, body),
            (200, json!({"message": "Member removed successfully"}))
        );
        let (status, _) = call(&t, Method::GET, &tp, o, None).await;
        assert_eq!(status, 403, "a former member is a stranger");
        // A member may leave by itself.
        let (status, _) = call(&t, Method::DELETE, &member_path, m, None).await;
        assert_eq!(status, 200);
        let (_, body) = call(&t, Method::GET, &tp, s, None).await;
        let members = body["members"].as_array().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0]["role"], "owner");

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_are_teams() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let creator = user(&t, "creator").await;
        let other = user(&t, "other").await;
        let stranger = user(&t, "stranger").await;
        let c = Some(creator.token.as_str());
        let x = Some(other.token.as_str());
        let s = Some(stranger.token.as_str());

        let (status, body) = call(
            &t,
            Method::POST,
            "/api/organizations",
            c,
            Some(json!({"name": "Acme", "description": "d", "website": "w", "industry": "i", "size": "s"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let org = &body["organization"];
        assert_eq!(
            keys(org),
            sorted(&[
                "id",
                "name",
                "description",
                "role",
                "createdAt",
                "memberCount"
            ])
        );
        assert_eq!(org["role"], "admin");
        assert_eq!(org["memberCount"], 1);
        let id = org["id"].as_str().unwrap().to_owned();
        let op = format!("/api/organizations/{id}");

        for bad in [json!({}), json!({"name": "  "})] {
            let (status, body) = call(&t, Method::POST, "/api/organizations", c, Some(bad)).await;
            assert_eq!(
                (status, body),
                (400, json!({"message": "Organization name is required"}))
            );
        }
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/organizations",
            c,
            Some(json!({"name": {"a": 1}})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = call(&t, Method::GET, "/api/organizations", None, None).await;
        assert_eq!(status, 401);

        // Teams and organizations list each other.
        let (_, team) = call(
            &t,
            Method::POST,
            "/api/teams",
            c,
            Some(json!({"name": "T"})),
        )
        .await;
        let (status, body) = call(&t, Method::GET, "/api/organizations", c, None).await;
        assert_eq!(status, 200);
        // A bare array: OrganizationContext stores the body itself as the list.
        let orgs = body.as_array().unwrap();
        assert_eq!(orgs.len(), 2);
        assert!(orgs
            .iter()
            .any(|o| o["id"] == team["team"]["id"] && o["role"] == "owner"));
        let (_, body) = call(&t, Method::GET, "/api/teams", c, None).await;
        assert!(body["teams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id.as_str()));
        let (_, body) = call(&t, Method::GET, "/api/organizations", s, None).await;
        assert_eq!(body, json!([]));
        let (_, body) = call(&t, Method::GET, "/api/organizations?limit=1", c, None).await;
        assert_eq!(body.as_array().unwrap().len(), 1);

        // Update: bare OrgSummary for owner/admin.
        let (status, body) = call(
            &t,
            Method::PUT,
            &op,
            c,
            Some(json!({"name": "Acme Inc", "description": ""})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "Acme Inc");
        assert_eq!(body["description"], "");
        assert_eq!(body["memberCount"], 1);
        assert_eq!(body["role"], "admin");
        let (status, body) = call(&t, Method::PUT, &op, s, Some(json!({"name": "x"}))).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            "/api/organizations/nope",
            c,
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Organization not found"}))
        );
        let (status, _) = call(&t, Method::PUT, &op, c, Some(json!({"name": 3}))).await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::PUT,
            &op,
            c,
            Some(json!({"name": "n".repeat(300)})),
        )
        .await;
        assert_eq!(status, 400);

        // The creator's admin counts as owner: it can change roles, and it is the org's last owner.
        let tp = format!("/api/teams/{id}");
        call(
            &t,
            Method::POST,
            &format!("{tp}/invite"),
            c,
            Some(json!({"email": other.email})),
        )
        .await;
        let (status, _) = call(&t, Method::POST, &format!("{tp}/accept-invite"), x, None).await;
        assert_eq!(status, 200);
        let (status, body) = call(
            &t,
            Method::PUT,
            &format!("{tp}/members/{}", other.id),
            c,
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = call(
            &t,
            Method::DELETE,
            &format!("{tp}/members/{}", creator.id),
            c,
            None,
        )
        .await;
        assert_eq!(status, 400, "the creator is the last owner-equivalent");
        let (status, _) = call(
            &t,
            Method::DELETE,
            &format!("{tp}/members/{}", creator.id),
            x,
            None,
        )
        .await;
        assert_eq!(
            status, 400,
            "an admin cannot remove the owner-equivalent creator"
        );
        let (_, body) = call(&t, Method::GET, "/api/organizations", x, None).await;
        assert_eq!(body[0]["memberCount"], 2);

        // Delete: owner(-equivalent) only.
        let (status, body) = call(&t, Method::DELETE, &op, x, None).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, _) = call(&t, Method::DELETE, &op, s, None).await;
        assert_eq!(status, 403);
        let (status, body) = call(&t, Method::DELETE, &op, c, None).await;
        assert_eq!(
            (status, body),
            (200, json!({"message": "Organization deleted successfully"}))
        );
        let (status, body) = call(&t, Method::DELETE, &op, c, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Organization not found"}))
        );
        let (status, _) = call(&t, Method::GET, &tp, x, None).await;
        assert_eq!(status, 404);

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_prefix_on_unified_only() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let u = user(&t, "prefix").await;
        for path in [
            "/api/teams",
            "/teams",
            "/api/organizations",
            "/organizations",
            "/api/projects",
            "/projects",
            "/api/files",
            "/files",
        ] {
            let (status, _) = call(&t, Method::GET, path, Some(&u.token), None).await;
            assert_eq!(status, 200, "{path}");
        }
        let (status, body) = call(
            &t,
            Method::POST,
            "/teams",
            Some(&u.token),
            Some(json!({"name": "bare"})),
        )
        .await;
        assert_eq!(status, 200);
        let (_, list) = call(&t, Method::GET, "/api/teams", Some(&u.token), None).await;
        assert_eq!(list["teams"][0]["id"], body["team"]["id"]);
        t.stop().await;

        let t = TestServer::start(Target::Auth, backend).await;
        let u = user(&t, "prefix").await;
        let (status, _) = call_on(
            &t,
            ListenerKind::Auth,
            Method::GET,
            "/api/teams",
            Some(&u.token),
            None,
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call_on(
            &t,
            ListenerKind::Auth,
            Method::GET,
            "/teams",
            Some(&u.token),
            None,
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "API endpoint not found"}))
        );
        let (status, _) = call_on(
            &t,
            ListenerKind::Auth,
            Method::POST,
            "/api/upload",
            Some(&u.token),
            None,
        )
        .await;
        assert_eq!(
            status, 404,
            "POST /api/upload belongs to the messaging service"
        );
        t.stop().await;
    }
}

/// Two owners demoting each other at the same moment: one wins, the team keeps an owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_demotions_keep_an_owner() {
    for backend in backends() {
        let t = TestServer::start_with(Target::Unified, backend, |s| s.server.workers = 2).await;
        for round in 0..10 {
            let a = user(&t, "a").await;
            let b = user(&t, "b").await;
            let (_, body) = call(
                &t,
                Method::POST,
                "/api/teams",
                Some(&a.token),
                Some(json!({"name": "race"})),
            )
            .await;
            let tp = format!("/api/teams/{}", body["team"]["id"].as_str().unwrap());
            call(
                &t,
                Method::POST,
                &format!("{tp}/invite"),
                Some(&a.token),
                Some(json!({"email": b.email})),
            )
            .await;
            call(
                &t,
                Method::POST,
                &format!("{tp}/accept-invite"),
                Some(&b.token),
                None,
            )
            .await;
            let (status, _) = call(
                &t,
                Method::PUT,
                &format!("{tp}/members/{}", b.id),
                Some(&a.token),
                Some(json!({"role": "owner"})),
            )
            .await;
            assert_eq!(status, 200);
            let (path_b, path_a) = (
                format!("{tp}/members/{}", b.id),
                format!("{tp}/members/{}", a.id),
            );
            let demote_b = call(
                &t,
                Method::PUT,
                &path_b,
                Some(&a.token),
                Some(json!({"role": "member"})),
            );
            let demote_a = call(
                &t,
                Method::PUT,
                &path_a,
                Some(&b.token),
                Some(json!({"role": "member"})),
            );
            let ((s1, _), (s2, _)) = tokio::join!(demote_b, demote_a);
            assert!(s1 < 500 && s2 < 500, "{s1} {s2}");
            let (_, team) = call(&t, Method::GET, &tp, Some(&a.token), None).await;
            let owners = team["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "owner")
                .count();
            assert!(owners >= 1, "{backend:?} round {round}: {team}");
        }
        t.stop().await;
    }
}
