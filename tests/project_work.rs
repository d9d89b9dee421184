//! The project page of issue 12 on a real server, on every configured backend: team colleagues are
//! project members, tasks, milestones and activities with their shapes and 400s, and project
//! update/delete rules — each for a member, a stranger and bad input.

mod common;
mod resources_support;

use common::{backends, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, call_raw, user};
use serde_json::{json, Value};

// Helpers outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#[allow(clippy::unwrap_used)]
async fn team_member(t: &TestServer, team_id: &str, user_id: &str, role: &str) {
    use flux::db::schema::group_members;
    let now = flux::db::now();
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_write().await.unwrap();
    flux::db!(conn, |c| {
        diesel::insert_into(group_members::table)
            .values((
                group_members::group_id.eq(team_id),
                group_members::user_id.eq(user_id),
                group_members::role.eq(role),
                group_members::joined_at.eq(now),
            ))
            .execute(c)
            .await
    })
    .unwrap();
}

// Helpers outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#[allow(clippy::unwrap_used)]
async fn count_tasks(t: &TestServer) -> i64 {
    use flux::db::schema::project_tasks;
    let db = t.server.as_ref().unwrap().state().db.clone();
    let mut conn = db.get_read().await.unwrap();
    flux::db!(conn, |c| {
        project_tasks::table.count().get_result::<i64>(c).await
    })
    .unwrap()
}

