//! The document API beside WebSocket clients, in this process: where it is served, and that API
//! writes and a client's stream of edits interleave without losing either.

mod support;

use collab_server::config::{Config, ConfigError};
use serde_json::{Value, json};
use support::*;
use yrs::Doc;

const SECRET: &str = "api-test-secret";

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

async fn put(server_http: &str, name: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{server_http}/api/documents/{name}?format=json"))
        .bearer_auth(SECRET)
        .json(&body)
        .send()
        .await
        .expect("put")
}

async fn read(server: &TestServer, name: &str) -> Value {
    reqwest::Client::new()
        .get(server.http(&format!("/api/documents/{name}?format=json")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn read_text(server: &TestServer, name: &str) -> String {
    reqwest::Client::new()
        .get(server.http(&format!("/api/documents/{name}?format=text&root=t")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn admin_only_serves_the_api_on_the_admin_port_alone() {
    let admin_port = free_port();
    let port = admin_port.to_string();
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--metrics-port",
        &port,
        "--api-secret",
        SECRET,
        "--api-admin-only",
        "true",
    ])
    .await;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{admin}/health")).await {
            answered = Some(response.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        answered.map(|s| s.as_u16()),
        Some(200),
        "the admin port is up"
    );
    assert_eq!(put(&admin, "doc", json!({"t": "x"})).await.status(), 200);
    let public = put(&server.http(""), "doc", json!({"t": "y"})).await;
    assert_eq!(public.status(), 404, "no API on the public port");
    let listed: Value = reqwest::Client::new()
        .get(format!("{admin}/api/documents"))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["documents"][0]["name"], "doc");
    server.stop().await;
}

#[test]
fn api_settings_that_cannot_work_are_refused_at_start() {
    let config = |args: &[&str]| {
        let mut all = vec!["collab-server"];
        all.extend_from_slice(args);
        Config::from_args(all).expect("parses")
    };
    assert_eq!(
        config(&["--api-secret", "s", "--api-admin-only", "true"]).api_secrets(),
        Err(ConfigError::ApiAdminOnlyWithoutAdminPort)
    );
    assert_eq!(
        config(&["--api-secret", "a,,b"]).api_secrets(),
        Err(ConfigError::EmptyApiSecret)
    );
    assert_eq!(
        config(&["--api-secret", "a, b"])
            .api_secrets()
            .map(|s| s.len()),
        Ok(2)
    );
    assert!(matches!(
        config(&["--webhook-url", "ftp://x"]).webhook(),
        Err(ConfigError::InvalidWebhookUrl)
    ));
    assert!(matches!(
        config(&["--webhook-url", "http://x", "--webhook-events", "change,typo"]).webhook(),
        Err(ConfigError::UnknownWebhookEvent(event)) if event == "typo"
    ));
}

/// A client streams acknowledged edits to one root while the API rewrites another root and
/// posts updates to a third: every acknowledged edit and every API write is in the document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_and_a_clients_edits_interleave_without_loss() {
    let dir = std::env::temp_dir().join(format!("collab-api-it-{}", std::process::id()));
    let database = format!("sqlite://{}", dir.join("collab.db").display());
    std::fs::create_dir_all(&dir).expect("dir");
    let server = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    let http = server.http("");
    let writer = tokio::spawn(async move {
        for i in 0..40 {
            let response = put(&http, "mixed", json!({"title": format!("title {i}")})).await;
            assert_eq!(response.status(), 200, "{:?}", response.text().await);
        }
    });
    let poster = {
        let url = server.http("/api/documents/mixed/updates");
        tokio::spawn(async move {
            let doc = Doc::new();
            let list = doc.get_or_insert_array("posted");
            for i in 0..40 {
                let update = {
                    use yrs::{Array, ReadTxn, Transact};
                    let before = doc.transact().state_vector();
                    let mut txn = doc.transact_mut();
                    list.push_back(&mut txn, i as i64);
                    drop(txn);
                    doc.transact().encode_state_as_update_v1(&before)
                };
                let response = reqwest::Client::new()
                    .post(&url)
                    .bearer_auth(SECRET)
                    .body(update)
                    .send()
                    .await
                    .expect("post");
                assert_eq!(response.status(), 200);
            }
        })
    };
    let mut client = Client::connect(&server.ws_url()).await;
    let ydoc = Doc::new();
    client.open("mixed", "", &ydoc).await;
    let mut expected = String::new();
    for i in 0..60 {
        let word = format!("{i} ");
        client.edit_acknowledged("mixed", &ydoc, &word).await;
        expected.push_str(&word);
    }
    writer.await.expect("writer");
    poster.await.expect("poster");
    server.stop().await;

    // After a restart, from storage.
    let server = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    let document = read(&server, "mixed").await;
    assert_eq!(
        document["t"],
        json!(expected),
        "every acknowledged client edit"
    );
    assert_eq!(document["title"], json!("title 39"), "the last PUT");
    assert_eq!(
        document["posted"],
        json!((0..40).collect::<Vec<i64>>()),
        "every posted update"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_update_past_the_document_limit_is_413_and_changes_nothing() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--max-document-bytes",
        "2000",
    ])
    .await;
    assert_eq!(
        put(&server.http(""), "small", json!({"t": "kept"}))
            .await
            .status(),
        200
    );
    let big = {
        let doc = Doc::new();
        insert(&doc, &"x".repeat(5000))
    };
    let response = reqwest::Client::new()
        .post(server.http("/api/documents/small/updates"))
        .bearer_auth(SECRET)
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "the document would exceed 2000 bytes");
    assert_eq!(read(&server, "small").await, json!({"t": "kept"}));
    server.stop().await;
}

