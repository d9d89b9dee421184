//! A project's files (issue 12), on every configured backend: `GET /api/projects/:id/files` (a bare
//! array of FileMeta) and `POST /api/projects/:id/files` (multipart `file` plus JSON `metadata`), for
//! a member, a stranger and bad input; refused uploads leave no bytes behind.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{call, file_part, project_member, text_part, upload, user, PNG, SVG};
use serde_json::{json, Value};

fn stored_files(t: &TestServer) -> usize {
    match std::fs::read_dir(t.dir.path().join("uploads")) {
        Ok(dir) => dir.count(),
        Err(_) => 0,
    }
}

async fn list(t: &TestServer, path: &str, token: &str) -> (u16, Value) {
    call(t, Method::GET, path, Some(token), None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_files_for_members_only() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let (status, body) = call(
            &t,
            Method::POST,
            "/api/projects",
            Some(&owner.token),
            Some(json!({"name": "Site"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let pid = body["project"]["id"].as_str().unwrap().to_owned();
        project_member(&t, &pid, &member.id, "member").await;
        let path = format!("/api/projects/{pid}/files");

        let (status, body) = list(&t, &path, &owner.token).await;
        assert_eq!((status, body), (200, json!([])), "{backend:?}");

        // A member uploads with metadata; everyone in the project lists it.
        let (status, file) = upload(
            &t,
            ListenerKind::Unified,
            &path,
            Some(&member.token),
            &[
                file_part("file", "logo.png", "image/png", PNG),
                text_part(
                    "metadata",
                    r#"{"description": " Logo ", "tags": ["brand", " ", "v1 "], "extra": 1}"#,
                ),
            ],
        )
        .await;
        assert_eq!(status, 201, "{backend:?} {file}");
        assert_eq!(file["projectId"], pid.as_str());
        assert_eq!(file["uploadedBy"], member.id.as_str());
        assert_eq!(file["originalName"], "logo.png");
        assert_eq!(file["mimetype"], "image/png");
        assert_eq!(file["description"], "Logo");
        assert_eq!(file["tags"], json!(["brand", "v1"]));
        assert_eq!(file["isPublic"], false);
        assert!(file["url"].as_str().unwrap().starts_with("/uploads/"));
        // Without metadata too.
        let (status, plain) = upload(
            &t,
            ListenerKind::Unified,
            &path,
            Some(&owner.token),
            &[file_part("file", "b.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(status, 201, "{plain}");
        assert_eq!(plain["description"], "");
        assert_eq!(plain["tags"], json!([]));
        let (status, body) = list(&t, &path, &owner.token).await;
        assert_eq!(status, 200);
        let files = body.as_array().unwrap();
        assert_eq!(files.len(), 2, "{body}");
        assert_eq!(files[0]["id"], plain["id"], "newest first");
        assert_eq!(files[1]["id"], file["id"]);
        assert_eq!(list(&t, &path, &member.token).await.1, body);
        // It is the project's file, not only the uploader's.
        let (_, mine) = call(
            &t,
            Method::GET,
            &format!("/api/files?projectId={pid}"),
            Some(&member.token),
            None,
        )
        .await;
        assert_eq!(mine["files"].as_array().unwrap().len(), 1);
        let stored = stored_files(&t);
        assert_eq!(stored, 2);

        // A stranger neither lists nor uploads; an unknown project is 404.
        let (status, body) = list(&t, &path, &stranger.token).await;
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, _) = upload(
            &t,
            ListenerKind::Unified,
            &path,
            Some(&stranger.token),
            &[file_part("file", "x.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(status, 403, "{backend:?}");
        let (status, body) = list(&t, "/api/projects/nope/files", &owner.token).await;
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        let (status, _) = upload(
            &t,
            ListenerKind::Unified,
            "/api/projects/nope/files",
            Some(&owner.token),
            &[file_part("file", "x.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(status, 404);
        let (status, _) = call(&t, Method::GET, &path, None, None).await;
        assert_eq!(status, 401);

        // Bad input: 400 (415 for a refused type), and nothing stored.
        let png = || file_part("file", "x.png", "image/png", PNG);
        for (parts, want) in [
            (vec![png(), text_part("metadata", "not json")], 400),
            (vec![png(), text_part("metadata", "[1, 2]")], 400),
            (vec![png(), text_part("metadata", r#""text""#)], 400),
            (vec![png(), text_part("metadata", r#"{"tags": "x"}"#)], 400),
            (
                vec![png(), text_part("metadata", r#"{"description": 5}"#)],
                400,
            ),
            (
                vec![
                    png(),
                    text_part(
                        "metadata",
                        &json!({"description": "d".repeat(2001)}).to_string(),
                    ),
                ],
                400,
            ),
            (vec![text_part("metadata", "{}")], 400),
            (vec![file_part("files", "x.png", "image/png", PNG)], 400),
            (vec![png(), png()], 400),
            (vec![file_part("file", "x.svg", "image/svg+xml", SVG)], 415),
        ] {
            let (status, body) = upload(
                &t,
                ListenerKind::Unified,
                &path,
                Some(&member.token),
                &parts,
            )
            .await;
            assert_eq!(status, want, "{backend:?} {body}");
        }
        assert_eq!(
            list(&t, &path, &owner.token)
                .await
                .1
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(stored_files(&t), stored, "refused uploads leave no bytes");

        t.stop().await;
    }
}
