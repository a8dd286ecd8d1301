//! Issue 21, item 3: live revocation. Replicas on one PostgreSQL (`COLLAB_TEST_DATABASE_URL`,
//! set by scripts/test.sh): a revocation made on one ends the user's sessions on every replica,
//! refuses the user's older tokens (also on a replica started later), and a read-only one turns
//! the user's edits into refusals that are never stored.

mod support;

use collab_server::protocol::{Auth, Message};
use serde_json::{Value, json};
use support::*;
use yrs::Doc;
use yrs::sync::SyncMessage;

const JWT: &str = "revocation-jwt";
const API: &str = "revocation-api";

async fn replica(database: &str) -> TestServer {
    TestServer::start(&[
        "--database-url",
        database,
        "--jwt-secret",
        JWT,
        "--api-secret",
        API,
    ])
    .await
}

fn token_for(sub: &str, iat: u64) -> String {
    token(JWT, json!({"sub": sub, "iat": iat, "exp": now() + 600}))
}

async fn revoke(server: &TestServer, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(server.http("/api/revocations"))
        .bearer_auth(API)
        .json(&body)
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

async fn denied_reason(client: &mut Client, name: &str) -> String {
    client
        .expect(name, |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await
}

/// Opens `name` with `token` on a new socket and returns the server's answer to the Auth.
async fn try_open(server: &TestServer, name: &str, token: &str) -> Result<Client, String> {
    let mut client = Client::connect(&server.ws_url()).await;
    client.auth(name, token).await;
    let answer = client
        .expect(name, |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(Err(reason.clone())),
            Message::Auth(Auth::Authenticated { .. }) => Some(Ok(())),
            _ => None,
        })
        .await;
    answer.map(|()| client)
}

fn database() -> Option<String> {
    let url = std::env::var("COLLAB_TEST_DATABASE_URL").ok();
    if url.is_none() {
        eprintln!("COLLAB_TEST_DATABASE_URL is not set; run the suite through scripts/test.sh");
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_ends_the_users_sessions_everywhere_and_refuses_its_older_tokens() {
    let Some(database) = database() else { return };
    let (a, b) = (replica(&database).await, replica(&database).await);
    let suffix = now_suffix();
    let subject = format!("fired-{suffix}");
    let (on_a, on_b) = (format!("rev-a-{suffix}"), format!("rev-b-{suffix}"));
    let old = token_for(&subject, now() - 60);

    let mut fired_a = Client::connect(&a.ws_url()).await;
    fired_a.open(&on_a, &old, &Doc::new()).await;
    let mut fired_b = Client::connect(&b.ws_url()).await;
    fired_b.open(&on_b, &old, &Doc::new()).await;
    let colleague_doc = Doc::new();
    let mut colleague = Client::connect(&a.ws_url()).await;
    colleague
        .open(&on_a, &token_for("colleague", now()), &colleague_doc)
        .await;

    let made = revoke(&a, json!({"subject": subject})).await;
    assert_eq!(made["mode"], "end");
    // Ended at once on A, and on B (which reads the store) within its follow interval.
    assert!(denied_reason(&mut fired_a, &on_a).await.contains("revoked"));
    assert!(denied_reason(&mut fired_b, &on_b).await.contains("revoked"));
    // Nobody else is touched.
    colleague
        .edit_acknowledged(&on_a, &colleague_doc, "still here")
        .await;
    // The old token is refused on both, and on a replica started afterwards.
    for server in [&a, &b] {
        let refused = try_open(server, &on_a, &old).await.err().expect("refused");
        assert!(refused.contains("revoked"), "{refused}");
    }
    let later = replica(&database).await;
    let refused = try_open(&later, &on_b, &old).await.err().expect("refused");
    assert!(refused.contains("revoked"), "{refused}");
    // A token issued after the revocation works.
    let fresh = token_for(&subject, now() + 2);
    let mut back = Client::connect(&later.ws_url()).await;
    back.open(&on_b, &fresh, &Doc::new()).await;

    let listed: Value = reqwest::Client::new()
        .get(b.http("/api/revocations"))
        .bearer_auth(API)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        listed["revocations"]
            .as_array()
            .is_some_and(|all| all.iter().any(|r| r["subject"] == subject.as_str())),
        "{listed}"
    );
    for server in [a, b, later] {
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_revocation_refuses_edits_on_the_documents_it_covers() {
    let Some(database) = database() else { return };
    let server = replica(&database).await;
    let suffix = now_suffix();
    let subject = format!("viewer-{suffix}");
    let covered = format!("ro-{suffix}");
    let other = format!("free-{suffix}");
    let token = token_for(&subject, now() - 60);
    let (covered_doc, other_doc) = (Doc::new(), Doc::new());
    let mut client = Client::connect(&server.ws_url()).await;
    client.open(&covered, &token, &covered_doc).await;
    client.open(&other, &token, &other_doc).await;
    client
        .edit_acknowledged(&covered, &covered_doc, "before;")
        .await;

    revoke(
        &server,
        json!({"subject": subject, "mode": "read-only", "documents": "ro-*", "ttlSeconds": 600}),
    )
    .await;
    // The session stays, but its edit is refused and never stored.
    client
        .send(
            &covered,
            Message::Sync(SyncMessage::Update(insert(&covered_doc, "after;"))),
        )
        .await;
    client
        .expect(&covered, |m| {
            matches!(m, Message::SyncStatus(false)).then_some(())
        })
        .await;
    // Its other document is not covered.
    client.edit_acknowledged(&other, &other_doc, "fine").await;
    let stored = reqwest::Client::new()
        .get(server.http(&format!("/api/documents/{covered}?format=text&root=t")))
        .bearer_auth(API)
        .send()
        .await
        .expect("read")
        .text()
        .await
        .expect("text");
    assert_eq!(stored, "before;");
    // The old token opens covered documents read-only from now on.
    let reopened = try_open(&server, &covered, &token).await;
    assert!(reopened.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn revocation_requests_are_checked() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--jwt-secret",
        JWT,
        "--api-secret",
        API,
    ])
    .await;
    for body in [
        json!({}),
        json!({"subject": ""}),
        json!({"subject": "x", "mode": "maybe"}),
        json!({"subject": "x", "ttlSeconds": 0}),
        json!({"subject": "x", "ttlSeconds": 99_999_999}),
        json!({"subject": "x", "other": 1}),
    ] {
        let response = reqwest::Client::new()
            .post(server.http("/api/revocations"))
            .bearer_auth(API)
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 400, "{body}");
    }
    server.stop().await;
}

fn now_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
