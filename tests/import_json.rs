//! `flux migrate import-json`: the original services' JSON files, written here in their format, go
//! through the real binary into a fresh database of each backend; then a server on that database
//! serves them, and a legacy password logs in.
// Its helpers sit outside `#[test]` functions, where clippy.toml's test allowance does not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{backends, with_csrf, Backend, TestServer};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::auth::password::legacy_transform;
use flux::db::schema::{
    conversation_participants as cp, conversations, files, group_invites, group_members, groups,
    messages, project_members, projects, users,
};
use flux::db::testing::TestDatabase;
use flux::db::{Db, DbOptions, Timestamp};
use flux::topology::ListenerKind;
use flux::topology::Target;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flux");
const LEGACY_PASSWORD: &str = "Passw0rd!<&";

fn flux(dir: &Path, database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("DATABASE_URL", database_url);
    cmd
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, body: Value) {
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&body).unwrap(),
    )
    .unwrap();
}

/// The original's file-mode data (CONTRACT §15.1), with the anomalies an old data set has.
fn write_fixture(dir: &Path) {
    let legacy_hash = bcrypt::hash(legacy_transform(LEGACY_PASSWORD), 4).unwrap();
    let bob_hash = bcrypt::hash(legacy_transform("Bobs-Passw0rd"), 4).unwrap();
    write(
        dir,
        "users",
        json!({"users": [
            {"id": "1700000000000-a1b2c3", "email": "Ada.Legacy@Example.com", "name": "Ada",
             "userType": "designer", "password": legacy_hash, "createdAt": "2024-01-02T03:04:05.678Z"},
            {"id": "u-google", "email": "gia@example.com", "name": "Gia", "userType": "client",
             "googleId": "google-sub-1", "avatar": "https://example.com/gia.png",
             "createdAt": "2024-01-03T00:00:00.000Z"},
            {"id": "u-dup", "email": "ada.legacy@EXAMPLE.com", "name": "Ada again", "userType": "client",
             "password": legacy_hash, "createdAt": "2024-01-04T00:00:00.000Z"},
            {"id": 42, "email": "bob@example.com", "name": "Bob", "userType": "superuser",
             "password": bob_hash, "createdAt": 1_704_326_400_000_i64}
        ]}),
    );
    write(
        dir,
        "teams",
        json!({"teams": [
            {"id": "t1", "name": "Studio", "description": "the team", "createdBy": "1700000000000-a1b2c3",
             "createdAt": "2024-02-01T00:00:00.000Z",
             "members": [
                {"userId": "1700000000000-a1b2c3", "role": "owner", "joinedAt": "2024-02-01T00:00:00.000Z"},
                {"userId": "42", "role": "member", "joinedAt": "2024-02-02T00:00:00.000Z"},
                {"userId": "u-ghost", "role": "member", "joinedAt": "2024-02-02T00:00:00.000Z"}
             ],
             "invites": [
                {"id": "inv-1", "email": "New.Person@Example.com", "role": "member",
                 "invitedBy": "1700000000000-a1b2c3", "invitedAt": "2024-02-03T00:00:00.000Z", "status": "pending"}
             ]}
        ]}),
    );
    write(
        dir,
        "channels",
        json!({"channels": [
            {"id": "c1", "name": "general", "teamId": "t1", "description": "all hands",
             "createdAt": "2024-02-05T00:00:00.000Z", "createdBy": "1700000000000-a1b2c3"},
            {"id": "c-orphan", "name": "old", "teamId": "t-gone", "description": "",
             "createdAt": "2024-02-05T00:00:00.000Z", "createdBy": "42"}
        ]}),
    );
    write(
        dir,
        "projects",
        json!({"projects": [
            {"id": "p1", "name": "Website", "description": "relaunch", "teamId": "t1", "status": "active",
             "createdBy": "1700000000000-a1b2c3", "createdAt": "2024-03-01T00:00:00.000Z",
             "members": [
                {"userId": "1700000000000-a1b2c3", "role": "owner", "joinedAt": "2024-03-01T00:00:00.000Z"},
                {"userId": "42", "role": "member", "joinedAt": "2024-03-02T00:00:00.000Z"}
             ],
             "channelMetadata": {"channelId": "c1", "channelType": "project", "linkedAt": "2024-03-03T00:00:00.000Z"}},
            {"id": "p2", "name": "Archive", "description": "", "teamId": null, "status": "active",
             "createdBy": "42", "createdAt": "2024-03-04T00:00:00.000Z",
             "members": [{"userId": "42", "role": "owner", "joinedAt": "2024-03-04T00:00:00.000Z"}],
             "channelMetadata": {"channelId": "c-missing", "channelType": "project", "linkedAt": "2024-03-04T00:00:00.000Z"}}
        ]}),
    );
    write(
        dir,
        "files",
        json!({"files": [
            {"id": "f1", "originalName": "logo.png", "filename": "1700000000000-logo.png",
             "path": "/srv/uploads/1700000000000-logo.png", "url": "/uploads/1700000000000-logo.png",
             "size": 2048, "mimetype": "image/png", "uploadedBy": "1700000000000-a1b2c3",
             "uploadedAt": "2024-03-05T00:00:00.000Z", "tags": ["brand", "logo"],
             "description": "the logo", "isPublic": true}
        ]}),
    );
    write(
        dir,
        "messages",
        json!({"messages": [
            // Listed out of order: seq follows the timestamps.
            {"id": "m2", "conversationId": "c1", "authorId": "42", "content": "second",
             "messageType": "text", "replyToId": "m1", "attachments": [],
             "metadata": {"userEmail": "bob@example.com"}, "timestamp": "2024-04-01T10:05:00.000Z"},
            {"id": "m1", "conversationId": "c1", "authorId": "1700000000000-a1b2c3", "content": "first",
             "messageType": "text", "replyToId": null, "attachments": [],
             "metadata": {"userEmail": "ada.legacy@example.com"}, "timestamp": "2024-04-01T10:00:00.000Z"},
            {"id": "m3", "conversationId": "c1", "authorId": "1700000000000-a1b2c3", "content": "third",
             "messageType": "text", "replyToId": null, "attachments": [],
             "metadata": {}, "timestamp": "not a date"},
            {"id": "m-lost", "conversationId": "c-nowhere", "authorId": "42", "content": "lost",
             "messageType": "text", "replyToId": null, "attachments": [], "metadata": {},
             "timestamp": "2024-04-01T11:00:00.000Z"},
            {"id": "d1", "conversationId": "dm-x", "authorId": "1700000000000-a1b2c3", "content": "hi bob",
             "messageType": "dm", "replyToId": null, "attachments": [],
             "metadata": {"recipientId": "42", "senderEmail": "ada.legacy@example.com", "read": true,
                          "readAt": "2024-04-02T00:00:00.000Z"},
             "timestamp": "2024-04-01T12:00:00.000Z"},
            {"id": "d2", "conversationId": "dm-x", "authorId": "42", "content": "hi ada",
             "messageType": "dm", "replyToId": null, "attachments": [],
             "metadata": {"recipientId": "1700000000000-a1b2c3", "senderEmail": "bob@example.com", "read": false},
             "timestamp": "2024-04-01T12:01:00.000Z"},
            {"id": "d-bad", "conversationId": "dm-y", "authorId": "42", "content": "to whom?",
             "messageType": "dm", "replyToId": null, "attachments": [],
             "metadata": {"senderEmail": "bob@example.com", "read": false},
             "timestamp": "2024-04-01T12:02:00.000Z"}
        ]}),
    );
}

