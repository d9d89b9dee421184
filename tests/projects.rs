//! Projects (CONTRACT §7) on a real server, on every configured backend: success shapes, documented
//! errors, validation, the membership matrix, and the channel link with its `channel` field.

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_raw, conversation, project_member, user};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_story_and_matrix() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let m = Some(member.token.as_str());
        let s = Some(stranger.token.as_str());

        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "Launch", "description": "site", "organizationId": "x", "startDate": "2026-01-01", "members": []})),
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["message"], "Project created successfully");
        let p = &body["project"];
        let mut expected: Vec<String> = [
            "id",
            "name",
            "description",
            "teamId",
            "status",
            "priority",
            "createdBy",
            "createdAt",
            "updatedAt",
            "members",
            "channelMetadata",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        expected.sort();
        assert_eq!(keys(p), expected);
        assert_eq!(p["status"], "active");
        assert_eq!(p["priority"], "medium");
        assert_eq!(p["teamId"], Value::Null);
        assert_eq!(p["channelMetadata"], Value::Null);
        assert_eq!(p["members"][0]["userId"], owner.id.as_str());
        assert_eq!(p["members"][0]["role"], "owner");
        let id = p["id"].as_str().unwrap().to_owned();
        let pp = format!("/api/projects/{id}");

        // Validation.
        for (bad, status_expected) in [
            (json!({}), 400),
            (json!({"name": " "}), 400),
            (json!({"name": "n".repeat(201)}), 400),
            (json!({"name": "a", "description": "d".repeat(2001)}), 400),
            (json!({"name": "a", "status": "bogus"}), 400),
            (json!({"name": "a", "priority": "meh"}), 400),
            (json!({"name": ["a"]}), 400),
            (json!({"name": "a", "teamId": 7}), 400),
        ] {
            let (status, body) =
                call(&t, Method::POST, "/api/projects", o, Some(bad.clone())).await;
            assert_eq!(status, status_expected, "{bad} → {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        let (_, body) = call(&t, Method::POST, "/api/projects", o, Some(json!({}))).await;
        assert_eq!(body, json!({"message": "Project name is required"}));
        let (status, body, _) = call_raw(
            &t,
            Method::POST,
            "/api/projects",
            &owner.token,
            "application/json",
            "{\"name\": ",
        )
        .await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some("Malformed JSON body"))
        );
        let (status, _) = call(
            &t,
            Method::POST,
            "/api/projects",
            None,
            Some(json!({"name": "a"})),
        )
        .await;
        assert_eq!(status, 401);
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "Robert'); DROP TABLE projects;--", "status": "in_progress", "priority": "urgent"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["project"]["status"], "in_progress");
        assert_eq!(body["project"]["name"], "Robert'); DROP TABLE projects;--");

        // teamId: the creator's own team only.
        let (_, team) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "T"})),
        )
        .await;
        let team_id = team["team"]["id"].as_str().unwrap().to_owned();
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "In team", "teamId": team_id})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["project"]["teamId"], team_id.as_str());
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            s,
            Some(json!({"name": "Squat", "teamId": team_id})),
        )
        .await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "x", "teamId": "no-such-team"})),
        )
        .await;
        assert_eq!((status, body), (404, json!({"message": "Team not found"})));

        // List.
        let (status, body) = call(
            &t,
            Method::GET,
            "/api/projects?organizationId=x&teamId=y",
            o,
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["projects"].as_array().unwrap().len(), 3);
        let (_, body) = call(&t, Method::GET, "/api/projects?limit=2", o, None).await;
        assert_eq!(body["projects"].as_array().unwrap().len(), 2);
        let (_, body) = call(&t, Method::GET, "/api/projects?limit=2&page=2", o, None).await;
        assert_eq!(body["projects"].as_array().unwrap().len(), 1);
        assert_eq!(body["projects"][0]["id"], id.as_str());
        let (_, body) = call(&t, Method::GET, "/api/projects", s, None).await;
        assert_eq!(body, json!({"projects": []}));

        // Read / update matrix: stranger, plain member, owner.
        project_member(&t, &id, &member.id, "member").await;
        let (status, body) = call(&t, Method::GET, &pp, s, None).await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = call(&t, Method::GET, &pp, m, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["members"].as_array().unwrap().len(), 2);
        let (status, body) = call(&t, Method::GET, &pp, o, None).await;
        assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())));
        let (status, body) = call(&t, Method::GET, "/api/projects/nope", o, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );

        let (status, body) = call(&t, Method::PUT, &pp, s, Some(json!({"name": "x"}))).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(&t, Method::PUT, &pp, m, Some(json!({"name": "x"}))).await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Permission denied"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            "/api/projects/nope",
            o,
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        let (status, body) = call(
            &t,
            Method::PUT,
            &pp,
            o,
            Some(json!({"name": "Launch v2", "status": "on_hold", "priority": "high", "description": ""})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "Launch v2");
        assert_eq!(body["status"], "on_hold");
        assert_eq!(body["priority"], "high");
        assert_eq!(body["description"], "");
        let (status, _) = call(&t, Method::PUT, &pp, o, Some(json!({"status": "done"}))).await;
        assert_eq!(status, 400);
        let (status, _) = call(&t, Method::PUT, &pp, o, Some(json!({"status": 1}))).await;
        assert_eq!(status, 400);
        let (status, _) = call(
            &t,
            Method::PUT,
            &pp,
            o,
            Some(json!({"name": "n".repeat(201)})),
        )
        .await;
        assert_eq!(status, 400);
        let (_, body) = call(&t, Method::PUT, &pp, o, Some(json!({"name": ""}))).await;
        assert_eq!(body["name"], "Launch v2", "an empty name keeps the old one");

        // Channel link.
        let cp = format!("{pp}/channel");
        let (status, body) = call(&t, Method::GET, &cp, o, None).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"channelMetadata": null, "hasChannel": false, "channel": null})
        );
        for bad in [json!({}), json!({"channelId": ""})] {
            let (status, body) = call(&t, Method::POST, &cp, o, Some(bad)).await;
            assert_eq!(
                (status, body),
                (400, json!({"message": "Channel ID is required"}))
            );
        }
        let (status, _) = call(&t, Method::POST, &cp, o, Some(json!({"channelId": 5}))).await;
        assert_eq!(status, 400);
        let (status, body) =
            call(&t, Method::POST, &cp, o, Some(json!({"channelId": "nope"}))).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Channel not found"}))
        );
        let foreign = conversation(&t, "channel", None, Some(&stranger.id)).await;
        let (status, body) = call(
            &t,
            Method::POST,
            &cp,
            o,
            Some(json!({"channelId": foreign})),
        )
        .await;
        assert_eq!(
            (status, body),
            (403, json!({"message": "Access denied"})),
            "someone else's channel"
        );
        let team_channel = conversation(&t, "channel", Some(&team_id), None).await;
        let (status, body) = call(
            &t,
            Method::POST,
            &cp,
            s,
            Some(json!({"channelId": team_channel})),
        )
        .await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects/nope/channel",
            o,
            Some(json!({"channelId": team_channel})),
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        let (status, body) = call(
            &t,
            Method::POST,
            &cp,
            o,
            Some(json!({"channelId": team_channel})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "Channel linked successfully");
        let meta = &body["project"]["channelMetadata"];
        assert_eq!(meta["channelId"], team_channel.as_str());
        assert_eq!(meta["channelType"], "project");
        assert!(meta["linkedAt"].is_string());
        // A plain member may link a channel it participates in.
        let own = conversation(&t, "group", None, Some(&member.id)).await;
        let (status, _) = call(&t, Method::POST, &cp, m, Some(json!({"channelId": own}))).await;
        assert_eq!(status, 200);
        let (status, body) = call(&t, Method::GET, &cp, m, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["hasChannel"], true);
        assert_eq!(body["channelMetadata"]["channelId"], own.as_str());
        assert_eq!(body["channel"]["id"], own.as_str());
        assert_eq!(body["channel"]["name"], "general");
        let (status, body) = call(&t, Method::GET, &cp, s, None).await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = call(&t, Method::GET, "/api/projects/nope/channel", o, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );

        t.stop().await;
    }
}
