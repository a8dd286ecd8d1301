//! Issue 23: document versions over the API, on every store, with live clients, across a
//! restart and across replicas; automatic versions, retention and the `version.*` webhooks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collab_server::protocol::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::*;
use yrs::sync::SyncMessage;
use yrs::{Doc, ReadTxn, Text, Transact};

const SECRET: &str = "versions-test-secret";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(server: &TestServer, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = http().post(server.http(path)).bearer_auth(SECRET);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("post");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let response = http()
        .get(server.http(path))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get_text(server: &TestServer, path: &str) -> (StatusCode, String) {
    let response = http()
        .get(server.http(path))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

async fn delete(server: &TestServer, path: &str) -> StatusCode {
    http()
        .delete(server.http(path))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("delete")
        .status()
}

/// The ids of a document's versions, newest first.
async fn version_ids(server: &TestServer, name: &str) -> Vec<i64> {
    let (status, list) = get(server, &format!("/api/documents/{name}/versions")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

/// Waits until a live client's document reads `wanted`, applying what the server sends.
async fn client_reads(client: &mut Client, name: &str, doc: &Doc, wanted: &str) {
    for _ in 0..100 {
        if text(doc) == wanted {
            return;
        }
        if let Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update)) =
            client.recv_message(name).await
        {
            apply(doc, &update);
        }
    }
    assert_eq!(text(doc), wanted, "the live client never saw it");
}

/// Every route, as a user drives it: make, list, read, restore (seen live), delete, and what
/// survives a restart (`restart` starts the same storage again; `None`: memory).
async fn versions_over_the_api(args: &[&str], name: &str, restart: bool) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--api-secret", SECRET]);
    let server = TestServer::start(&all).await;
    let doc = Doc::new();
    let mut editor = Client::connect(&server.ws_url()).await;
    editor.open(name, "", &doc).await;
    editor.edit_acknowledged(name, &doc, "hello").await;

    let path = format!("/api/documents/{name}/versions");
    let (status, first) = post(&server, &path, Some(json!({"label": "first"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["label"], "first");
    assert_eq!(first["author"], "api");
    assert!(first["size"].as_u64().expect("size") > 0);
    assert!(
        first["createdAt"]
            .as_str()
            .expect("createdAt")
            .ends_with('Z'),
        "{first}"
    );
    let first_id = first["id"].as_i64().expect("id");

    editor.edit_acknowledged(name, &doc, " world").await;
    let (status, second) = post(&server, &path, None).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["label"], Value::Null);
    let second_id = second["id"].as_i64().expect("id");
    assert_eq!(version_ids(&server, name).await, [second_id, first_id]);

    // Read in every format of the document read.
    let (status, old) = get_text(&server, &format!("{path}/{first_id}?format=text&root=t")).await;
    assert_eq!((status, old.as_str()), (StatusCode::OK, "hello"));
    let (status, json) = get(&server, &format!("{path}/{second_id}?format=json")).await;
    assert_eq!(
        (status, json),
        (StatusCode::OK, json!({"t": "hello world"}))
    );
    let binary = http()
        .get(server.http(&format!("{path}/{first_id}")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    let read_back = Doc::new();
    apply(&read_back, &binary);
    assert_eq!(text(&read_back), "hello");

    // A page of one, then the next.
    let (_, page) = get(&server, &format!("{path}?limit=1")).await;
    assert_eq!(page["versions"].as_array().expect("versions").len(), 1);
    let cursor = page["nextCursor"].as_str().expect("a next page");
    let (_, page) = get(&server, &format!("{path}?limit=1&cursor={cursor}")).await;
    assert_eq!(page["versions"][0]["id"], first_id);
    assert_eq!(page["nextCursor"], Value::Null);

    // Restore: the live client sees it at once; what was there is kept first.
    let (status, restored) = post(
        &server,
        &format!("{path}/{first_id}/restore"),
        Some(json!({"author": "alice"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["restored"]["id"], first_id);
    let previous = restored["previous"]["id"].as_i64().expect("previous");
    assert_eq!(
        restored["previous"]["label"],
        format!("Before restoring version {first_id}")
    );
    assert_eq!(restored["previous"]["author"], "alice");
    client_reads(&mut editor, name, &doc, "hello").await;
    let (_, kept) = get_text(&server, &format!("{path}/{previous}?format=text&root=t")).await;
    assert_eq!(kept, "hello world");
    // The restore is an ordinary change: the editor goes on editing on top of it.
    editor.edit_acknowledged(name, &doc, " again").await;

    // Unknown ids, malformed ids, deletion.
    for missing in ["999999", "abc", "0"] {
        let (status, _) = get(&server, &format!("{path}/{missing}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        let (status, _) = post(&server, &format!("{path}/{missing}/restore"), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    }
    assert_eq!(
        delete(&server, &format!("{path}/{second_id}")).await,
        StatusCode::OK
    );
    assert_eq!(
        delete(&server, &format!("{path}/{second_id}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(version_ids(&server, name).await, [previous, first_id]);
    let (status, _) = post(&server, &path, Some(json!({"label": ""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&server, &path, Some(json!({"labl": "typo"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&server, "/api/documents/never-written-here/versions", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    drop(editor);

    let server = if restart {
        server.stop().await;
        TestServer::start(&all).await
    } else {
        server
    };
    assert_eq!(version_ids(&server, name).await, [previous, first_id]);
    let (_, old) = get_text(&server, &format!("{path}/{first_id}?format=text&root=t")).await;
    assert_eq!(old, "hello");
    let (_, now) = get_text(
        &server,
        &format!("/api/documents/{name}?format=text&root=t"),
    )
    .await;
    assert_eq!(now, "hello again");

    // Deleting the document deletes its versions: nothing from before can come back.
    assert_eq!(
        delete(&server, &format!("/api/documents/{name}")).await,
        StatusCode::OK
    );
    assert!(version_ids(&server, name).await.is_empty());
    let (status, _) = post(&server, &format!("{path}/{first_id}/restore"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn versions_on_memory() {
    versions_over_the_api(&["--database-url", "memory://"], "versions-memory", false).await;
}

#[tokio::test]
async fn versions_on_sqlite_across_a_restart() {
    let dir = temp_dir("versions-sqlite");
    let data = path_arg(&dir);
    versions_over_the_api(&["--data-dir", &data], "versions-sqlite", true).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn versions_on_postgres_across_a_restart() {
    let Some((database, _)) = database_and_redis() else {
        return;
    };
    let name = format!("versions-pg-{}", now());
    versions_over_the_api(&["--database-url", &database], &name, true).await;
}

/// An offline client's edits merge with a restore as Yjs merges them: neither is lost.
#[tokio::test]
async fn an_offline_clients_edits_merge_with_a_restore() {
    let server = TestServer::start(&["--database-url", "memory://", "--api-secret", SECRET]).await;
    let name = "versions-offline";
    let online = Doc::new();
    let mut editor = Client::connect(&server.ws_url()).await;
    editor.open(name, "", &online).await;
    editor.edit_acknowledged(name, &online, "one").await;
    let (_, first) = post(&server, &format!("/api/documents/{name}/versions"), None).await;
    editor.edit_acknowledged(name, &online, " two").await;

    // The offline client: in sync now, then it types while away.
    let offline = Doc::new();
    let mut away = Client::connect(&server.ws_url()).await;
    away.open(name, "", &offline).await;
    drop(away);
    let typed = {
        let t = offline.get_or_insert_text("t");
        let before = offline.transact().state_vector();
        t.insert(&mut offline.transact_mut(), 0, ">> ");
        offline.transact().encode_state_as_update_v1(&before)
    };

    let (status, _) = post(
        &server,
        &format!("/api/documents/{name}/versions/{}/restore", first["id"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    client_reads(&mut editor, name, &online, "one").await;
    // Back online: its edit arrives after the restore.
    let mut back = Client::connect(&server.ws_url()).await;
    back.open(name, "", &offline).await;
    back.send(name, Message::Sync(SyncMessage::Update(typed)))
        .await;
    client_reads(&mut editor, name, &online, ">> one").await;
    server.stop().await;
}

/// A version made on one replica is listed and readable on the other; a restore on the other
/// reaches the first one's live clients.
#[tokio::test]
async fn versions_across_replicas() {
    let Some((database, redis)) = database_and_redis() else {
        return;
    };
    let prefix = format!("collab-versions-{}", now());
    let args = |id: &'static str| {
        vec![
            "--database-url".to_owned(),
            database.clone(),
            "--redis-url".to_owned(),
            redis.clone(),
            "--redis-prefix".to_owned(),
            prefix.clone(),
            "--instance-id".to_owned(),
            id.to_owned(),
            "--api-secret".to_owned(),
            SECRET.to_owned(),
        ]
    };
    let (a_args, b_args) = (args("a"), args("b"));
    let a = TestServer::start(&a_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let b = TestServer::start(&b_args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let name = format!("versions-replicas-{}", now());
    let doc = Doc::new();
    let mut editor = Client::connect(&a.ws_url()).await;
    editor.open(&name, "", &doc).await;
    editor.edit_acknowledged(&name, &doc, "draft").await;
    let (status, made) = post(
        &a,
        &format!("/api/documents/{name}/versions"),
        Some(json!({"label": "on a"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_i64().expect("id");
    assert_eq!(version_ids(&b, &name).await, [id]);
    let (_, read) = get_text(
        &b,
        &format!("/api/documents/{name}/versions/{id}?format=text&root=t"),
    )
    .await;
    assert_eq!(read, "draft");
    editor.edit_acknowledged(&name, &doc, " final").await;
    let (status, restored) = post(
        &b,
        &format!("/api/documents/{name}/versions/{id}/restore"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    client_reads(&mut editor, &name, &doc, "draft").await;
    a.stop().await;
    b.stop().await;
}

/// Automatic versions: one per interval of activity, none while nothing changes; retention
/// keeps the newest; `version.created` and `version.restored` webhooks, signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_versions_retention_and_webhooks() {
    let received: Arc<Mutex<Vec<(String, Value, String)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let event = value["event"].as_str().unwrap_or_default().to_owned();
                let signature = headers
                    .get("x-hocuspocus-signature-256")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let expected =
                    collab_server::webhook::Webhooks::signature("hook-secret", body.as_bytes());
                assert_eq!(signature, expected, "signed like the other events");
                sink.lock()
                    .expect("lock")
                    .push((event, value["payload"].clone(), signature));
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--versions-interval",
        "1",
        "--versions-keep",
        "2",
        "--webhook-url",
        &hook,
        "--webhook-secret",
        "hook-secret",
        "--webhook-events",
        "version.created,version.restored",
    ])
    .await;
    let name = "versions-auto";
    let doc = Doc::new();
    let mut editor = Client::connect(&server.ws_url()).await;
    editor.open(name, "", &doc).await;
    editor.edit_acknowledged(name, &doc, "a").await;
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids = version_ids(&server, name).await;
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids.len(), 1, "one automatic version after the interval");
    let (_, list) = get(&server, &format!("/api/documents/{name}/versions")).await;
    assert_eq!(list["versions"][0]["author"], "auto");
    // Nothing changes: no more versions.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        version_ids(&server, name).await.len(),
        1,
        "none without changes"
    );

    // Retention: three more (two by the API, one automatic) leave the newest two.
    editor.edit_acknowledged(name, &doc, "b").await;
    for _ in 0..2 {
        let (status, _) = post(&server, &format!("/api/documents/{name}/versions"), None).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut kept = Vec::new();
    for _ in 0..100 {
        kept = version_ids(&server, name).await;
        if kept.len() == 2 && received.lock().expect("lock").len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kept.len(), 2, "{kept:?}");
    let (status, _) = post(
        &server,
        &format!("/api/documents/{name}/versions/{}/restore", kept[1]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut events = Vec::new();
    for _ in 0..100 {
        events = received
            .lock()
            .expect("lock")
            .iter()
            .map(|(event, payload, _)| (event.clone(), payload.clone()))
            .collect();
        if events.iter().any(|(event, _)| event == "version.restored") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let restored = events
        .iter()
        .find(|(event, _)| event == "version.restored")
        .expect("version.restored");
    assert_eq!(restored.1["documentName"], name);
    assert_eq!(restored.1["version"]["id"], kept[1]);
    assert_eq!(restored.1["restoredBy"], "api");
    let created = events
        .iter()
        .filter(|(event, _)| event == "version.created")
        .count();
    assert!(created >= 4, "{events:?}");
    server.stop().await;
}

/// Who changed the document and when: a token's `sub`, `api` for API writes, `anonymous`
/// otherwise, per author per minute; on SQLite across a restart, gone with the document.
#[tokio::test]
async fn activity_names_who_changed_the_document() {
    let dir = temp_dir("activity-sqlite");
    let data = path_arg(&dir);
    let args = [
        "--data-dir",
        &data,
        "--api-secret",
        SECRET,
        "--jwt-secret",
        "activity-jwt",
    ];
    let server = TestServer::start(&args).await;
    let name = "activity-doc";
    let alice = Doc::new();
    let mut writer = Client::connect(&server.ws_url()).await;
    let alice_token = token("activity-jwt", json!({"sub": "alice", "exp": now() + 600}));
    writer.open(name, &alice_token, &alice).await;
    writer.edit_acknowledged(name, &alice, "a").await;
    writer.edit_acknowledged(name, &alice, "b").await;
    let anonymous = Doc::new();
    let mut guest = Client::connect(&server.ws_url()).await;
    // A token without `sub`: nobody to name.
    let no_subject = token("activity-jwt", json!({"exp": now() + 600}));
    guest.open(name, &no_subject, &anonymous).await;
    guest.edit_acknowledged(name, &anonymous, "c").await;
    let response = http()
        .put(server.http(&format!("/api/documents/{name}?format=json")))
        .bearer_auth(SECRET)
        .json(&json!({"other": "by the api"}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::OK);

    let path = format!("/api/documents/{name}/activity");
    let mut authors = Vec::new();
    for _ in 0..100 {
        let (status, body) = get(&server, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        authors = body["activity"]
            .as_array()
            .expect("activity")
            .iter()
            .map(|row| {
                (
                    row["author"].as_str().unwrap_or_default().to_owned(),
                    row["updates"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        authors.sort();
        let updates: u64 = authors.iter().map(|(_, n)| n).sum();
        if updates >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        authors,
        [
            ("alice".to_owned(), 2),
            ("anonymous".to_owned(), 1),
            ("api".to_owned(), 1)
        ],
        "grouped per author (within this minute)"
    );
    let (_, body) = get(&server, &format!("{path}?limit=1")).await;
    assert_eq!(body["activity"].as_array().expect("activity").len(), 1);
    let (_, body) = get(
        &server,
        &format!("{path}?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"),
    )
    .await;
    assert_eq!(body["activity"], json!([]), "nothing then");
    let (status, _) = get(&server, &format!("{path}?from=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    drop((writer, guest));
    server.stop().await;

    let server = TestServer::start(&args).await;
    let (_, body) = get(&server, &path).await;
    assert_eq!(
        body["activity"].as_array().expect("activity").len(),
        3,
        "{body}"
    );
    assert_eq!(
        delete(&server, &format!("/api/documents/{name}")).await,
        StatusCode::OK
    );
    let (_, body) = get(&server, &path).await;
    assert_eq!(body["activity"], json!([]), "deleted with the document");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// A document's versions count against its limit (COLLAB_SERVER_MAX_DOCUMENT_BYTES) like its
/// content: past it a new version is 413 until versions are deleted.
#[tokio::test]
async fn versions_count_against_the_document_limit() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--max-document-bytes",
        "4096",
    ])
    .await;
    let name = "versions-limit";
    let response = http()
        .put(server.http(&format!("/api/documents/{name}?format=json")))
        .bearer_auth(SECRET)
        .json(&json!({"t": "x".repeat(1500)}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::OK);
    let path = format!("/api/documents/{name}/versions");
    let (status, first) = post(&server, &path, None).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, _) = post(&server, &path, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) = post(&server, &path, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("retention")
    );
    assert_eq!(version_ids(&server, name).await.len(), 2);
    assert_eq!(
        delete(&server, &format!("{path}/{}", first["id"])).await,
        StatusCode::OK
    );
    let (status, _) = post(&server, &path, None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "room again once one is deleted"
    );
    server.stop().await;
}

/// With COLLAB_SERVER_VERSIONS_ON_COMPACTION, a compaction of the document's log makes an
/// automatic version of it.
#[tokio::test]
async fn a_compaction_makes_a_version_when_asked_to() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--compact-after",
        "2",
        "--versions-on-compaction",
        "true",
    ])
    .await;
    let name = "versions-compaction";
    let doc = Doc::new();
    let mut editor = Client::connect(&server.ws_url()).await;
    editor.open(name, "", &doc).await;
    assert!(version_ids(&server, name).await.is_empty());
    let mut ids = Vec::new();
    for word in ["a", "b", "c", "d", "e", "f"] {
        editor.edit_acknowledged(name, &doc, word).await;
        ids = version_ids(&server, name).await;
        if !ids.is_empty() {
            break;
        }
    }
    for _ in 0..100 {
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        editor.edit_acknowledged(name, &doc, "+").await;
        ids = version_ids(&server, name).await;
    }
    assert!(!ids.is_empty(), "a version at compaction");
    let (_, list) = get(&server, &format!("/api/documents/{name}/versions")).await;
    assert_eq!(list["versions"][0]["author"], "auto");
    server.stop().await;
}
