//! Storage tests: every test runs on SQLite, and on PostgreSQL too when `FLUX_TEST_DATABASE_URL`
//! names a server (a fresh database per test, dropped afterwards).

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use flux::db::schema::{conversations, messages, users};
use flux::db::testing::TestDatabase;
use flux::db::{like_contains, lower, migrate, Backend, Db, DbError, Json, Timestamp, LIKE_ESCAPE};
use serde_json::json;

type TestResult = Result<(), DbError>;

/// Every migration, oldest first, as the embedded sets name them. Read from the folders so that a
/// new migration needs no edit here; the two backends must ship the same list.
#[allow(clippy::expect_used)]
fn all_migrations() -> Vec<String> {
    let names = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                entry
                    .expect("migration entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert_eq!(
        sqlite,
        names("postgres"),
        "both backends ship the same migrations"
    );
    assert!(sqlite.iter().any(|m| m == "2026-11-25-000000_init"));
    sqlite
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    id: &'a str,
    email: &'a str,
    name: &'a str,
    user_type: &'a str,
    preferences: Json,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Insertable)]
#[diesel(table_name = conversations)]
struct NewConversation<'a> {
    id: &'a str,
    kind: &'a str,
    name: Option<&'a str>,
    created_by: Option<&'a str>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Insertable)]
#[diesel(table_name = messages)]
struct NewMessage {
    id: String,
    conversation_id: String,
    author_id: Option<String>,
    seq: i64,
    content: String,
    mentions: Json<Vec<String>>,
    metadata: Json,
    created_at: Timestamp,
}

#[derive(Queryable, Selectable, Debug, PartialEq)]
#[diesel(table_name = messages)]
#[diesel(check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
struct MessageRow {
    id: String,
    seq: i64,
    content: String,
    mentions: Json<Vec<String>>,
    metadata: Json,
    created_at: Timestamp,
    edited_at: Option<Timestamp>,
}

fn user<'a>(id: &'a str, email: &'a str, now: Timestamp) -> NewUser<'a> {
    NewUser {
        id,
        email,
        name: "Ada Lovelace",
        user_type: "designer",
        preferences: Json(json!({"theme": "dark", "langs": ["en", "fr"], "n": 1.5, "ü": null})),
        created_at: now,
        updated_at: now,
    }
}