// Helpers outside `#[test]` functions: clippy.toml's test allowance does not reach them.
#[allow(clippy::unwrap_used)]
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_members_are_project_members() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let admin = user(&t, "admin").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let (_, team) = call(
            &t,
            Method::POST,
            "/api/teams",
            Some(&owner.token),
            Some(json!({"name": "T"})),
        )
        .await;
        let team_id = team["team"]["id"].as_str().unwrap().to_owned();
        team_member(&t, &team_id, &admin.id, "admin").await;
        team_member(&t, &team_id, &colleague.id, "member").await;
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            Some(&owner.token),
            Some(json!({"name": "P", "teamId": team_id, "members": []})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let pid = body["project"]["id"].as_str().unwrap().to_owned();
        let pp = format!("/api/projects/{pid}");

        // The colleague sees it in the list and can read it; the stranger cannot.
        let (_, list) = call(
            &t,
            Method::GET,
            "/api/projects",
            Some(&colleague.token),
            None,
        )
        .await;
        assert_eq!(ids(&list["projects"]), vec![pid.clone()], "{backend:?}");
        let (_, list) = call(
            &t,
            Method::GET,
            "/api/projects",
            Some(&stranger.token),
            None,
        )
        .await;
        assert_eq!(list, json!({"projects": []}));
        let (status, body) = call(&t, Method::GET, &pp, Some(&colleague.token), None).await;
        assert_eq!(status, 200, "{body}");
        let roles: Vec<(String, String)> = body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["userId"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            roles.contains(&(owner.id.clone(), "owner".into())),
            "{roles:?}"
        );
        assert!(
            roles.contains(&(admin.id.clone(), "admin".into())),
            "{roles:?}"
        );
        assert!(
            roles.contains(&(colleague.id.clone(), "member".into())),
            "{roles:?}"
        );
        assert_eq!(roles.len(), 3);
        let (status, _) = call(&t, Method::GET, &pp, Some(&stranger.token), None).await;
        assert_eq!(status, 403);

        // Team admin → project admin (may update), team member → project member (may not).
        let (status, body) = call(
            &t,
            Method::PUT,
            &pp,
            Some(&admin.token),
            Some(json!({"name": "P2"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], "P2");
        assert_eq!(body["project"]["name"], "P2");
        assert_eq!(body["project"]["id"], pid.as_str());
        let (status, _) = call(
            &t,
            Method::PUT,
            &pp,
            Some(&colleague.token),
            Some(json!({"name": "P3"})),
        )
        .await;
        assert_eq!(status, 403);

        // Delete: member 403, stranger 403, unknown 404, admin succeeds, then 404 and gone.
        let (status, _) = call(&t, Method::DELETE, &pp, Some(&colleague.token), None).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::DELETE, &pp, Some(&stranger.token), None).await;
        assert_eq!(status, 403);
        let (status, body) = call(
            &t,
            Method::DELETE,
            "/api/projects/nope",
            Some(&owner.token),
            None,
        )
        .await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        let (status, _) = call(
            &t,
            Method::POST,
            &format!("{pp}/tasks"),
            Some(&owner.token),
            Some(json!({"title": "goes with it"})),
        )
        .await;
        assert_eq!(status, 201);
        let (status, body) = call(&t, Method::DELETE, &pp, Some(&admin.token), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert!(body["message"].is_string());
        let (status, _) = call(&t, Method::GET, &pp, Some(&owner.token), None).await;
        assert_eq!(status, 404);
        let (status, _) = call(&t, Method::DELETE, &pp, Some(&owner.token), None).await;
        assert_eq!(status, 404);
        let (_, list) = call(&t, Method::GET, "/api/projects", Some(&owner.token), None).await;
        assert_eq!(list, json!({"projects": []}));
        assert_eq!(count_tasks(&t).await, 0, "tasks go with their project");
        let (status, _) = call(
            &t,
            Method::GET,
            &format!("{pp}/tasks"),
            Some(&owner.token),
            None,
        )
        .await;
        assert_eq!(status, 404);

        // The owner deletes their own project without a team.
        let (_, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            Some(&owner.token),
            Some(json!({"name": "Solo"})),
        )
        .await;
        let solo = format!("/api/projects/{}", body["project"]["id"].as_str().unwrap());
        let (status, _) = call(&t, Method::DELETE, &solo, Some(&owner.token), None).await;
        assert_eq!(status, 200);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_crud_and_validation() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let m = Some(colleague.token.as_str());
        let s = Some(stranger.token.as_str());
        let (_, team) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "T"})),
        )
        .await;
        let team_id = team["team"]["id"].as_str().unwrap().to_owned();
        team_member(&t, &team_id, &colleague.id, "member").await;
        let (_, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "P", "teamId": team_id})),
        )
        .await;
        let pid = body["project"]["id"].as_str().unwrap().to_owned();
        let tp = format!("/api/projects/{pid}/tasks");

        let (status, body) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!((status, body), (200, json!({"success": true, "tasks": []})));

        // Defaults.
        let (status, body) =
            call(&t, Method::POST, &tp, m, Some(json!({"title": " Write "}))).await;
        assert_eq!(status, 201, "{backend:?} {body}");
        assert_eq!(body["success"], true);
        let task = &body["task"];
        assert_eq!(task["title"], "Write");
        assert_eq!(task["description"], "");
        assert_eq!(task["status"], "todo");
        assert_eq!(task["priority"], "medium");
        assert_eq!(task["assignedTo"], Value::Null);
        assert_eq!(task["dueDate"], Value::Null);
        assert_eq!(task["completedAt"], Value::Null);
        assert_eq!(task["createdBy"], colleague.id.as_str());
        assert!(task["createdAt"].is_string() && task["updatedAt"].is_string());
        let tid = task["id"].as_str().unwrap().to_owned();
        let one = format!("{tp}/{tid}");

        // Every field, statuses kept as sent.
        for status_sent in ["in-progress", "in_progress", "review", "todo"] {
            let (status, body) = call(
                &t,
                Method::POST,
                &tp,
                o,
                Some(
                    json!({"title": "t", "description": "d", "status": status_sent,
                    "priority": "critical", "assignedTo": colleague.id, "dueDate": "2026-03-01"}),
                ),
            )
            .await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["task"]["status"], status_sent);
            assert_eq!(body["task"]["priority"], "critical");
            assert_eq!(body["task"]["assignedTo"], colleague.id.as_str());
            assert_eq!(body["task"]["dueDate"], "2026-03-01");
        }
        let before = count_tasks(&t).await;
        assert_eq!(before, 5);

        // Bad input: 400, nothing stored.
        for bad in [
            json!({}),
            json!({"title": "  "}),
            json!({"title": 5}),
            json!({"title": "x".repeat(501)}),
            json!({"title": "a", "status": "done"}),
            json!({"title": "a", "priority": "urgent"}),
            json!({"title": "a", "dueDate": "tomorrow"}),
            json!({"title": "a", "dueDate": "2026-02-30"}),
            json!({"title": "a", "assignedTo": 7}),
            json!({"title": "a", "assignedTo": {"id": "x"}}),
            json!({"title": "a", "description": 3}),
            json!(["title"]),
            json!("title"),
        ] {
            let (status, body) = call(&t, Method::POST, &tp, o, Some(bad.clone())).await;
            assert_eq!(status, 400, "{bad} → {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        let (status, _, _) = call_raw(
            &t,
            Method::POST,
            &tp,
            &owner.token,
            "application/json",
            "{\"title\":",
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(count_tasks(&t).await, before);

        // Strangers and unknown projects.
        let (status, _) = call(&t, Method::GET, &tp, s, None).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::POST, &tp, s, Some(json!({"title": "x"}))).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::PUT, &one, s, Some(json!({"status": "review"}))).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::DELETE, &one, s, None).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::GET, &one, s, None).await;
        assert_eq!(status, 403);
        let (status, body) = call(&t, Method::GET, "/api/projects/nope/tasks", o, None).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        let (status, _) = call(&t, Method::GET, &tp, None, None).await;
        assert_eq!(status, 401);
        assert_eq!(count_tasks(&t).await, before);

        // Status-only update (the Kanban), completion and back.
        let (status, body) = call(
            &t,
            Method::PUT,
            &one,
            o,
            Some(json!({"status": "completed"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["task"]["status"], "completed");
        assert_eq!(body["task"]["title"], "Write");
        assert!(body["task"]["completedAt"].is_string());
        let (_, body) = call(
            &t,
            Method::PUT,
            &one,
            m,
            Some(json!({"status": "in-progress"})),
        )
        .await;
        assert_eq!(body["task"]["status"], "in-progress");
        assert_eq!(body["task"]["completedAt"], Value::Null);
        let (status, body) = call(
            &t,
            Method::PUT,
            &one,
            m,
            Some(json!({"title": "Rewrite", "priority": "low", "assignedTo": owner.id, "dueDate": "2026-04-01T10:00:00Z", "description": "more"})),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["task"]["title"], "Rewrite");
        assert_eq!(body["task"]["priority"], "low");
        assert_eq!(body["task"]["assignedTo"], owner.id.as_str());
        assert_eq!(body["task"]["dueDate"], "2026-04-01T10:00:00Z");
        assert_eq!(body["task"]["status"], "in-progress");
        let (_, body) = call(
            &t,
            Method::PUT,
            &one,
            m,
            Some(json!({"assignedTo": null, "dueDate": null})),
        )
        .await;
        assert_eq!(body["task"]["assignedTo"], Value::Null);
        assert_eq!(body["task"]["dueDate"], Value::Null);
        assert_eq!(body["task"]["title"], "Rewrite");
        for bad in [
            json!({"title": ""}),
            json!({"title": null}),
            json!({"status": "done"}),
            json!({"priority": 1}),
            json!({"dueDate": "soon"}),
            json!({"assignedTo": 1}),
            json!([1]),
        ] {
            let (status, body) = call(&t, Method::PUT, &one, o, Some(bad.clone())).await;
            assert_eq!(status, 400, "{bad} → {body}");
        }
        let (_, body) = call(&t, Method::GET, &one, o, None).await;
        assert_eq!(
            body["task"]["title"], "Rewrite",
            "a refused PUT changes nothing"
        );
        assert_eq!(body["success"], true);
        let (status, _) = call(
            &t,
            Method::PUT,
            &format!("{tp}/nope"),
            o,
            Some(json!({"status": "todo"})),
        )
        .await;
        assert_eq!(status, 404);

        // A task of another project is not reachable through this one.
        let (_, other) = call(
            &t,
            Method::POST,
            "/api/projects",
            s,
            Some(json!({"name": "Other"})),
        )
        .await;
        let other_tp = format!(
            "/api/projects/{}/tasks",
            other["project"]["id"].as_str().unwrap()
        );
        let (_, foreign) = call(
            &t,
            Method::POST,
            &other_tp,
            s,
            Some(json!({"title": "theirs"})),
        )
        .await;
        let foreign_id = foreign["task"]["id"].as_str().unwrap();
        let (status, _) = call(&t, Method::DELETE, &format!("{tp}/{foreign_id}"), o, None).await;
        assert_eq!(status, 404);

        // List and delete.
        let (_, body) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!(body["tasks"].as_array().unwrap().len(), 5);
        let (status, body) = call(&t, Method::DELETE, &one, m, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["success"], true);
        let (status, _) = call(&t, Method::DELETE, &one, m, None).await;
        assert_eq!(status, 404);
        let (status, _) = call(&t, Method::GET, &one, m, None).await;
        assert_eq!(status, 404);
        let (_, body) = call(&t, Method::GET, &tp, m, None).await;
        assert_eq!(body["tasks"].as_array().unwrap().len(), 4);
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milestones_and_activities() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let colleague = user(&t, "colleague").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let m = Some(colleague.token.as_str());
        let s = Some(stranger.token.as_str());
        let (_, team) = call(
            &t,
            Method::POST,
            "/api/teams",
            o,
            Some(json!({"name": "T"})),
        )
        .await;
        let team_id = team["team"]["id"].as_str().unwrap().to_owned();
        team_member(&t, &team_id, &colleague.id, "member").await;
        let (_, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "P", "teamId": team_id})),
        )
        .await;
        let pid = body["project"]["id"].as_str().unwrap().to_owned();
        let mp = format!("/api/projects/{pid}/milestones");
        let ap = format!("/api/projects/{pid}/activities");

        // Milestones.
        let (status, body) = call(
            &t,
            Method::POST,
            &mp,
            m,
            Some(json!({"title": "Beta", "dueDate": "2026-05-01"})),
        )
        .await;
        assert!(status == 200 || status == 201, "{body}");
        let ms = &body["milestone"];
        assert_eq!(ms["title"], "Beta");
        assert_eq!(ms["description"], "");
        assert_eq!(ms["dueDate"], "2026-05-01");
        assert_eq!(ms["status"], "pending");
        assert_eq!(ms["createdBy"], colleague.id.as_str());
        assert_eq!(ms["completedAt"], Value::Null);
        assert!(ms["createdAt"].is_string() && ms["updatedAt"].is_string());
        let mid = ms["id"].as_str().unwrap().to_owned();
        let one = format!("{mp}/{mid}");
        for bad in [
            json!({}),
            json!({"title": " "}),
            json!({"title": "a", "dueDate": "x"}),
            json!([]),
        ] {
            let (status, body) = call(&t, Method::POST, &mp, o, Some(bad.clone())).await;
            assert_eq!(status, 400, "{bad} → {body}");
        }
        let (status, _) = call(&t, Method::POST, &mp, s, Some(json!({"title": "x"}))).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::PUT, &one, s, Some(json!({"title": "x"}))).await;
        assert_eq!(status, 403);
        let (status, body) = call(
            &t,
            Method::PUT,
            &one,
            o,
            Some(json!({"description": "soon"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["milestone"]["title"], "Beta");
        assert_eq!(body["milestone"]["description"], "soon");
        let (_, body) = call(
            &t,
            Method::PUT,
            &one,
            o,
            Some(json!({"status": "completed"})),
        )
        .await;
        assert_eq!(body["milestone"]["status"], "completed");
        assert!(body["milestone"]["completedAt"].is_string());
        for bad in [
            json!({"title": ""}),
            json!({"status": "late"}),
            json!({"dueDate": 5}),
        ] {
            let (status, _) = call(&t, Method::PUT, &one, o, Some(bad)).await;
            assert_eq!(status, 400);
        }
        let (status, _) = call(
            &t,
            Method::PUT,
            &format!("{mp}/nope"),
            o,
            Some(json!({"title": "x"})),
        )
        .await;
        assert_eq!(status, 404);

        // Task changes leave activities.
        let tp = format!("/api/projects/{pid}/tasks");
        let (_, body) = call(&t, Method::POST, &tp, o, Some(json!({"title": "A"}))).await;
        let tid = body["task"]["id"].as_str().unwrap().to_owned();
        call(
            &t,
            Method::PUT,
            &format!("{tp}/{tid}"),
            m,
            Some(json!({"status": "review"})),
        )
        .await;
        call(
            &t,
            Method::PUT,
            &format!("{tp}/{tid}"),
            m,
            Some(json!({"status": "completed"})),
        )
        .await;
        call(&t, Method::DELETE, &format!("{tp}/{tid}"), o, None).await;

        let (status, body) = call(&t, Method::GET, &ap, m, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true);
        assert_eq!(body["total"], 7);
        assert_eq!(body["hasMore"], false);
        let types: Vec<&str> = body["activities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            vec![
                "task.deleted",
                "task.completed",
                "task.updated",
                "task.created",
                "milestone.completed",
                "milestone.updated",
                "milestone.created"
            ],
            "newest first"
        );
        let a = &body["activities"][0];
        assert_eq!(a["projectId"], pid.as_str());
        assert_eq!(a["userId"], owner.id.as_str());
        assert_eq!(a["userName"], "owner");
        assert_eq!(a["userEmail"], owner.email.as_str());
        assert_eq!(a["entityType"], "task");
        assert_eq!(a["entityId"], tid.as_str());
        assert_eq!(a["entityTitle"], "A");
        assert_eq!(a["action"], "deleted");
        assert!(a["metadata"].is_object());
        assert!(a["timestamp"].is_string());

        let (_, body) = call(&t, Method::GET, &format!("{ap}?limit=2&offset=1"), m, None).await;
        assert_eq!(body["activities"].as_array().unwrap().len(), 2);
        assert_eq!(body["activities"][0]["type"], "task.completed");
        assert_eq!(body["total"], 7);
        assert_eq!(body["hasMore"], true);
        let (_, body) = call(&t, Method::GET, &format!("{ap}?type=milestone"), m, None).await;
        assert_eq!(body["total"], 3);
        let (_, body) = call(&t, Method::GET, &format!("{ap}?type=task.created"), m, None).await;
        assert_eq!(body["total"], 1);
        let (_, body) = call(
            &t,
            Method::GET,
            &format!("{ap}?userId={}", colleague.id),
            m,
            None,
        )
        .await;
        assert_eq!(body["total"], 3);
        let (_, body) = call(
            &t,
            Method::GET,
            &format!("{ap}?dateFrom=2000-01-01&dateTo=2999-01-01"),
            m,
            None,
        )
        .await;
        assert_eq!(body["total"], 7);
        let (_, body) = call(&t, Method::GET, &format!("{ap}?dateTo=2000-01-01"), m, None).await;
        assert_eq!(body["total"], 0);
        assert_eq!(body["activities"], json!([]));
        for bad in [
            "limit=x",
            "offset=-1",
            "dateFrom=yesterday",
            "dateTo=2026-13-01",
        ] {
            let (status, body) = call(&t, Method::GET, &format!("{ap}?{bad}"), m, None).await;
            assert_eq!(status, 400, "{bad} → {body}");
        }
        let (status, _) = call(&t, Method::GET, &ap, s, None).await;
        assert_eq!(status, 403);
        let (status, _) = call(&t, Method::GET, "/api/projects/nope/activities", o, None).await;
        assert_eq!(status, 404);
        t.stop().await;
    }
}