/// Every imported row of every table the importer writes, as sorted text: equal snapshots mean
/// equal contents.
async fn snapshot(db: &Db) -> Vec<Vec<String>> {
    let mut conn = db.get_read().await.unwrap();
    let mut tables = Vec::new();
    macro_rules! table {
        ($q:expr, $t:ty) => {{
            let rows: Vec<$t> = flux::db!(conn, |c| $q.load(c).await).unwrap();
            let mut rows: Vec<String> = rows.iter().map(|r| format!("{r:?}")).collect();
            rows.sort();
            tables.push(rows);
        }};
    }
    table!(
        users::table.select((
            users::id,
            users::email,
            users::name,
            users::password_hash,
            users::password_scheme,
            users::user_type,
            users::avatar_url,
            users::google_sub,
            users::created_at,
            users::updated_at,
        )),
        (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Timestamp,
            Timestamp
        )
    );
    table!(
        groups::table.select((
            groups::id,
            groups::kind,
            groups::name,
            groups::description,
            groups::created_by,
            groups::created_at,
        )),
        (
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            Timestamp
        )
    );
    table!(
        group_members::table.select((
            group_members::group_id,
            group_members::user_id,
            group_members::role,
            group_members::joined_at,
        )),
        (String, String, String, Timestamp)
    );
    table!(
        group_invites::table.select((
            group_invites::id,
            group_invites::group_id,
            group_invites::email,
            group_invites::role,
            group_invites::status,
            group_invites::invited_by,
        )),
        (String, String, String, String, String, Option<String>)
    );
    table!(
        projects::table.select((
            projects::id,
            projects::name,
            projects::group_id,
            projects::status,
            projects::channel_id,
            projects::channel_linked_at,
        )),
        (
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<Timestamp>
        )
    );
    table!(
        project_members::table.select((
            project_members::project_id,
            project_members::user_id,
            project_members::role,
        )),
        (String, String, String)
    );
    table!(
        files::table.select((
            files::id,
            files::owner_id,
            files::original_name,
            files::stored_name,
            files::storage_key,
            files::size,
            files::mime_type,
            files::tags,
            files::is_public,
            files::created_at,
        )),
        (String, String, String, String, String, i64, String, Value, bool, Timestamp)
    );
    table!(
        conversations::table.select((
            conversations::id,
            conversations::kind,
            conversations::name,
            conversations::group_id,
            conversations::created_by,
            conversations::dm_key,
            conversations::last_seq,
            conversations::last_message_at,
        )),
        (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            Option<Timestamp>
        )
    );
    table!(
        cp::table.select((cp::conversation_id, cp::user_id, cp::role)),
        (String, String, String)
    );
    table!(
        messages::table.select((
            messages::id,
            messages::conversation_id,
            messages::author_id,
            messages::seq,
            messages::content,
            messages::message_type,
            messages::reply_to_id,
            messages::metadata,
        )),
        (
            String,
            String,
            Option<String>,
            i64,
            String,
            String,
            Option<String>,
            Value
        )
    );
    tables
}