/// Sends a message the way the messaging layer will: take the next seq of the conversation and
/// insert, in one transaction. Returns the seq.
async fn send(
    db: &Db,
    conversation: &str,
    author: &str,
    content: &str,
    created_at: Timestamp,
) -> Result<i64, DbError> {
    let (conversation, author, content) = (
        conversation.to_owned(),
        author.to_owned(),
        content.to_owned(),
    );
    db.transaction(async move |mut conn| {
        let seq: i64 = flux::db!(conn, |c| {
            diesel::update(conversations::table.find(&conversation))
                .set((
                    conversations::last_seq.eq(conversations::last_seq + 1),
                    conversations::last_message_at.eq(Some(created_at)),
                ))
                .returning(conversations::last_seq)
                .get_result(c)
                .await
        })?;
        let row = NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            conversation_id: conversation,
            author_id: Some(author),
            seq,
            content,
            mentions: Json(vec!["u1".to_owned()]),
            metadata: Json(json!({"seq": seq})),
            created_at,
        };
        flux::db!(conn, |c| {
            diesel::insert_into(messages::table)
                .values(&row)
                .execute(c)
                .await
        })?;
        Ok::<i64, DbError>(seq)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_up_status_down_up() -> TestResult {
    for test_db in TestDatabase::all().await? {
        let url = &test_db.url;
        let backend = test_db.backend;

        let all = all_migrations();
        let pending = migrate::status(url).await?;
        assert!(pending.iter().all(|m| !m.applied), "{backend}: {pending:?}");
        let pending_names: Vec<&str> = pending.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(pending_names, all, "{backend}");

        assert_eq!(migrate::run(url).await?, all, "{backend}");
        assert!(migrate::run(url).await?.is_empty(), "{backend}: second run");
        let applied = migrate::status(url).await?;
        assert!(applied.iter().all(|m| m.applied), "{backend}: {applied:?}");

        let newest_first: Vec<String> = all.iter().rev().cloned().collect();
        assert_eq!(
            migrate::revert(url, all.len()).await?,
            newest_first,
            "{backend}"
        );
        assert!(
            migrate::revert(url, 1).await?.is_empty(),
            "{backend}: nothing left"
        );
        let reverted = migrate::status(url).await?;
        assert!(
            reverted.iter().all(|m| !m.applied),
            "{backend}: {reverted:?}"
        );

        // Everything was dropped, so applying again succeeds.
        assert_eq!(migrate::run(url).await?, all, "{backend}");
        let db = Db::connect(&test_db.options()).await?;
        assert_eq!(db.backend(), backend);
        let mut conn = db.get_read().await?;
        let count: i64 = flux::db!(conn, |c| users::table.count().get_result(c).await)?;
        assert_eq!(count, 0, "{backend}");
        drop(conn);
        drop(db);
        test_db.close().await;
    }
    Ok(())
}

/// The harness bridges to sync code on the blocking pool, so a current-thread runtime works too.
#[tokio::test]
async fn migrations_run_on_current_thread_runtime() -> TestResult {
    for test_db in TestDatabase::all().await? {
        assert_eq!(migrate::run(&test_db.url).await?, all_migrations());
        assert!(migrate::status(&test_db.url)
            .await?
            .iter()
            .all(|m| m.applied));
        test_db.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_story() -> TestResult {
    for test_db in TestDatabase::all().await? {
        let db = test_db.connect_migrated().await?;
        story(&db).await.map_err(|e| {
            // Name the backend in the failure; Debug keeps the driver's detail.
            DbError::Migration(format!("{} story failed: {e:?}", test_db.backend))
        })?;
        drop(db);
        test_db.close().await;
    }
    Ok(())
}

async fn story(db: &Db) -> TestResult {
    let backend = db.backend();
    let now = Timestamp::now();

    // A user; JSON round-trips.
    let mut conn = db.get_write().await?;
    flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values(&user("u1", "ada@example.com", now))
            .execute(c)
            .await
    })?;
    let (prefs, created): (Json, Timestamp) = flux::db!(conn, |c| {
        users::table
            .find("u1")
            .select((users::preferences, users::created_at))
            .first(c)
            .await
    })?;
    assert_eq!(prefs, user("u1", "x", now).preferences, "{backend}");
    assert_eq!(created, now, "{backend}");

    // The same e-mail again is a unique violation, mapped for a 409.
    let duplicate: Result<usize, DbError> = flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values(&user("u2", "ada@example.com", now))
            .execute(c)
            .await
    })
    .map_err(DbError::from);
    assert!(
        matches!(duplicate, Err(DbError::UniqueViolation { .. })),
        "{backend}: {duplicate:?}"
    );
    // Upper-case e-mails are refused by the CHECK: normalising is the application's job.
    let upper: Result<usize, DbError> = flux::db!(conn, |c| {
        diesel::insert_into(users::table)
            .values(&user("u3", "Bob@Example.com", now))
            .execute(c)
            .await
    })
    .map_err(DbError::from);
    assert!(
        matches!(upper, Err(DbError::Query(_))),
        "{backend}: {upper:?}"
    );

    // A missing row is NotFound (a 404).
    let missing: Result<String, DbError> = flux::db!(conn, |c| {
        users::table.find("nobody").select(users::id).first(c).await
    })
    .map_err(DbError::from);
    assert!(matches!(missing, Err(DbError::NotFound)), "{backend}");

    flux::db!(conn, |c| {
        diesel::insert_into(conversations::table)
            .values(&NewConversation {
                id: "c1",
                kind: "channel",
                name: Some("general"),
                created_by: Some("u1"),
                created_at: now,
                updated_at: now,
            })
            .execute(c)
            .await
    })?;
    drop(conn);

    // Messages with explicit timestamps carrying nanoseconds: stored truncated to microseconds.
    let base = Utc
        .with_ymd_and_hms(2025, 3, 4, 5, 6, 7)
        .single()
        .ok_or(DbError::NotFound)?;
    let contents = [
        "Hello World",
        "second",
        "100% sure_thing",
        "fourth",
        "HELLO again",
    ];
    let mut sent = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        let micros = i64::try_from(i).unwrap_or(0) * 250_001;
        let at = base + chrono::Duration::nanoseconds(micros * 1000 + 999);
        let seq = send(db, "c1", "u1", content, Timestamp::from(at)).await?;
        sent.push((seq, at));
    }
    assert_eq!(
        sent.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5],
        "{backend}"
    );

    // Concurrent senders still get distinct, gap-free seqs.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                send(&db, "c1", "u1", &format!("burst {i}"), Timestamp::now()).await
            })
        })
        .collect();
    let mut burst = Vec::new();
    for task in tasks {
        burst.push(
            task.await
                .map_err(|e| DbError::Migration(e.to_string()))??,
        );
    }
    burst.sort_unstable();
    assert_eq!(burst, (6..=13).collect::<Vec<i64>>(), "{backend}");

    // Read by seq range ("since 2"), in order, with timestamps and JSON intact.
    let mut conn = db.get_read().await?;
    let rows: Vec<MessageRow> = flux::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq("c1"))
            .filter(messages::seq.gt(2_i64))
            .filter(messages::seq.le(5_i64))
            .order(messages::seq.asc())
            .select(MessageRow::as_select())
            .load(c)
            .await
    })?;
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![3, 4, 5],
        "{backend}"
    );
    for row in &rows {
        let index = usize::try_from(row.seq - 1).unwrap_or(0);
        let expected = Timestamp::from(sent[index].1);
        assert_eq!(row.created_at, expected, "{backend}: seq {}", row.seq);
        assert_eq!(
            row.created_at.timestamp_subsec_nanos() % 1000,
            0,
            "{backend}"
        );
        assert_eq!(row.content, contents[index], "{backend}");
        assert_eq!(row.mentions, Json(vec!["u1".to_owned()]), "{backend}");
        assert_eq!(row.metadata, Json(json!({"seq": row.seq})), "{backend}");
        assert_eq!(row.edited_at, None, "{backend}");
    }
    assert_eq!(
        rows[0].created_at.to_iso_millis(),
        "2025-03-04T05:06:07.500Z",
        "{backend}"
    );

    // Time order in SQL equals seq order for the first five (their timestamps increase).
    let by_time: Vec<i64> = flux::db!(conn, |c| {
        messages::table
            .filter(messages::conversation_id.eq("c1"))
            .filter(messages::created_at.lt(Timestamp::from(base + chrono::Duration::days(1))))
            .order(messages::created_at.desc())
            .select(messages::seq)
            .load(c)
            .await
    })?;
    assert_eq!(by_time, vec![5, 4, 3, 2, 1], "{backend}");

    // Case-insensitive search, the same on both backends; LIKE wildcards in the input are literal.
    let hits: Vec<i64> = flux::db!(conn, |c| {
        messages::table
            .filter(
                lower(messages::content)
                    .like(lower(like_contains("hello")))
                    .escape(LIKE_ESCAPE),
            )
            .order(messages::seq.asc())
            .select(messages::seq)
            .load(c)
            .await
    })?;
    assert_eq!(hits, vec![1, 5], "{backend}");
    let literal: Vec<i64> = flux::db!(conn, |c| {
        messages::table
            .filter(
                lower(messages::content)
                    .like(lower(like_contains("0% SURE_")))
                    .escape(LIKE_ESCAPE),
            )
            .select(messages::seq)
            .load(c)
            .await
    })?;
    assert_eq!(literal, vec![3], "{backend}");
    let wildcard: Vec<i64> = flux::db!(conn, |c| {
        messages::table
            .filter(
                lower(messages::content)
                    .like(lower(like_contains("d_")))
                    .escape(LIKE_ESCAPE),
            )
            .select(messages::seq)
            .load(c)
            .await
    })?;
    assert!(wildcard.is_empty(), "{backend}: `_` must not be a wildcard");
    drop(conn);

    // A message in an unknown conversation violates a foreign key; a duplicate seq is refused.
    let mut conn = db.get_write().await?;
    let orphan = NewMessage {
        id: "m-orphan".to_owned(),
        conversation_id: "nope".to_owned(),
        author_id: None,
        seq: 1,
        content: String::new(),
        mentions: Json(Vec::new()),
        metadata: Json(json!({})),
        created_at: now,
    };
    let fk: Result<usize, DbError> = flux::db!(conn, |c| {
        diesel::insert_into(messages::table)
            .values(&orphan)
            .execute(c)
            .await
    })
    .map_err(DbError::from);
    assert!(
        matches!(fk, Err(DbError::ForeignKeyViolation { .. })),
        "{backend}: {fk:?}"
    );
    let dup_seq = NewMessage {
        conversation_id: "c1".to_owned(),
        ..orphan
    };
    let dup: Result<usize, DbError> = flux::db!(conn, |c| {
        diesel::insert_into(messages::table)
            .values(&dup_seq)
            .execute(c)
            .await
    })
    .map_err(DbError::from);
    assert!(
        matches!(dup, Err(DbError::UniqueViolation { .. })),
        "{backend}: {dup:?}"
    );

    // An error inside a transaction rolls it back.
    drop(conn);
    let failed: Result<(), DbError> = db
        .transaction(async |mut conn| {
            flux::db!(conn, |c| {
                diesel::update(conversations::table.find("c1"))
                    .set(conversations::name.eq(Some("renamed")))
                    .execute(c)
                    .await
            })?;
            Err(DbError::NotFound)
        })
        .await;
    assert!(matches!(failed, Err(DbError::NotFound)), "{backend}");
    let mut conn = db.get_read().await?;
    let name: Option<String> = flux::db!(conn, |c| {
        conversations::table
            .find("c1")
            .select(conversations::name)
            .first(c)
            .await
    })?;
    assert_eq!(name.as_deref(), Some("general"), "{backend}");

    // Readers are read-only on SQLite, so a write on the wrong pool fails in tests.
    if backend == Backend::Sqlite {
        let write_on_reader: Result<usize, DbError> = flux::db!(conn, |c| {
            diesel::delete(messages::table).execute(c).await
        })
        .map_err(DbError::from);
        assert!(write_on_reader.is_err(), "reader accepted a write");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_pool_stats() -> TestResult {
    for test_db in TestDatabase::all().await? {
        let db = test_db.connect_migrated().await?;
        db.ping().await?;
        let stats = db.pool_stats();
        assert!(
            stats.size >= 1 && stats.available <= stats.size,
            "{stats:?}"
        );
        assert!(stats.max >= 2, "{stats:?}");
        drop(db);
        test_db.close().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_clear_and_redacted() {
    let options = flux::db::DbOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..flux::db::DbOptions::new("postgres://flux:hunter2@127.0.0.1:1/flux")
    };
    let Err(error) = Db::connect(&options).await else {
        panic!("connected to a closed port");
    };
    let text = error.to_string();
    assert!(matches!(error, DbError::Unavailable(_)), "{error:?}");
    assert!(
        text.contains("postgres://flux:***@127.0.0.1:1/flux"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let Err(error) = migrate::status("postgres://flux:hunter2@127.0.0.1:1/flux").await else {
        panic!("connected to a closed port");
    };
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

/// Stops and restarts PostgreSQL, so it runs only on request:
/// `FLUX_TEST_DATABASE_URL=… FLUX_TEST_PG_STOP='…' FLUX_TEST_PG_START='…' cargo test -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops the PostgreSQL server; needs FLUX_TEST_PG_STOP and FLUX_TEST_PG_START commands"]
async fn ping_fails_then_recovers_when_postgres_restarts() -> TestResult {
    let (Ok(stop), Ok(start)) = (
        std::env::var("FLUX_TEST_PG_STOP"),
        std::env::var("FLUX_TEST_PG_START"),
    ) else {
        panic!("set FLUX_TEST_PG_STOP and FLUX_TEST_PG_START to shell commands");
    };
    let Some(test_db) = TestDatabase::postgres().await? else {
        panic!("set FLUX_TEST_DATABASE_URL");
    };
    let options = flux::db::DbOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..test_db.options()
    };
    migrate::run(&test_db.url).await?;
    let db = Db::connect(&options).await?;
    db.ping().await?;
    // Keep several connections in the pool so stale ones must be discarded.
    let held = (db.get_read().await?, db.get_read().await?);
    drop(held);

    let shell = |cmd: &str| std::process::Command::new("sh").arg("-c").arg(cmd).status();
    assert!(
        shell(&stop).map(|s| s.success()).unwrap_or(false),
        "stop failed"
    );
    let started = std::time::Instant::now();
    let down = db.ping().await;
    assert!(matches!(down, Err(DbError::Unavailable(_))), "{down:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "ping was slow"
    );

    assert!(
        shell(&start).map(|s| s.success()).unwrap_or(false),
        "start failed"
    );
    let mut recovered = false;
    for _ in 0..30 {
        if db.ping().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(recovered, "ping did not recover");
    // Every pooled connection works again, not just one.
    let (mut a, mut b) = (db.get_read().await?, db.get_read().await?);
    for conn in [&mut a, &mut b] {
        let n: i64 = flux::db!(conn, |c| users::table.count().get_result(c).await)?;
        assert_eq!(n, 0);
    }
    drop((a, b));
    drop(db);
    test_db.close().await;
    Ok(())
}
