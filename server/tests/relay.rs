//! The Redis relay: two replicas in this process, one real Redis (COLLAB_TEST_REDIS_URL, set by
//! scripts/test.sh), each on its own in-memory store, so whatever one replica's client sees of
//! the other's edits came through Redis.

mod support;

use std::collections::HashMap;

use collab_server::protocol::Message;
use support::*;
use yrs::Doc;
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, SyncMessage};

fn redis_url() -> Option<String> {
    let url = std::env::var("COLLAB_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("COLLAB_TEST_REDIS_URL is not set; run the suite through scripts/test.sh");
    }
    url
}

/// Two replicas sharing `redis` under a channel prefix of their own (tests run in parallel).
async fn replicas(redis: &str) -> (TestServer, TestServer) {
    let prefix = format!("collab-it-{}", now_nanos());
    let start = |id: &'static str| {
        let prefix = prefix.clone();
        async move {
            TestServer::start(&[
                "--database-url",
                "memory://",
                "--redis-url",
                redis,
                "--redis-prefix",
                &prefix,
                "--instance-id",
                id,
            ])
            .await
        }
    };
    (start("replica-a").await, start("replica-b").await)
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Applies every update the client receives until the document reads `expected`.
async fn until_text(client: &mut Client, address: &str, ydoc: &Doc, expected: &str) {
    while text(ydoc) != expected {
        match client.recv_message(address).await {
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                apply(ydoc, &update)
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn edits_reach_the_clients_of_another_replica_both_ways() {
    let Some(redis) = redis_url() else { return };
    let (a, b) = replicas(&redis).await;
    let name = "relay/edits";

    // A client of replica A writes before replica B has the document loaded at all.
    let on_a = Doc::new();
    let mut client_a = Client::connect(&a.ws_url()).await;
    client_a.open(name, "", &on_a).await;
    client_a
        .send(
            name,
            Message::Sync(SyncMessage::Update(insert(&on_a, "one;"))),
        )
        .await;
    client_a
        .expect(name, |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    // B loads it from its own (empty) store and gets A's state from A through Redis.
    let on_b = Doc::new();
    let mut client_b = Client::connect(&b.ws_url()).await;
    client_b.open(name, "", &on_b).await;
    until_text(&mut client_b, name, &on_b, "one;").await;

    // Live edits, both directions.
    client_b
        .send(
            name,
            Message::Sync(SyncMessage::Update(insert(&on_b, "two;"))),
        )
        .await;
    until_text(&mut client_a, name, &on_a, "one;two;").await;
    client_a
        .send(
            name,
            Message::Sync(SyncMessage::Update(insert(&on_a, "three;"))),
        )
        .await;
    until_text(&mut client_b, name, &on_b, "one;two;three;").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn awareness_crosses_replicas_and_is_removed_when_its_client_leaves() {
    let Some(redis) = redis_url() else { return };
    let (a, b) = replicas(&redis).await;
    let name = "relay/awareness";
    let mut watcher = Client::connect(&a.ws_url()).await;
    watcher.open(name, "", &Doc::new()).await;
    let mut walker = Client::connect(&b.ws_url()).await;
    walker.open(name, "", &Doc::new()).await;
    let client_id = ClientID::new(4242);
    let state = |json: &str| {
        Message::Awareness(AwarenessUpdate {
            clients: HashMap::from([(
                client_id,
                AwarenessUpdateEntry {
                    clock: 1,
                    json: json.into(),
                },
            )]),
        })
    };
    let has = |message: &Message, wanted: &str| match message {
        Message::Awareness(update) => update
            .clients
            .get(&client_id)
            .is_some_and(|entry| &*entry.json == wanted),
        _ => false,
    };
    // Replica B may not be subscribed yet: repeat (as providers do every 15 s) until A shows it.
    let shown = r#"{"user":{"name":"walker"}}"#;
    let mut seen = false;
    for _ in 0..50 {
        walker.send(name, state(shown)).await;
        let wait = tokio::time::timeout(std::time::Duration::from_millis(200), async {
            watcher.expect(name, |m| has(m, shown).then_some(())).await
        });
        if wait.await.is_ok() {
            seen = true;
            break;
        }
    }
    assert!(seen, "the awareness state of B's client never reached A's");
    // The client leaves replica B: its state is removed on A too.
    drop(walker);
    watcher.expect(name, |m| has(m, "null").then_some(())).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn readiness_reports_an_unreachable_redis() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("redis://127.0.0.1:{port}");
    let server = TestServer::start(&["--database-url", "memory://", "--redis-url", &url]).await;
    // The server runs (and keeps trying to connect) while Redis is away; /ready says so.
    let response = reqwest::get(server.http("/ready")).await.expect("ready");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["redis"].is_string(), "{body}");
    let health = reqwest::get(server.http("/health")).await.expect("health");
    assert_eq!(health.status(), 200);
    // Documents are still served, from this replica alone.
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("relay/alone", "", &doc).await;
    client
        .send(
            "relay/alone",
            Message::Sync(SyncMessage::Update(insert(&doc, "x"))),
        )
        .await;
    client
        .expect("relay/alone", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    server.stop().await;
}

/// Redis 7 gives a new ACL user no channels: SUBSCRIBE is refused, and the client library takes
/// the refusal for a success. Readiness publishes on a channel under the prefix, so the refusal
/// is found out and said: /ready 503 naming the ACL to grant, and the relay's dependency gauge 0.
#[tokio::test]
async fn a_redis_user_without_channels_is_not_ready() {
    let Some(redis) = redis_url() else { return };
    let user = format!("collab-it-nochannels-{}", now_nanos());
    let created = support::proxy::redis_command(
        &redis,
        &[
            b"ACL",
            b"SETUSER",
            user.as_bytes(),
            b"on",
            b">pw",
            b"~*",
            b"+@all",
            b"resetchannels",
        ],
    )
    .await;
    if created.starts_with('-') {
        eprintln!("this Redis cannot create ACL users ({created}); skipped");
        return;
    }
    let mut url = reqwest::Url::parse(&redis).expect("url");
    url.set_username(&user).expect("user");
    url.set_password(Some("pw")).expect("password");
    let server =
        TestServer::start(&["--database-url", "memory://", "--redis-url", url.as_str()]).await;
    let response = reqwest::get(server.http("/ready")).await.expect("ready");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    let said = body["redis"].as_str().unwrap_or_default();
    assert!(
        said.contains("NOPERM") && said.contains("ACL SETUSER"),
        "{body}"
    );
    assert!(
        has_metric_line(
            &server,
            "collab_server_dependency_up{dependency=\"relay\"} 0"
        )
        .await
    );
    server.stop().await;
    support::proxy::redis_command(&redis, &[b"ACL", b"DELUSER", user.as_bytes()]).await;
}

/// A window claimed by one replica is refused to the others until it expires (one `change`
/// webhook per window per document across replicas).
#[tokio::test]
async fn a_claimed_window_belongs_to_one_replica_until_it_expires() {
    use std::sync::Arc;
    use std::time::Duration;

    use collab_server::cluster::Cluster;
    use collab_server::config::ClusterConfig;
    use collab_server::metrics::Metrics;
    use tokio_util::sync::CancellationToken;

    let Some(redis) = redis_url() else {
        return;
    };
    let prefix = format!("collab-claim-{}", now_nanos());
    let connect = |id: &str| {
        Cluster::connect(
            &ClusterConfig {
                url: redis.clone(),
                prefix: prefix.clone(),
                identifier: id.to_owned(),
            },
            Arc::new(Metrics::new()),
            CancellationToken::new(),
        )
        .expect("cluster")
    };
    let (a, b) = (connect("a"), connect("b"));
    let ttl = Duration::from_millis(300);
    let mut claimed = false;
    for _ in 0..100 {
        // The clients connect in the background: retry until Redis answers.
        match a.claim("window:doc", ttl).await {
            Ok(result) => {
                claimed = result;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(claimed, "the first replica gets the window");
    assert!(
        !b.claim("window:doc", ttl).await.expect("claim"),
        "the second does not"
    );
    assert!(
        b.claim("window:other", ttl).await.expect("claim"),
        "windows are per document"
    );
    tokio::time::sleep(ttl * 2).await;
    assert!(
        b.claim("window:doc", ttl).await.expect("claim"),
        "an expired window can be claimed again"
    );
}

/// Issue 24, item 2: a Redis the server cannot reach is visible at once and says why: `/ready`
/// names the cause (here: the connection is refused), and `collab_server_dependency_up` says
/// the relay is down; with a real Redis it says up.
#[tokio::test]
async fn an_unreachable_redis_is_named_with_its_cause() {
    let closed = closed_port();
    let redis = format!("redis://127.0.0.1:{closed}");
    let server = TestServer::start(&["--database-url", "memory://", "--redis-url", &redis]).await;
    let response = reqwest::get(server.http("/ready")).await.expect("ready");
    assert_eq!(response.status(), 503);
    let body = response.text().await.expect("body");
    assert!(
        body.to_lowercase().contains("refused"),
        "/ready names the cause: {body}"
    );
    assert!(
        has_metric_line(
            &server,
            "collab_server_dependency_up{dependency=\"relay\"} 0"
        )
        .await,
        "no relay gauge at 0"
    );
    server.stop().await;

    let Some(redis) = redis_url() else {
        return;
    };
    let server = TestServer::start(&["--database-url", "memory://", "--redis-url", &redis]).await;
    assert_eq!(
        metric(&server, "collab_server_dependency_up{dependency=\"relay\"}").await,
        1.0
    );
    server.stop().await;
}

/// Issue 21, item 1, across replicas: the victim's presence came from replica A; after its
/// socket drops, a stranger on replica B claims its id (an ordinary clock and one near
/// `u32::MAX`). Neither replica shows it; the victim reconnects to A and both show it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_kept_for_its_owner_across_replicas() {
    let Some(redis) = redis_url() else { return };
    const SECRET: &str = "presence-relay";
    let prefix = format!("collab-it-{}", now_nanos());
    let start = |id: &'static str| {
        let (prefix, redis) = (prefix.clone(), redis.clone());
        async move {
            TestServer::start(&[
                "--database-url",
                "memory://",
                "--redis-url",
                &redis,
                "--redis-prefix",
                &prefix,
                "--instance-id",
                id,
                "--jwt-secret",
                SECRET,
            ])
            .await
        }
    };
    let (a, b) = (start("presence-a").await, start("presence-b").await);
    let name = "relay/presence";
    let token = |sub: &str| token(SECRET, serde_json::json!({"sub": sub, "exp": now() + 600}));
    let mut watcher_a = Client::connect(&a.ws_url()).await;
    watcher_a.open(name, &token("wa"), &Doc::new()).await;
    let mut watcher_b = Client::connect(&b.ws_url()).await;
    watcher_b.open(name, &token("wb"), &Doc::new()).await;
    let mut victim = Client::connect(&a.ws_url()).await;
    victim.open(name, &token("victim"), &Doc::new()).await;
    victim
        .send(name, awareness(4242, 5, r#"{"user":"ada"}"#))
        .await;
    awareness_seen_until(&mut watcher_b, name, 4242, 4242).await;
    drop(victim);
    assert_eq!(
        awareness_seen_until(&mut watcher_b, name, 4242, 4242).await,
        ["null"],
        "the removal reached B"
    );
    let mut attacker = Client::connect(&b.ws_url()).await;
    attacker.open(name, &token("mallory"), &Doc::new()).await;
    attacker
        .send(name, awareness(4242, 7, r#"{"user":"mallory"}"#))
        .await;
    attacker
        .send(name, awareness(4242, 0xffff_fff0, r#"{"user":"mallory"}"#))
        .await;
    attacker
        .send(name, awareness(777, 1, r#"{"user":"m"}"#))
        .await;
    for watcher in [&mut watcher_a, &mut watcher_b] {
        let seen = awareness_seen_until(watcher, name, 4242, 777).await;
        assert!(
            seen.iter().all(|state| !state.contains("mallory")),
            "{seen:?}"
        );
    }
    let mut victim = Client::connect(&a.ws_url()).await;
    victim.open(name, &token("victim"), &Doc::new()).await;
    victim
        .send(name, awareness(4242, 1, r#"{"user":"ada","back":true}"#))
        .await;
    for watcher in [&mut watcher_a, &mut watcher_b] {
        let seen = awareness_seen_until(watcher, name, 4242, 4242).await;
        assert!(seen.last().is_some_and(|s| s.contains("back")), "{seen:?}");
    }
    a.stop().await;
    b.stop().await;
}

/// The relay's rooms for [`relay_messages_queued_together_reach_redis_in_a_few_writes`]: none.
struct NoRooms;

impl collab_server::cluster::Rooms for NoRooms {
    fn deliver(&self, _: &str, _: collab_server::cluster::Inbound) {}
    fn deliver_all(&self, _: &dyn Fn() -> collab_server::cluster::Inbound) {}
}

/// Redis spends its CPU per read of a client's socket (a round of its event loop), not per
/// PUBLISH. Messages queued together must reach it in a few writes: one write per PUBLISH (what
/// fred's `pipeline()` does) cost Redis 4 µs per relayed update and made the publisher fall
/// behind a busy replica, dropping about half of what it should have relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_messages_queued_together_reach_redis_in_a_few_writes() {
    use collab_server::cluster::{Cluster, ClusterConfig};
    use std::sync::Arc;
    use std::time::Duration;
    use support::proxy::redis_stat;

    let Some(redis) = redis_url() else { return };
    let metrics = Arc::new(collab_server::metrics::Metrics::new());
    let config = ClusterConfig {
        url: redis.clone(),
        prefix: format!("collab-it-{}", now_nanos()),
        identifier: "batching".to_owned(),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let cluster = Cluster::connect(&config, metrics.clone(), shutdown.clone()).expect("relay");
    cluster
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connected");
    let update = vec![7u8; 100];
    let frame = collab_server::protocol::encode_update_frame(Some("batched"), &update);
    // Fewer than the relay's queue holds: none may be dropped.
    const MESSAGES: u64 = 15_000;
    for _ in 0..MESSAGES {
        cluster.publish_frame("batched", 0, &frame);
    }
    let before = redis_stat(&redis, "total_reads_processed").await;
    cluster.attach(Arc::new(NoRooms));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.relay_messages_out.get() < MESSAGES {
        assert!(
            tokio::time::Instant::now() < deadline,
            "published {} of {MESSAGES}",
            metrics.relay_messages_out.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Redis' reads of every client meanwhile (other tests share this Redis, lightly): about
    // 2 MB of PUBLISHes is some 140 reads of Redis' 16 KB buffer; a write per message made
    // thousands (Redis reads as fast as they come).
    let reads = redis_stat(&redis, "total_reads_processed").await - before;
    assert!(
        reads <= MESSAGES / 20,
        "{MESSAGES} queued messages took {reads} reads of Redis"
    );
    assert_eq!(metrics.relay_dropped.get(), 0);
    shutdown.cancel();
}
