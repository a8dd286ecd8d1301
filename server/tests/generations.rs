//! Issue 20: a DELETE is final. Two replicas on one PostgreSQL and one Redis
//! (`COLLAB_TEST_DATABASE_URL`, `COLLAB_TEST_REDIS_URL`, set by scripts/test.sh); replica A
//! reaches Redis through a proxy the test can hold, as a Redis reconnect or a backlog would.

mod support;

use collab_server::protocol::Message;
use support::proxy::{Proxy, redis_command, redis_through, upstream};
use support::*;
use yrs::Doc;
use yrs::block::ClientID;

const SECRET: &str = "generations-secret";

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

async fn replica(database: &str, redis: &str, prefix: &str, id: &str) -> TestServer {
    TestServer::start(&[
        "--database-url",
        database,
        "--redis-url",
        redis,
        "--redis-prefix",
        prefix,
        "--instance-id",
        id,
        "--api-secret",
        SECRET,
    ])
    .await
}

async fn delete_document(server: &TestServer, name: &str) {
    let response = reqwest::Client::new()
        .delete(server.http(&format!("/api/documents/{name}")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 200);
}

async fn read_text(server: &TestServer, name: &str) -> String {
    let response = reqwest::Client::new()
        .get(server.http(&format!("/api/documents/{name}?format=text&root=t")))
        .bearer_auth(SECRET)
        .send()
        .await
        .expect("get");
    if response.status() == 404 {
        return String::new();
    }
    response.text().await.expect("text")
}

/// Waits for an awareness state of `client` on `connection`: a sync point for relay traffic.
async fn until_awareness(connection: &mut Client, name: &str, client: u64) {
    connection
        .expect(name, |message| match message {
            Message::Awareness(update) => update
                .clients
                .contains_key(&ClientID::new(client))
                .then_some(()),
            _ => None,
        })
        .await;
}

/// Scenario 1 and 2 of the issue: an edit A acknowledged before a DELETE on B, whose relay
/// message reaches B only after it, is not applied to the new document; A, hearing of the
/// DELETE, does not delete anything itself (its late deletion could erase what B's clients
/// wrote after the DELETE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_final_across_replicas() {
    let Some((database, redis)) = database_and_redis() else {
        return;
    };
    let proxy = Proxy::start(upstream(&redis)).await;
    let prefix = unique("collab-generations");
    let a = replica(
        &database,
        &redis_through(&redis, proxy.addr),
        &prefix,
        "gen-a",
    )
    .await;
    let b = replica(&database, &redis, &prefix, "gen-b").await;
    let name = unique("generations-delete");

    // Both replicas have the document open, and see each other's edits.
    let (on_a, on_b) = (Doc::new(), Doc::new());
    let mut client_a = Client::connect(&a.ws_url()).await;
    client_a.open(&name, "", &on_a).await;
    let mut client_b = Client::connect(&b.ws_url()).await;
    client_b.open(&name, "", &on_b).await;
    client_a.send(&name, awareness(7001, 1, "{\"a\":1}")).await;
    until_awareness(&mut client_b, &name, 7001).await;

    // A's traffic to Redis is held; A acknowledges an edit (it is stored in PostgreSQL).
    proxy.hold(true);
    client_a
        .edit_acknowledged(&name, &on_a, "written on A")
        .await;

    // B deletes the document, then a client of B writes and is acknowledged.
    delete_document(&b, &name).await;
    let fresh = Doc::new();
    let mut writer = Client::connect(&b.ws_url()).await;
    writer.open(&name, "", &fresh).await;
    assert_eq!(text(&fresh), "", "the deleted document starts empty");
    writer
        .edit_acknowledged(&name, &fresh, "after delete")
        .await;

    // A's traffic flows: its held update, then (in order, on the same connection) an awareness
    // state that tells us the update has reached B.
    proxy.hold(false);
    let mut watcher_a = Client::connect(&a.ws_url()).await;
    watcher_a.open(&name, "", &Doc::new()).await;
    watcher_a.send(&name, awareness(7002, 1, "{\"a\":2}")).await;
    until_awareness(&mut writer, &name, 7002).await;

    assert_eq!(read_text(&b, &name).await, "after delete", "live on B");
    assert_eq!(read_text(&a, &name).await, "after delete", "live on A");
    let deletes_on_a = metric(
        &a,
        "collab_server_store_duration_seconds_count{operation=\"delete\"}",
    )
    .await;
    assert_eq!(
        deletes_on_a, 0.0,
        "only the replica that ran the DELETE deletes"
    );
    a.stop().await;
    b.stop().await;

    // After restarting: what is stored is what was acknowledged after the DELETE.
    let again = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    assert_eq!(read_text(&again, &name).await, "after delete", "stored");
    again.stop().await;
}