#[tokio::test]
async fn document_names_are_checked_like_the_websocket_path() {
    let server = TestServer::start(&["--database-url", "memory://", "--api-secret", SECRET]).await;
    let long = "x".repeat(2000);
    for name in [long.as_str(), "%20"] {
        let response = put(&server.http(""), name, json!({"t": "x"})).await;
        assert_eq!(response.status(), 400, "{name}");
        let body: Value = response.json().await.expect("json");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("document name")),
            "{body}"
        );
    }
    server.stop().await;
}

/// Issue 20, scenario 3: two updates that only delete items the server has not seen yet both
/// wait in the pending delete set; each is acknowledged (200) and so each must be stored, even
/// though the second leaves the pending state's shape as the first left it.
#[tokio::test]
async fn pending_deletions_are_all_stored_once_acknowledged() {
    use yrs::{GetString, ReadTxn, Text, Transact};
    let dir = temp_dir("pending-deletes");
    let database = format!("sqlite://{}", dir.join("collab.db").display());
    let doc = Doc::new();
    let text = doc.get_or_insert_text("t");
    let step = |edit: &dyn Fn(&mut yrs::TransactionMut)| {
        let before = doc.transact().state_vector();
        let mut txn = doc.transact_mut();
        edit(&mut txn);
        drop(txn);
        doc.transact().encode_state_as_update_v1(&before)
    };
    let insert_a = step(&|txn| text.insert(txn, 0, "a"));
    let insert_b = step(&|txn| text.insert(txn, 1, "b"));
    let delete_a = step(&|txn| text.remove_range(txn, 0, 1));
    let delete_b = step(&|txn| text.remove_range(txn, 0, 1));
    assert_eq!(text.get_string(&doc.transact()), "");

    let server = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    let url = server.http("/api/documents/pending/updates");
    for update in [&delete_a, &delete_b, &insert_a, &insert_b] {
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(SECRET)
            .body(update.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
    assert_eq!(read_text(&server, "pending").await, "", "live");
    server.stop().await;

    let server = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    assert_eq!(
        read_text(&server, "pending").await,
        "",
        "after a restart: every acknowledged deletion was stored"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 21, item 4: a client address over the API's rate limit gets 429 with Retry-After;
/// unauthenticated requests count too; an X-Forwarded-For from a peer that is not a trusted
/// proxy changes nothing, and behind a trusted proxy each forwarded address has its own budget.
#[tokio::test]
async fn the_api_is_rate_limited_per_client_address() {
    let list = |server: &TestServer, secret: &'static str, forwarded: Option<&'static str>| {
        let mut request = reqwest::Client::new()
            .get(server.http("/api/documents"))
            .bearer_auth(secret);
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        request.send()
    };
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--api-rate-per-sec",
        "1",
        "--api-rate-burst",
        "3",
    ])
    .await;
    assert_eq!(
        list(&server, "wrong", None).await.expect("list").status(),
        401
    );
    for _ in 0..2 {
        assert_eq!(
            list(&server, SECRET, None).await.expect("list").status(),
            200
        );
    }
    let limited = list(&server, SECRET, None).await.expect("list");
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = limited.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limited")),
        "{body}"
    );
    let forged = list(&server, SECRET, Some("198.51.100.7"))
        .await
        .expect("list");
    assert_eq!(
        forged.status(),
        429,
        "a header from an untrusted peer is ignored"
    );
    server.stop().await;

    let behind_proxy = TestServer::start(&[
        "--database-url",
        "memory://",
        "--api-secret",
        SECRET,
        "--api-rate-per-sec",
        "1",
        "--api-rate-burst",
        "1",
        "--trusted-proxies",
        "127.0.0.1/32",
    ])
    .await;
    let first = Some("198.51.100.7");
    assert_eq!(
        list(&behind_proxy, SECRET, first)
            .await
            .expect("list")
            .status(),
        200
    );
    assert_eq!(
        list(&behind_proxy, SECRET, first)
            .await
            .expect("list")
            .status(),
        429
    );
    let second = Some("198.51.100.8");
    assert_eq!(
        list(&behind_proxy, SECRET, second)
            .await
            .expect("list")
            .status(),
        200
    );
    behind_proxy.stop().await;
}