fn count(snap: &[Vec<String>]) -> Vec<usize> {
    snap.iter().map(Vec::len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_the_original_json_files_on_every_backend() {
    for backend in backends() {
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres().await.unwrap().unwrap(),
        };
        let work = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        write_fixture(data.path());
        let dir = data.path().to_str().unwrap();
        let run = |args: &[&str]| {
            flux(work.path(), &database.url)
                .args(args)
                .output()
                .unwrap()
        };

        // An unmigrated schema is refused, naming the command that fixes it (a dry run never
        // migrates, even where a real run of the development SQLite database would).
        let out = run(&["migrate", "import-json", dir, "--dry-run"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {stdout}{stderr}");
        assert!(stderr.contains("flux migrate run"), "{stderr}");
        let out = run(&["migrate", "run"]);
        assert!(out.status.success(), "{:?}", text(&out));
        let db = Db::connect(&DbOptions::new(database.url.clone()))
            .await
            .unwrap();
        let empty = snapshot(&db).await;
        assert_eq!(count(&empty), vec![0; 10]);

        // Dry run: the real run's report, nothing written.
        let out = run(&["migrate", "import-json", dir, "--dry-run"]);
        let (dry, stderr) = text(&out);
        assert!(out.status.success(), "{backend:?}: {dry}{stderr}");
        assert!(
            dry.contains("users.json: 4 record(s): 3 imported, 0 already present, 1 rejected"),
            "{dry}"
        );
        assert!(dry.contains("dry run, nothing written"), "{dry}");
        assert_eq!(snapshot(&db).await, empty, "a dry run writes nothing");

        // The import.
        let out = run(&["migrate", "import-json", dir]);
        let (first, stderr) = text(&out);
        assert!(out.status.success(), "{backend:?}: {first}{stderr}");
        eprintln!("--- {backend:?}, first import:\n{first}");
        assert!(dry.lines().next().unwrap().contains("(dry run"), "{dry}");
        // The same report as the dry run, but for its first and last lines.
        let body = |s: &str| {
            s.lines()
                .skip(1)
                .filter(|l| !l.starts_with("dry run") && !l.starts_with("import complete"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(body(&dry), body(&first));
        for line in [
            "users.json: 4 record(s): 3 imported, 0 already present, 1 rejected; 2 anomalies",
            "teams.json: 1 record(s): 1 imported, 0 already present, 0 rejected; 1 anomaly",
            "channels.json: 2 record(s): 2 imported, 0 already present, 0 rejected; 1 anomaly",
            "projects.json: 2 record(s): 2 imported, 0 already present, 0 rejected; 1 anomaly",
            "files.json: 1 record(s): 1 imported, 0 already present, 0 rejected; 0 anomalies",
            "messages.json: 7 record(s): 5 imported, 0 already present, 2 rejected; 3 anomalies",
            "created 1 direct conversation(s)",
            "import complete: 14 imported, 0 already present, 3 rejected, 8 anomalies",
        ] {
            assert!(
                first.contains(line),
                "{backend:?}: missing {line:?} in\n{first}"
            );
        }
        for anomaly in [
            r#"user "u-dup": duplicate e-mail ada.legacy@example.com (already used by user "1700000000000-a1b2c3"); not imported"#,
            r#"user "42": invalid userType "superuser"; set to "client""#,
            r#"team "t1": member "u-ghost" is not a known user; member skipped"#,
            r#"channel "c-orphan": teamId "t-gone" is not a known team"#,
            r#"project "p2": linked channel "c-missing" does not exist; link dropped"#,
            r#"message "m-lost": conversation "c-nowhere" does not exist; not imported"#,
            r#"message "d-bad": direct message without metadata.recipientId; not imported"#,
            r#"message "m3": timestamp "not a date" is not a timestamp; set to now"#,
        ] {
            assert!(
                first.contains(anomaly),
                "{backend:?}: missing {anomaly:?} in\n{first}"
            );
        }

        let imported = snapshot(&db).await;
        // users, groups, members, invites, projects, project members, files, conversations,
        // participants (2 channel creators + 2 in the DM), messages.
        assert_eq!(count(&imported), vec![3, 1, 2, 1, 2, 3, 1, 3, 4, 5]);
        let mut conn = db.get_read().await.unwrap();
        let (email, scheme, hash): (String, Option<String>, Option<String>) =
            flux::db!(conn, |c| {
                users::table
                    .find("1700000000000-a1b2c3")
                    .select((users::email, users::password_scheme, users::password_hash))
                    .first(c)
                    .await
            })
            .unwrap();
        assert_eq!(email, "ada.legacy@example.com");
        assert_eq!(scheme.as_deref(), Some("escaped_v1"));
        assert!(hash.unwrap().starts_with("$2"));
        let google: (Option<String>, Option<String>, Option<String>) = flux::db!(conn, |c| {
            users::table
                .find("u-google")
                .select((users::google_sub, users::password_hash, users::avatar_url))
                .first(c)
                .await
        })
        .unwrap();
        assert_eq!(
            google,
            (
                Some("google-sub-1".into()),
                None,
                Some("https://example.com/gia.png".into())
            )
        );
        let bob_type: String = flux::db!(conn, |c| {
            users::table
                .find("42")
                .select(users::user_type)
                .first(c)
                .await
        })
        .unwrap();
        assert_eq!(bob_type, "client");
        let invite: (String, String) = flux::db!(conn, |c| {
            group_invites::table
                .find("inv-1")
                .select((group_invites::email, group_invites::status))
                .first(c)
                .await
        })
        .unwrap();
        assert_eq!(invite, ("new.person@example.com".into(), "pending".into()));
        let channel: Option<String> = flux::db!(conn, |c| {
            projects::table
                .find("p1")
                .select(projects::channel_id)
                .first(c)
                .await
        })
        .unwrap();
        assert_eq!(channel.as_deref(), Some("c1"));
        let tags: Value = flux::db!(conn, |c| {
            files::table.find("f1").select(files::tags).first(c).await
        })
        .unwrap();
        assert_eq!(tags, json!(["brand", "logo"]));
        // Seq follows the timestamps; the unreadable one ("now") comes last; replies are linked.
        let seqs: Vec<(String, i64, Option<String>)> = flux::db!(conn, |c| {
            messages::table
                .filter(messages::conversation_id.eq("c1"))
                .order(messages::seq)
                .select((messages::id, messages::seq, messages::reply_to_id))
                .load(c)
                .await
        })
        .unwrap();
        assert_eq!(
            seqs,
            vec![
                ("m1".into(), 1, None),
                ("m2".into(), 2, Some("m1".into())),
                ("m3".into(), 3, None)
            ]
        );
        let convs: Vec<(String, String, i64, Option<String>)> = flux::db!(conn, |c| {
            conversations::table
                .order(conversations::id)
                .select((
                    conversations::id,
                    conversations::kind,
                    conversations::last_seq,
                    conversations::dm_key,
                ))
                .load(c)
                .await
        })
        .unwrap();
        let dm = convs
            .iter()
            .find(|c| c.1 == "direct")
            .expect("a direct conversation");
        assert_eq!(dm.2, 2);
        assert_eq!(dm.3.as_deref(), Some("1700000000000-a1b2c3\u{1f}42"));
        assert!(convs.iter().any(|c| c.0 == "c1" && c.2 == 3), "{convs:?}");
        let dm_id = dm.0.clone();
        drop(conn);

        // Again: nothing changes, nothing fails.
        let out = run(&["migrate", "import-json", dir]);
        let (second, stderr) = text(&out);
        assert!(out.status.success(), "{backend:?}: {second}{stderr}");
        assert!(
            second.contains("users.json: 4 record(s): 0 imported, 3 already present, 1 rejected"),
            "{second}"
        );
        assert!(
            second
                .contains("messages.json: 7 record(s): 0 imported, 5 already present, 2 rejected"),
            "{second}"
        );
        assert!(
            second.contains("import complete: 0 imported, 14 already present"),
            "{second}"
        );
        assert!(!second.contains("direct conversation"), "{second}");
        assert_eq!(
            snapshot(&db).await,
            imported,
            "a second import changes nothing"
        );
        drop(db);

        // A server on the imported database: the legacy password logs in and is rehashed, and the
        // imported data is served.
        let t = TestServer::start_on(Target::Unified, database).await;
        let login = |password: &'static str| {
            let req = t
                .client
                .post(t.url(ListenerKind::Unified, "/api/auth/login"))
                .json(&json!({"email": "ada.legacy@example.com", "password": password}));
            with_csrf(req).send()
        };
        let res = login(LEGACY_PASSWORD).await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let token = body["token"].as_str().expect("token").to_owned();
        assert_eq!(body["user"]["id"], "1700000000000-a1b2c3");
        let sdb = t.server.as_ref().unwrap().state().db.clone();
        let mut conn = sdb.get_read().await.unwrap();
        let scheme: Option<String> = flux::db!(conn, |c| {
            users::table
                .find("1700000000000-a1b2c3")
                .select(users::password_scheme)
                .first(c)
                .await
        })
        .unwrap();
        drop(conn);
        assert_eq!(scheme.as_deref(), Some("raw_v2"), "rehashed at first login");
        assert_eq!(login(LEGACY_PASSWORD).await.unwrap().status(), 200);
        assert_eq!(login("Passw0rd!&lt;&amp;").await.unwrap().status(), 401);

        let get = |path: String| {
            let req = t
                .client
                .get(t.url(ListenerKind::Unified, &path))
                .bearer_auth(&token);
            async move {
                let res = req.send().await.unwrap();
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap())
            }
        };
        let (status, teams) = get("/api/teams".into()).await;
        assert_eq!(status, 200, "{teams}");
        assert_eq!(teams["teams"][0]["id"], "t1");
        assert_eq!(teams["teams"][0]["members"].as_array().unwrap().len(), 2);
        assert_eq!(
            teams["teams"][0]["invites"][0]["email"],
            "new.person@example.com"
        );
        let (status, projects) = get("/api/projects".into()).await;
        assert_eq!(status, 200, "{projects}");
        let list = projects["projects"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{projects}");
        assert_eq!(list[0]["id"], "p1");
        assert_eq!(list[0]["teamId"], "t1");
        let (status, history) = get("/api/conversations/c1/messages".into()).await;
        assert_eq!(status, 200, "{history}");
        let texts: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts, vec!["third", "second", "first"], "newest first");
        let (status, dms) = get(format!("/api/conversations/{dm_id}/messages")).await;
        assert_eq!(status, 200, "{dms}");
        assert_eq!(dms.as_array().unwrap().len(), 2, "{dms}");
        // The orphaned channel belongs to its creator only.
        let (status, _) = get("/api/conversations/c-orphan/messages".into()).await;
        assert_eq!(status, 403);
        t.stop().await;
    }
}

#[test]
fn malformed_or_missing_input_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite();
    std::fs::write(
        data.path().join("teams.json"),
        "{\"teams\": [\n  {\"id\": \"t1\", \"name\": \"x\",}\n]}",
    )
    .unwrap();
    let out = flux(work.path(), &db.url)
        .args(["migrate", "import-json", data.path().to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("teams.json: malformed JSON"), "{stderr}");
    assert!(stderr.contains("line 2 column"), "{stderr}");
    assert!(!stdout.contains("import complete"), "{stdout}");

    // Fixed, and with the other files missing: each missing file is reported, then skipped.
    std::fs::write(data.path().join("teams.json"), r#"{"teams": []}"#).unwrap();
    let out = flux(work.path(), &db.url)
        .args(["migrate", "import-json", data.path().to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // A development SQLite database is migrated first, as `flux serve` would.
    assert!(
        stdout.contains("applied  2026-11-25-000000_init"),
        "{stdout}"
    );
    assert!(
        stdout.contains("users.json: not found, skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("teams.json: 0 record(s)"), "{stdout}");
    assert!(
        stdout.contains("not found: users.json, channels.json"),
        "{stdout}"
    );

    let out = flux(work.path(), &db.url)
        .args(["migrate", "import-json", "/nonexistent/legacy-data"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot read /nonexistent/legacy-data"),
        "{stderr}"
    );

    let out = flux(work.path(), &db.url)
        .args(["migrate", "import-json", "--help"])
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for word in ["DIR", "--dry-run", "users.json", "flux migrate run"] {
        assert!(stdout.contains(word), "--help mentions {word}: {stdout}");
    }
}

/// Rows flux already has win over legacy ones: a taken e-mail rejects the legacy user, a linked
/// Google account stays with its flux user, and what pointed at the rejected user is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_already_in_flux_win_and_conflicts_are_reported() {
    for backend in backends() {
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres().await.unwrap().unwrap(),
        };
        let db = database.connect_migrated().await.unwrap();
        let mut conn = db.get_write().await.unwrap();
        let now = flux::db::now();
        for (id, email, sub) in [
            ("native-1", "bob@example.com", None),
            ("native-2", "gia.native@example.com", Some("google-sub-1")),
        ] {
            flux::db!(conn, |c| {
                diesel::insert_into(users::table)
                    .values((
                        users::id.eq(id),
                        users::email.eq(email),
                        users::name.eq("native"),
                        users::google_sub.eq(sub),
                        users::created_at.eq(now),
                        users::updated_at.eq(now),
                    ))
                    .execute(c)
                    .await
            })
            .unwrap();
        }
        drop(conn);
        let data = tempfile::tempdir().unwrap();
        write(
            data.path(),
            "users",
            json!({"users": [
                {"id": "42", "email": "Bob@Example.com", "name": "Bob", "userType": "client",
                 "createdAt": "2024-01-03T00:00:00.000Z"},
                {"id": "u-google", "email": "gia@example.com", "name": "Gia", "userType": "client",
                 "googleId": "google-sub-1", "createdAt": "2024-01-03T00:00:00.000Z"}
            ]}),
        );
        write(
            data.path(),
            "messages",
            json!({"messages": [
                {"id": "d1", "conversationId": "dm", "authorId": "u-google", "content": "hi",
                 "messageType": "dm", "metadata": {"recipientId": "42"},
                 "timestamp": "2024-04-01T12:00:00.000Z"}
            ]}),
        );
        let work = tempfile::tempdir().unwrap();
        let out = flux(work.path(), &database.url)
            .args(["migrate", "import-json", data.path().to_str().unwrap()])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{backend:?}: {stdout}{stderr}");
        for line in [
            r#"user "42": duplicate e-mail bob@example.com (already used by user "native-1"); not imported"#,
            r#"user "u-google": googleId google-sub-1 already belongs to another user; imported without it"#,
            r#"message "d1": direct message to "42", not a known user; not imported"#,
            "import complete: 1 imported, 0 already present, 2 rejected, 3 anomalies",
        ] {
            assert!(
                stdout.contains(line),
                "{backend:?}: missing {line:?} in\n{stdout}"
            );
        }
        let mut conn = db.get_read().await.unwrap();
        let rows: Vec<(String, String, Option<String>)> = flux::db!(conn, |c| {
            users::table
                .order(users::id)
                .select((users::id, users::email, users::google_sub))
                .load(c)
                .await
        })
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("native-1".into(), "bob@example.com".into(), None),
                (
                    "native-2".into(),
                    "gia.native@example.com".into(),
                    Some("google-sub-1".into())
                ),
                ("u-google".into(), "gia@example.com".into(), None),
            ]
        );
        drop(conn);
        drop(db);
        database.close().await;
    }
}