/// Publishes `payload` on `channel` with a plain RESP `PUBLISH`, as any other Redis client
/// (a Node peer) does.
async fn publish_raw(redis: &str, channel: &str, payload: &[u8]) {
    let reply = redis_command(redis, &[b"PUBLISH", channel.as_bytes(), payload]).await;
    assert!(!reply.starts_with('-'), "{reply}");
}

/// The seed's Node servers (`@hocuspocus/extension-redis`) send no generation: during a
/// migration their frames are applied to the generation the room serves. A frame of a
/// generation a DELETE ended is dropped, counted, and never reaches a client or the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_frames_apply_to_the_current_generation_and_stale_ones_are_dropped() {
    let Some((_, redis)) = database_and_redis() else {
        return;
    };
    use collab_server::protocol::{encode_frame, envelope};
    use yrs::sync::SyncMessage;
    let prefix = unique("collab-node-frames");
    let dir = temp_dir("node-frames");
    let database = format!("sqlite://{}", dir.join("collab.db").display());
    let server = replica(&database, &redis, &prefix, "ours").await;
    let name = unique("node-frames");
    let channel = format!("{prefix}:{name}");
    let update_frame =
        |update: Vec<u8>| encode_frame(&name, &Message::Sync(SyncMessage::Update(update)));

    let ydoc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open(&name, "", &ydoc).await;
    // Subscribed once the room's resync reached Redis (our own echo is dropped, so wait for
    // a Node frame to arrive instead).
    let node = Doc::new();
    let first = insert(&node, "node;");
    let mut seen = false;
    for _ in 0..100 {
        publish_raw(
            &redis,
            &channel,
            &envelope::encode("node-31001", &update_frame(first.clone())),
        )
        .await;
        let got = tokio::time::timeout(std::time::Duration::from_millis(100), async {
            loop {
                if let Message::Sync(SyncMessage::Update(update)) = client.recv_message(&name).await
                {
                    return update;
                }
            }
        })
        .await;
        if let Ok(update) = got {
            apply(&ydoc, &update);
            seen = true;
            break;
        }
    }
    assert!(seen, "a Node peer's frame reached the client");
    assert_eq!(text(&ydoc), "node;");

    // A DELETE starts generation 1; a frame of generation 0 from a replica of ours is stale.
    delete_document(&server, &name).await;
    let fresh = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open(&name, "", &fresh).await;
    let old = Doc::new();
    publish_raw(
        &redis,
        &channel,
        &envelope::encode_generation("old-replica", 0, &update_frame(insert(&old, "stale;"))),
    )
    .await;
    // Then a Node frame (current generation): the client sees it, and nothing before it.
    let later = Doc::new();
    publish_raw(
        &redis,
        &channel,
        &envelope::encode("node-31001", &update_frame(insert(&later, "current;"))),
    )
    .await;
    until_text_is(&mut client, &name, &fresh, "current;").await;
    assert_eq!(read_text(&server, &name).await, "current;");
    assert_eq!(
        metric(&server, "collab_server_relay_messages_stale_total").await,
        1.0
    );
    server.stop().await;
    let again = TestServer::start(&["--database-url", &database, "--api-secret", SECRET]).await;
    assert_eq!(read_text(&again, &name).await, "current;", "stored");
    again.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

async fn until_text_is(client: &mut Client, name: &str, ydoc: &Doc, expected: &str) {
    use yrs::sync::SyncMessage;
    while text(ydoc) != expected {
        if let Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) =
            client.recv_message(name).await
        {
            apply(ydoc, &update);
        }
    }
}
