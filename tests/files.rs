//! Files (CONTRACT §8) on a real server, on every configured backend: upload shapes, sniffing and
//! limits, owner-only metadata, `/uploads` authorisation and headers, and the messaging `POST /upload`.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod resources_support;

use common::{backends, TestServer};
use flux::topology::ListenerKind;
use flux::topology::Target;
use reqwest::Method;
use resources_support::{
    call, call_on, call_raw, file_part, project_member, text_part, upload, user, PDF, PNG, SVG,
};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn stored_files(t: &TestServer) -> Vec<String> {
    match std::fs::read_dir(t.dir.path().join("uploads")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

struct Download {
    status: u16,
    content_type: String,
    disposition: String,
    nosniff: bool,
    body: Vec<u8>,
}

async fn download(t: &TestServer, kind: ListenerKind, path: &str, token: Option<&str>) -> Download {
    let mut req = t.client.get(t.url(kind, path));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("download");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Download {
        status: res.status().as_u16(),
        content_type: header("content-type"),
        disposition: header("content-disposition"),
        nosniff: header("x-content-type-options") == "nosniff",
        body: res.bytes().await.expect("body").to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_update_download_delete() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let member = user(&t, "member").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let s = Some(stranger.token.as_str());
        let (_, project) = call(
            &t,
            Method::POST,
            "/api/projects",
            o,
            Some(json!({"name": "P"})),
        )
        .await;
        let project_id = project["project"]["id"].as_str().unwrap().to_owned();
        project_member(&t, &project_id, &member.id, "member").await;

        let (status, body) = upload(
            &t,
            ListenerKind::Unified,
            "/api/files/upload",
            o,
            &[
                // The client's MIME type is ignored: the bytes are a PNG.
                file_part("files", "../../etc/passwd.png", "application/x-evil", PNG),
                file_part("files", "spec.pdf", "application/pdf", PDF),
                file_part("files", "notes.txt", "text/plain", b"plain <b>notes</b>\n"),
                text_part("projectId", &project_id),
            ],
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["message"], "Files uploaded successfully");
        let files = body["files"].as_array().unwrap();
        assert_eq!(files.len(), 3);
        let mut expected: Vec<String> = [
            "id",
            "originalName",
            "name",
            "filename",
            "url",
            "size",
            "mimetype",
            "type",
            "isImage",
            "isVideo",
            "uploadedBy",
            "uploadedAt",
            "tags",
            "description",
            "isPublic",
            "projectId",
            "thumbnailUrl",
            "updatedAt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        expected.sort();
        assert_eq!(keys(&files[0]), expected, "no server path is returned");
        let png = &files[0];
        assert_eq!(png["originalName"], "passwd.png");
        assert_eq!(png["name"], "passwd.png");
        assert_eq!(png["type"], "image/png");
        assert_eq!(png["mimetype"], "image/png");
        assert_eq!(png["isImage"], true);
        assert_eq!(png["isVideo"], false);
        assert_eq!(png["size"], PNG.len());
        assert_eq!(png["uploadedBy"], owner.id.as_str());
        assert_eq!(png["projectId"], project_id.as_str());
        assert_eq!(png["thumbnailUrl"], Value::Null);
        assert_eq!(png["tags"], json!([]));
        assert_eq!(png["isPublic"], false);
        let png_name = png["filename"].as_str().unwrap().to_owned();
        assert!(png_name.ends_with(".png") && !png_name.contains("passwd"));
        assert_eq!(png["url"], format!("/uploads/{png_name}"));
        assert_eq!(files[1]["type"], "application/pdf");
        assert_eq!(files[2]["type"], "text/plain");
        let pdf_name = files[1]["filename"].as_str().unwrap().to_owned();
        let txt_name = files[2]["filename"].as_str().unwrap().to_owned();
        let png_id = png["id"].as_str().unwrap().to_owned();
        let mut on_disk = stored_files(&t);
        on_disk.sort();
        let mut want = vec![png_name.clone(), pdf_name.clone(), txt_name.clone()];
        want.sort();
        assert_eq!(
            on_disk, want,
            "stored under random names in <data_dir>/uploads"
        );
        assert!(!t.dir.path().join("etc").exists());

        // List and read: the owner's only.
        let (status, body) = call(&t, Method::GET, "/api/files", o, None).await;
        assert_eq!(status, 200);
        assert_eq!(body["files"].as_array().unwrap().len(), 3);
        let (_, body) = call(&t, Method::GET, "/api/files?limit=2&page=2", o, None).await;
        assert_eq!(body["files"].as_array().unwrap().len(), 1);
        let (_, body) = call(
            &t,
            Method::GET,
            &format!("/api/files?projectId={project_id}"),
            o,
            None,
        )
        .await;
        assert_eq!(body["files"].as_array().unwrap().len(), 3);
        let (_, body) = call(&t, Method::GET, "/api/files?projectId=other", o, None).await;
        assert_eq!(body, json!({"files": []}));
        let (_, body) = call(&t, Method::GET, "/api/files", s, None).await;
        assert_eq!(body, json!({"files": []}));
        let fp = format!("/api/files/{png_id}");
        let (status, body) = call(&t, Method::GET, &fp, o, None).await;
        assert_eq!((status, body["id"].as_str()), (200, Some(png_id.as_str())));
        let (status, body) = call(&t, Method::GET, &fp, s, None).await;
        assert_eq!((status, body), (404, json!({"message": "File not found"})));
        let (status, body) = call(&t, Method::GET, "/api/files/nope", o, None).await;
        assert_eq!((status, body), (404, json!({"message": "File not found"})));
        let (status, _) = call(&t, Method::GET, "/api/files", None, None).await;
        assert_eq!(status, 401);

        // Update: owner only, typed and bounded.
        let (status, body) = call(
            &t,
            Method::PUT,
            &fp,
            o,
            Some(json!({"description": "logo", "tags": ["brand", " x "], "isPublic": false})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["description"], "logo");
        assert_eq!(body["tags"], json!(["brand", "x"]));
        assert!(body["updatedAt"].is_string());
        let (status, body) = call(
            &t,
            Method::PUT,
            &fp,
            s,
            Some(json!({"description": "mine"})),
        )
        .await;
        assert_eq!((status, body), (404, json!({"message": "File not found"})));
        for bad in [
            json!({"tags": "x"}),
            json!({"isPublic": "yes"}),
            json!({"description": 3}),
            json!({"tags": vec!["t"; 51]}),
            json!({"tags": ["t".repeat(51)]}),
            json!({"description": "d".repeat(2001)}),
        ] {
            let (status, body) = call(&t, Method::PUT, &fp, o, Some(bad.clone())).await;
            assert_eq!(status, 400, "{bad} → {body}");
        }
        let (status, _, _) = call_raw(
            &t,
            Method::PUT,
            &fp,
            &owner.token,
            "application/json",
            "{\"tags\": [",
        )
        .await;
        assert_eq!(status, 400);
        let (_, body) = call(&t, Method::PUT, &fp, o, Some(json!({"description": ""}))).await;
        assert_eq!(
            body["description"], "",
            "an explicit empty description clears it"
        );
        assert_eq!(body["tags"], json!(["brand", "x"]));

        // Download: owner (header or ?token=), project member; nobody else while private.
        let png_url = format!("/uploads/{png_name}");
        let d = download(&t, ListenerKind::Unified, &png_url, None).await;
        assert_eq!(d.status, 404, "anonymous, private");
        let d = download(&t, ListenerKind::Unified, &png_url, s).await;
        assert_eq!(d.status, 404, "stranger, private");
        let d = download(&t, ListenerKind::Unified, &png_url, o).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.body, PNG);
        assert_eq!(d.content_type, "image/png");
        assert!(d.disposition.starts_with("inline"), "{}", d.disposition);
        assert!(d.nosniff);
        let d = download(
            &t,
            ListenerKind::Unified,
            &format!("{png_url}?token={}", owner.token),
            None,
        )
        .await;
        assert_eq!(d.status, 200, "?token= for <img> tags");
        let d = download(&t, ListenerKind::Unified, &png_url, Some(&member.token)).await;
        assert_eq!(d.status, 200, "project member");
        for name in [&pdf_name, &txt_name] {
            let d = download(&t, ListenerKind::Unified, &format!("/uploads/{name}"), o).await;
            assert_eq!(d.status, 200);
            assert!(d.disposition.starts_with("attachment"), "{}", d.disposition);
            assert!(d.nosniff);
        }
        let d = download(
            &t,
            ListenerKind::Unified,
            &format!("/uploads/{txt_name}"),
            o,
        )
        .await;
        assert_eq!(d.content_type, "text/plain");
        let (status, _) = call(&t, Method::PUT, &fp, o, Some(json!({"isPublic": true}))).await;
        assert_eq!(status, 200);
        let d = download(&t, ListenerKind::Unified, &png_url, None).await;
        assert_eq!(d.status, 200, "public files are public");
        for bad in [
            "/uploads/..%2F..%2Fetc%2Fpasswd",
            "/uploads/.hidden",
            "/uploads/nope.png",
        ] {
            let d = download(&t, ListenerKind::Unified, bad, o).await;
            assert_eq!(d.status, 404, "{bad}");
            let body: Value = serde_json::from_slice(&d.body).unwrap();
            assert!(body["message"].is_string(), "{bad}");
        }

        // Static-file semantics: validators, conditional GET, one byte range.
        let full = t
            .client
            .get(t.url(ListenerKind::Unified, &png_url))
            .send()
            .await
            .unwrap();
        let etag = full.headers()["etag"].to_str().unwrap().to_owned();
        assert!(full.headers().contains_key("last-modified"));
        assert_eq!(full.headers()["accept-ranges"], "bytes");
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, &png_url))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 304);
        assert!(res.bytes().await.unwrap().is_empty());
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, &png_url))
            .header("range", "bytes=1-3")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 206);
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes 1-3/{}", PNG.len()).as_str()
        );
        assert_eq!(res.bytes().await.unwrap().as_ref(), &PNG[1..=3]);
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, &png_url))
            .header("range", "bytes=100000-")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 416);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["message"], "Range not satisfiable");
        // A private file's validators do not bypass authorisation.
        let res = t
            .client
            .get(t.url(ListenerKind::Unified, &format!("/uploads/{pdf_name}")))
            .header("if-none-match", "*")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404);

        // Delete: owner only; the bytes go too.
        let (status, body) = call(&t, Method::DELETE, &fp, s, None).await;
        assert_eq!((status, body), (404, json!({"message": "File not found"})));
        let (status, body) = call(&t, Method::DELETE, &fp, o, None).await;
        assert_eq!(
            (status, body),
            (200, json!({"message": "File deleted successfully"}))
        );
        let (status, _) = call(&t, Method::DELETE, &fp, o, None).await;
        assert_eq!(status, 404);
        let d = download(&t, ListenerKind::Unified, &png_url, None).await;
        assert_eq!(d.status, 404);
        assert!(!stored_files(&t).contains(&png_name));

        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_nothing() {
    for backend in backends() {
        let t = TestServer::start(Target::Unified, backend).await;
        let owner = user(&t, "owner").await;
        let stranger = user(&t, "stranger").await;
        let o = Some(owner.token.as_str());
        let path = "/api/files/upload";
        macro_rules! up {
            ($parts:expr) => {
                upload(&t, ListenerKind::Unified, path, o, $parts).await
            };
        }

        let (status, body) = upload(
            &t,
            ListenerKind::Unified,
            path,
            None,
            &[file_part("files", "a.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Authentication required"}))
        );

        let unsupported = json!({"message": "Unsupported file type"});
        let zip = b"PK\x03\x04\x14\0\0\0\x08\0\0\0!\0abc";
        for parts in [
            vec![file_part("files", "photo.png", "image/png", SVG)],
            vec![file_part("files", "cat.svg", "image/svg+xml", SVG)],
            vec![file_part("files", "cat.txt", "text/plain", SVG)],
            vec![file_part(
                "files",
                "page.txt",
                "text/plain",
                b"<html><script>alert(1)</script></html>",
            )],
            vec![file_part("files", "a.zip", "application/zip", zip)],
            vec![file_part(
                "files",
                "run.js",
                "application/javascript",
                b"alert(1)",
            )],
            vec![file_part("files", "empty.txt", "text/plain", b"")],
            // One good file before a bad one: the good one is removed again.
            vec![
                file_part("files", "ok.png", "image/png", PNG),
                file_part("files", "evil.png", "image/png", SVG),
            ],
        ] {
            let (status, body) = up!(&parts);
            assert_eq!((status, &body), (415, &unsupported), "{backend:?}");
        }
        assert!(stored_files(&t).is_empty(), "{:?}", stored_files(&t));

        let unexpected =
            json!({"error": "Unexpected file field", "message": "Unexpected file field"});
        let (status, body) = up!(&[file_part("document", "a.png", "image/png", PNG)]);
        assert_eq!((status, &body), (400, &unexpected));
        let eleven: Vec<_> = (0..11)
            .map(|_| file_part("files", "a.png", "image/png", PNG))
            .collect();
        let (status, body) = up!(&eleven);
        assert_eq!((status, &body), (400, &unexpected));
        assert!(stored_files(&t).is_empty());

        let (status, body) = up!(&[text_part("projectId", "x")]);
        assert_eq!(
            (status, body),
            (400, json!({"message": "No files uploaded"}))
        );
        let (status, body) = up!(&[]);
        assert_eq!(
            (status, body),
            (400, json!({"message": "No files uploaded"}))
        );
        let (status, body, ctype) = call_raw(
            &t,
            Method::POST,
            path,
            &owner.token,
            "application/json",
            "{}",
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(ctype.starts_with("application/json"));
        let (status, body, _) = call_raw(
            &t,
            Method::POST,
            path,
            &owner.token,
            "multipart/form-data; boundary=xyz",
            "--xyz\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\ntrunc",
        )
        .await;
        assert!((400..500).contains(&status), "{status} {body}");
        let (status, body) = up!(&[
            text_part("projectId", &"p".repeat(2000)),
            file_part("files", "a.png", "image/png", PNG)
        ]);
        assert_eq!(status, 400, "{body}");

        let (status, body) = up!(&[
            file_part("files", "a.png", "image/png", PNG),
            text_part("projectId", "a\u{0}b")
        ]);
        assert_eq!(
            (status, body),
            (400, json!({"message": "Invalid projectId"}))
        );
        let many: Vec<_> = (0..17).map(|_| text_part("note", "x")).collect();
        let (status, body) = up!(&many);
        assert_eq!(
            (status, body),
            (400, json!({"message": "Too many form fields"}))
        );
        // Someone else's project, or none at all.
        let (_, project) = call(
            &t,
            Method::POST,
            "/api/projects",
            Some(&stranger.token),
            Some(json!({"name": "P"})),
        )
        .await;
        let foreign = project["project"]["id"].as_str().unwrap();
        let (status, body) = up!(&[
            file_part("files", "a.png", "image/png", PNG),
            text_part("projectId", foreign)
        ]);
        assert_eq!((status, body), (403, json!({"message": "Access denied"})));
        let (status, body) = up!(&[
            file_part("files", "a.png", "image/png", PNG),
            text_part("projectId", "nope")
        ]);
        assert_eq!(
            (status, body),
            (404, json!({"message": "Project not found"}))
        );
        assert!(
            stored_files(&t).is_empty(),
            "refused uploads leave no bytes"
        );

        // The default size limit is 10 MB.
        let mut big = PNG.to_vec();
        big.resize(10 * 1024 * 1024 + 1, 0);
        let (status, body) = up!(&[file_part("files", "big.png", "image/png", &big)]);
        assert_eq!(
            (status, body),
            (
                413,
                json!({"error": "File too large", "limit": "10MB", "message": "File too large"})
            )
        );
        big.truncate(10 * 1024 * 1024);
        let (status, _) = up!(&[file_part("files", "big.png", "image/png", &big)]);
        assert_eq!(status, 200, "exactly at the limit");
        t.stop().await;

        // A configured limit.
        let t = TestServer::start_with(Target::Unified, backend, |s| {
            s.uploads.max_file_bytes = 64 * 1024;
            s.uploads.max_files = 2;
        })
        .await;
        let owner = user(&t, "owner").await;
        let mut big = PNG.to_vec();
        big.resize(100 * 1024, 0);
        let (status, body) = upload(
            &t,
            ListenerKind::Unified,
            path,
            Some(&owner.token),
            &[file_part("files", "big.png", "image/png", &big)],
        )
        .await;
        assert_eq!((status, body["limit"].as_str()), (413, Some("64KB")));
        let three: Vec<_> = (0..3)
            .map(|_| file_part("files", "a.png", "image/png", PNG))
            .collect();
        let (status, _) = upload(&t, ListenerKind::Unified, path, Some(&owner.token), &three).await;
        assert_eq!(status, 400);
        assert!(stored_files(&t).is_empty());
        t.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messaging_single_upload() {
    for backend in backends() {
        let t = TestServer::start(Target::Messaging, backend).await;
        let u = user(&t, "sender").await;
        let k = ListenerKind::Messaging;
        let (status, body) = upload(
            &t,
            k,
            "/api/upload",
            Some(&u.token),
            &[file_part("file", "shot.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(status, 200, "{backend:?} {body}");
        assert_eq!(body["success"], true);
        let mut expected: Vec<String> = [
            "id",
            "originalName",
            "filename",
            "mimetype",
            "size",
            "url",
            "uploadedBy",
            "uploadedAt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        expected.sort();
        assert_eq!(keys(&body["file"]), expected);
        assert_eq!(body["file"]["mimetype"], "image/png");
        let url = body["file"]["url"].as_str().unwrap().to_owned();
        let d = download(&t, k, &url, Some(&u.token)).await;
        assert_eq!((d.status, d.body.as_slice()), (200, PNG));
        let other = user(&t, "participant").await;
        let d = download(&t, k, &url, Some(&other.token)).await;
        assert_eq!(
            d.status, 200,
            "chat attachments reach every participant by URL"
        );
        let d = download(&t, k, &url, None).await;
        assert_eq!(d.status, 200);
        assert!(d.disposition.starts_with("inline"));

        let (status, body) = upload(&t, k, "/api/upload", Some(&u.token), &[]).await;
        assert_eq!(
            (status, body),
            (400, json!({"message": "No file uploaded"}))
        );
        let (status, body) = upload(
            &t,
            k,
            "/api/upload",
            None,
            &[file_part("file", "a.png", "image/png", PNG)],
        )
        .await;
        assert_eq!(
            (status, body),
            (401, json!({"message": "Access token required"}))
        );
        let (status, body) = upload(
            &t,
            k,
            "/api/upload",
            Some(&u.token),
            &[file_part("file", "a.svg", "image/svg+xml", SVG)],
        )
        .await;
        assert_eq!(
            (status, body),
            (415, json!({"message": "Unsupported file type"}))
        );
        let two = [
            file_part("file", "a.png", "image/png", PNG),
            file_part("file", "b.png", "image/png", PNG),
        ];
        let (status, _) = upload(&t, k, "/api/upload", Some(&u.token), &two).await;
        assert_eq!(status, 400);
        let (status, _) = call_on(&t, k, Method::GET, "/api/files", Some(&u.token), None).await;
        assert_eq!(status, 404, "the files routes belong to the auth service");
        t.stop().await;

        let t = TestServer::start(Target::Unified, backend).await;
        let u = user(&t, "sender").await;
        for path in ["/api/upload", "/upload"] {
            let (status, body) = upload(
                &t,
                ListenerKind::Unified,
                path,
                Some(&u.token),
                &[file_part("file", "a.pdf", "application/pdf", PDF)],
            )
            .await;
            assert_eq!(
                (status, body["success"].as_bool()),
                (200, Some(true)),
                "{path}"
            );
        }
        t.stop().await;
    }
}

/// Rough figures for the report (`cargo test --test files -- --ignored --nocapture`); asserts nothing
/// beyond success, so it is not part of the normal run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand"]
async fn measure_uploads_and_downloads() {
    for backend in backends() {
        let t = TestServer::start_with(Target::Unified, backend, |s| s.server.workers = 2).await;
        let u = user(&t, "bench").await;
        let mut png = PNG.to_vec();
        png.resize(1024 * 1024, 0);
        let n = 100;
        let started = std::time::Instant::now();
        let mut names = Vec::new();
        for _ in 0..n {
            let (status, body) = upload(
                &t,
                ListenerKind::Unified,
                "/api/files/upload",
                Some(&u.token),
                &[file_part("files", "a.png", "image/png", &png)],
            )
            .await;
            assert_eq!(status, 200);
            names.push(body["files"][0]["filename"].as_str().unwrap().to_owned());
        }
        let up = started.elapsed();
        let started = std::time::Instant::now();
        for name in &names {
            let d = download(
                &t,
                ListenerKind::Unified,
                &format!("/uploads/{name}"),
                Some(&u.token),
            )
            .await;
            assert_eq!(d.status, 200);
        }
        let down = started.elapsed();
        let started = std::time::Instant::now();
        for _ in 0..n {
            let (status, body) = call(
                &t,
                Method::GET,
                "/api/files?limit=100",
                Some(&u.token),
                None,
            )
            .await;
            assert_eq!((status, body["files"].as_array().unwrap().len()), (200, n));
        }
        let list = started.elapsed();
        eprintln!(
            "{backend:?}: {n} × 1 MiB uploads {:.1} ms each; downloads {:.1} ms each; GET /api/files (100 items) {:.1} ms each",
            up.as_secs_f64() * 1000.0 / n as f64,
            down.as_secs_f64() * 1000.0 / n as f64,
            list.as_secs_f64() * 1000.0 / n as f64,
        );
        t.stop().await;
    }
}
