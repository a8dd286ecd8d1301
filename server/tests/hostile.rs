//! Hostile clients: each attack limits or closes only the offender while an ordinary client
//! keeps syncing on the same server.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use collab_server::protocol::{Auth, Message};
use futures_util::SinkExt;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::Doc;
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, SyncMessage};

fn memory(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--database-url", "memory://"];
    args.extend_from_slice(extra);
    args
}

/// Edits once and waits for the acknowledgement: the honest client is still served.
async fn still_syncs(client: &mut Client, address: &str, doc: &Doc, word: &str) {
    client.edit_acknowledged(address, doc, word).await;
}

async fn wait_for_metric(server: &TestServer, name: &str, wanted: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..200 {
        let value = metric(server, name).await;
        if wanted(value) {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{name} never reached the wanted value ({})",
        metric(server, name).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_by_its_queued_bytes() {
    let server = TestServer::start(&memory(&[
        "--outbound-queue-bytes",
        "1048576",
        "--send-timeout-secs",
        "2",
    ]))
    .await;
    let doc = Doc::new();
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.open("big", "", &doc).await;
    // About 300 KB of document.
    for i in 0..30 {
        still_syncs(
            &mut honest,
            "big",
            &doc,
            &format!("{i:03}{}", "x".repeat(10_000)),
        )
        .await;
    }
    // 3,000 Step1 frames asking for the whole document, never reading a reply.
    let mut greedy = Client::connect(&server.ws_url()).await;
    let step1 = collab_server::protocol::encode_frame(
        "big",
        &Message::Sync(SyncMessage::SyncStep1(yrs::StateVector::default())),
    );
    for _ in 0..3000 {
        if greedy
            .ws
            .send(WsMessage::Binary(step1.clone().into()))
            .await
            .is_err()
        {
            break; // already dropped
        }
    }
    // The greedy socket is dropped: only the honest one is left.
    wait_for_metric(&server, "collab_server_connections", |v| v == 1.0).await;
    assert!(metric(&server, "collab_server_fanout_queue_drops_total").await >= 1.0);
    still_syncs(&mut honest, "big", &doc, "after").await;
    server.stop().await;
}

#[tokio::test]
async fn awareness_of_another_session_cannot_be_overwritten_or_removed() {
    let server = TestServer::start(&memory(&[])).await;
    let mut watcher = Client::connect(&server.ws_url()).await;
    watcher.open("presence", "", &Doc::new()).await;
    let mut victim = Client::connect(&server.ws_url()).await;
    victim.open("presence", "", &Doc::new()).await;
    let mut attacker = Client::connect(&server.ws_url()).await;
    attacker.open("presence", "", &Doc::new()).await;

    victim
        .send("presence", awareness(4242, 1, r#"{"user":"ada"}"#))
        .await;
    let sees = |client: u64, json: &'static str| {
        move |m: &Message| match m {
            Message::Awareness(u) => u
                .clients
                .get(&ClientID::new(client))
                .is_some_and(|e| &*e.json == json)
                .then_some(()),
            _ => None,
        }
    };
    watcher
        .expect("presence", sees(4242, r#"{"user":"ada"}"#))
        .await;
    // The attacker overwrites (a higher clock) and removes the victim's state.
    attacker
        .send("presence", awareness(4242, 9, r#"{"user":"mallory"}"#))
        .await;
    attacker.send("presence", awareness(4242, 9, "null")).await;
    // Then sets its own, which arrives after anything its earlier frames caused.
    attacker
        .send("presence", awareness(777, 1, r#"{"user":"mallory"}"#))
        .await;
    let mut changed_victim = false;
    watcher
        .expect("presence", |m| {
            if let Message::Awareness(u) = m {
                if u.clients.contains_key(&ClientID::new(4242)) {
                    changed_victim = true;
                }
                return u.clients.contains_key(&ClientID::new(777)).then_some(());
            }
            None
        })
        .await;
    assert!(
        !changed_victim,
        "another session changed the victim's presence"
    );
    assert!(metric(&server, "collab_server_awareness_refused_total").await >= 2.0);
    // The victim still owns its state: its own removal goes through.
    victim.send("presence", awareness(4242, 2, "null")).await;
    watcher.expect("presence", sees(4242, "null")).await;
    server.stop().await;
}

/// Issue 21, item 1: a victim's socket drops, its presence is removed and its awareness id is
/// free; a stranger at once claims that id (with a clock near `u32::MAX`, and with an ordinary
/// one). Neither is shown, and the victim, reconnecting, renews its presence as before; a client
/// that joins later sees the victim's state. With tokens (the `sub`) and without (the address).
async fn presence_survives_a_reconnect(with_tokens: bool) {
    const SECRET: &str = "presence-secret";
    let name = if with_tokens {
        "hijack-sub"
    } else {
        "hijack-anon"
    };
    let mut args = vec!["--trusted-proxies", "127.0.0.1/32"];
    if with_tokens {
        args.extend(["--jwt-secret", SECRET]);
    }
    let server = TestServer::start(&memory(&args)).await;
    let token = |sub: &str| {
        if with_tokens {
            token(SECRET, json!({"sub": sub, "exp": now() + 600}))
        } else {
            String::new()
        }
    };
    // Each client from an address of its own, as behind a load balancer.
    let url = server.ws_url();
    let connect =
        |address: &'static str| Client::connect_with_header(&url, "x-forwarded-for", address);
    let mut watcher = connect("198.51.100.1").await;
    watcher.open(name, &token("watcher"), &Doc::new()).await;
    let mut victim = connect("198.51.100.2").await;
    victim.open(name, &token("victim"), &Doc::new()).await;
    victim
        .send(name, awareness(4242, 5, r#"{"user":"ada"}"#))
        .await;
    awareness_seen_until(&mut watcher, name, 4242, 4242).await;

    // The victim's network blips: its socket closes and its state is removed.
    drop(victim);
    let removed = awareness_seen_until(&mut watcher, name, 4242, 4242).await;
    assert_eq!(removed, ["null"]);
    let mut attacker = connect("203.0.113.66").await;
    attacker.open(name, &token("mallory"), &Doc::new()).await;
    attacker
        .send(name, awareness(4242, 0xffff_fff0, r#"{"user":"mallory"}"#))
        .await;
    attacker
        .send(name, awareness(4242, 7, r#"{"user":"mallory"}"#))
        .await;
    attacker
        .send(name, awareness(777, 1, r#"{"user":"m"}"#))
        .await;
    let seen = awareness_seen_until(&mut watcher, name, 4242, 777).await;
    assert!(
        seen.iter().all(|state| !state.contains("mallory")),
        "the stranger took over the victim's presence: {seen:?}"
    );

    // The victim reconnects from a reloaded page: its awareness clock starts over, below the
    // clock the server holds for its id, and is taken all the same (restamped above it).
    let mut victim = connect("198.51.100.2").await;
    victim.open(name, &token("victim"), &Doc::new()).await;
    victim
        .send(name, awareness(4242, 1, r#"{"user":"ada","back":true}"#))
        .await;
    watcher
        .expect(name, |m| match m {
            Message::Awareness(u) => u
                .clients
                .get(&ClientID::new(4242))
                .is_some_and(|e| e.json.contains("back"))
                .then_some(()),
            _ => None,
        })
        .await;
    // A client that joins now is shown the victim's state, not the stranger's.
    let mut late = connect("198.51.100.3").await;
    late.auth(name, &token("late")).await;
    let shown = late
        .expect(name, |m| match m {
            Message::Awareness(u) => u
                .clients
                .get(&ClientID::new(4242))
                .map(|e| e.json.to_string()),
            _ => None,
        })
        .await;
    assert!(shown.contains("back"), "{shown}");
    server.stop().await;
}

#[tokio::test]
async fn presence_is_kept_for_its_owner_across_a_reconnect_with_tokens() {
    presence_survives_a_reconnect(true).await;
}

#[tokio::test]
async fn presence_is_kept_for_its_owner_across_a_reconnect_without_tokens() {
    presence_survives_a_reconnect(false).await;
}

#[tokio::test]
async fn an_update_past_the_document_limit_is_refused_for_that_document_only() {
    let server = TestServer::start(&memory(&["--max-document-bytes", "4096"])).await;
    let mut client = Client::connect(&server.ws_url()).await;
    let small = Doc::new();
    client.open("small", "", &small).await;
    still_syncs(&mut client, "small", &small, "fits").await;
    let big = Doc::new();
    client.open("big", "", &big).await;
    client
        .send(
            "big",
            Message::Sync(SyncMessage::Update(insert(&big, &"x".repeat(10_000)))),
        )
        .await;
    let reason = client
        .expect("big", |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("exceed 4096 bytes"), "{reason}");
    // The socket and its other document carry on.
    still_syncs(&mut client, "small", &small, " still").await;
    // The denied document's session is over on the socket too (issue 20, scenario 5): a new
    // Auth on the same socket (4.x retries so) opens it again, and it syncs.
    let again = Doc::new();
    client.open("big", "", &again).await;
    still_syncs(&mut client, "big", &again, "small enough").await;
    server.stop().await;
}

#[tokio::test]
async fn y_websocket_room_names_are_validated_like_document_names() {
    let server = TestServer::start(&memory(&[])).await;
    let long = "r".repeat(2000);
    let mut yws = Client::connect(&format!("{}/{long}", server.ws_url())).await;
    yws.send_raw(vec![0, 0, 1, 0]).await;
    // y-websocket's PermissionDenied (auth 2, sub-type 0) reaches the client before the close.
    match yws.recv_raw().await {
        Some(WsMessage::Binary(frame)) => assert_eq!(&frame[..2], &[2, 0]),
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    let close = yws.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("longer than"), "{}", close.reason);
    server.stop().await;
}

#[tokio::test]
async fn addresses_past_the_limit_close_the_socket_and_are_not_echoed() {
    let server = TestServer::start(&memory(&[])).await;
    let mut client = Client::connect(&server.ws_url()).await;
    let address = "a".repeat(100_000);
    client
        .send(
            &address,
            Message::Auth(Auth::Token {
                token: String::new(),
                provider_version: None,
            }),
        )
        .await;
    let close = client.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1007);
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_socket_is_throttled_while_others_sync() {
    let server = TestServer::start(&memory(&[
        "--rate-messages-per-sec",
        "100",
        "--rate-messages-burst",
        "20",
    ]))
    .await;
    let doc = Doc::new();
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.open("rated", "", &doc).await;
    let mut flood = Client::connect(&server.ws_url()).await;
    flood.open("rated", "", &Doc::new()).await;
    for clock in 0..200 {
        flood
            .send("rated", awareness(99, clock, r#"{"n":1}"#))
            .await;
    }
    wait_for_metric(&server, "collab_server_throttled_total", |v| v >= 1.0).await;
    still_syncs(&mut honest, "rated", &doc, "unaffected").await;
    server.stop().await;
}

/// By default a token is checked when a document is opened, as Hocuspocus does: the session
/// outlives its `exp` and its edits are still acknowledged (editors with short-lived tokens kept
/// saving on the Node server).
#[tokio::test]
async fn by_default_a_session_outlives_its_tokens_expiry() {
    let server = TestServer::start(&memory(&[
        "--jwt-secret",
        "s3cret",
        "--keepalive-secs",
        "1",
        "--idle-timeout-secs",
        "60",
    ]))
    .await;
    let token = token("s3cret", json!({"sub": "u", "exp": now() + 1}));
    let mut client = Client::connect(&server.ws_url()).await;
    let doc = Doc::new();
    client.open("expiring", &token, &doc).await;
    // Past exp and the 5 s leeway, and several expiry checks (one per keepalive).
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    client
        .edit_acknowledged("expiring", &doc, "still saved")
        .await;
    server.stop().await;
}

/// `COLLAB_SERVER_TOKEN_EXPIRY=refresh`: at expiry the server asks for a fresh token (`02 00`);
/// one that checks keeps the session and the room asks for what the client typed meanwhile
/// (its Step1); without an answer within the grace the document is denied.
#[tokio::test]
async fn with_refresh_an_expired_session_is_asked_for_a_fresh_token() {
    let server = TestServer::start(&memory(&[
        "--jwt-secret",
        "s3cret",
        "--token-expiry",
        "refresh",
        "--keepalive-secs",
        "1",
        "--idle-timeout-secs",
        "60",
    ]))
    .await;
    let short = token("s3cret", json!({"sub": "u", "exp": now() + 1}));
    let mut client = Client::connect(&server.ws_url()).await;
    let doc = Doc::new();
    client.open("refreshing", &short, &doc).await;
    // The token request: an Auth Token frame with no token.
    client
        .expect("refreshing", |m| match m {
            Message::Auth(Auth::Token { token, .. }) if token.is_empty() => Some(()),
            _ => None,
        })
        .await;
    // Typed while the request was on its way: applied and acknowledged all the same.
    client
        .edit_acknowledged("refreshing", &doc, "meanwhile ")
        .await;
    let fresh = token("s3cret", json!({"sub": "u", "exp": now() + 3600}));
    client.auth("refreshing", &fresh).await;
    // The renewed session is asked for anything the server lacks.
    client
        .expect("refreshing", |m| match m {
            Message::Sync(yrs::sync::SyncMessage::SyncStep1(_)) => Some(()),
            _ => None,
        })
        .await;
    client.edit_acknowledged("refreshing", &doc, "after").await;

    // A second client that never answers the request is denied after the grace.
    let mut silent = Client::connect(&server.ws_url()).await;
    let short = token("s3cret", json!({"sub": "v", "exp": now() + 1}));
    silent.open("refreshing", &short, &Doc::new()).await;
    let reason = silent
        .expect("refreshing", |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(reason.clone()),
            Message::Sync(_) | Message::Awareness(_) | Message::Auth(_) => None,
            _ => None,
        })
        .await;
    assert!(reason.contains("expired"), "{reason}");
    // The answering client's edits are all there.
    let mut reader = Client::connect(&server.ws_url()).await;
    assert_eq!(
        reader.read_text("refreshing", &fresh).await,
        "meanwhile after"
    );
    server.stop().await;
}

/// A token sent again on an open document that does not check denies that document.
#[tokio::test]
async fn a_bad_token_sent_again_denies_the_document() {
    let server = TestServer::start(&memory(&["--jwt-secret", "s3cret"])).await;
    let good = token("s3cret", json!({"sub": "u", "exp": now() + 3600}));
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("resent", &good, &Doc::new()).await;
    client
        .auth("resent", &token("wrong", json!({"sub": "u"})))
        .await;
    let reason = client
        .expect("resent", |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("invalid"), "{reason}");
    server.stop().await;
}

/// The issue's scenario: an update yrs rejects halfway (its second item's parent is the first,
/// a string item) while the document is loaded; a client that joins afterwards, types and is
/// acknowledged finds every acknowledged edit after a restart.
#[tokio::test]
async fn a_half_applied_update_leaves_no_trace_and_acknowledged_edits_survive() {
    let dir = temp_dir("half-applied");
    let data = path_arg(&dir);
    let server = TestServer::start(&["--data-dir", &data]).await;
    let mut keeper = Client::connect(&server.ws_url()).await;
    keeper.open("victim", "", &Doc::new()).await;

    let mut attacker = Client::connect(&server.ws_url()).await;
    attacker.open("victim", "", &Doc::new()).await;
    // One client (99), two string items: "x" in root "t", then "y" whose parent is item
    // (99, 0) — a string, not a type. No deletions.
    let crafted = vec![
        1, 2, 99, 0, // one client, two blocks, client 99, clock 0
        4, 1, 1, b't', 1, b'x', // string "x", parent: root "t"
        4, 0, 99, 0, 1, b'y', // string "y", parent: item (99, 0)
        0,    // delete set
    ];
    attacker
        .send("victim", Message::Sync(SyncMessage::Update(crafted)))
        .await;
    let close = attacker.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1007, "{}", close.reason);

    let doc = Doc::new();
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.open("victim", "", &doc).await;
    assert_eq!(text(&doc), "", "the half-applied item was served");
    still_syncs(&mut honest, "victim", &doc, "kept ").await;
    still_syncs(&mut honest, "victim", &doc, "safe").await;
    drop((honest, keeper));
    server.stop().await;

    let server = TestServer::start(&["--data-dir", &data]).await;
    let mut reader = Client::connect(&server.ws_url()).await;
    assert_eq!(reader.read_text("victim", "").await, "kept safe");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn with_an_admin_port_metrics_and_error_details_leave_the_public_port() {
    let admin_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let port = admin_port.to_string();
    let server = TestServer::start(&["--database-url", "memory://", "--metrics-port", &port]).await;
    let public = reqwest::get(server.http("/metrics")).await.expect("public");
    assert_eq!(public.status(), 404, "/metrics on the public port");
    let ready: serde_json::Value = reqwest::get(server.http("/ready"))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready, json!({"status": "ready"}));
    let admin = format!("http://127.0.0.1:{admin_port}");
    let mut metrics = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{admin}/metrics")).await {
            metrics = Some(response.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        metrics.map(|s| s.as_u16()),
        Some(200),
        "/metrics on the admin port"
    );
    server.stop().await;
}

/// Bytes queued before authentication are given back per document: a socket that keeps one
/// document waiting while it authenticates many others is not mistaken for a flood.
#[tokio::test]
async fn pending_bytes_are_released_per_document() {
    let server = TestServer::start(&memory(&["--jwt-secret", "s"])).await;
    let good = token("s", json!({"exp": now() + 600}));
    let mut client = Client::connect(&server.ws_url()).await;
    // One document stays pending for the whole test.
    client
        .send(
            "held",
            Message::Sync(SyncMessage::SyncStep1(yrs::StateVector::default())),
        )
        .await;
    let payload = insert(&Doc::new(), &"p".repeat(100_000));
    for i in 0..60 {
        let name = format!("doc-{i}");
        // 100 KB queued before its Auth, then released by it: 6 MB in all, past the 5 MiB
        // pending limit if releases were not counted.
        client
            .send(&name, Message::Sync(SyncMessage::Update(payload.clone())))
            .await;
        client.auth(&name, &good).await;
        client
            .expect(&name, |m| {
                matches!(m, Message::Auth(Auth::Authenticated { .. })).then_some(())
            })
            .await;
    }
    let doc = Doc::new();
    client.open("still-open", &good, &doc).await;
    still_syncs(&mut client, "still-open", &doc, "fine").await;
    server.stop().await;
}

#[tokio::test]
async fn denied_documents_per_socket_are_limited() {
    let server = TestServer::start(&memory(&["--jwt-secret", "s"])).await;
    let mut client = Client::connect(&server.ws_url()).await;
    for i in 0..100 {
        client.auth(&format!("denied-{i}"), "not a token").await;
    }
    for i in 0..100 {
        client
            .expect(&format!("denied-{i}"), |m| {
                matches!(m, Message::Auth(Auth::PermissionDenied { .. })).then_some(())
            })
            .await;
    }
    // The 101st denial closes the socket instead of being remembered.
    client.auth("denied-100", "not a token").await;
    let close = client.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 4205, "{}", close.reason);
    server.stop().await;
}

#[tokio::test]
async fn one_session_introduces_a_bounded_number_of_awareness_ids() {
    let server = TestServer::start(&memory(&[])).await;
    let mut watcher = Client::connect(&server.ws_url()).await;
    watcher.open("crowd", "", &Doc::new()).await;
    let mut sender = Client::connect(&server.ws_url()).await;
    sender.open("crowd", "", &Doc::new()).await;
    let clients: HashMap<ClientID, AwarenessUpdateEntry> = (1..=50u64)
        .map(|id| {
            (
                ClientID::new(id),
                AwarenessUpdateEntry {
                    clock: 1,
                    json: Arc::from(r#"{"x":1}"#),
                },
            )
        })
        .collect();
    sender
        .send("crowd", Message::Awareness(AwarenessUpdate { clients }))
        .await;
    let seen = watcher
        .expect("crowd", |m| match m {
            Message::Awareness(u) if !u.clients.is_empty() => Some(u.clients.len()),
            _ => None,
        })
        .await;
    assert_eq!(seen, 8, "a session may introduce 8 awareness ids");
    assert!(metric(&server, "collab_server_awareness_refused_total").await >= 42.0);
    server.stop().await;
}

/// Issue 20, scenario 5: a rebuild reads what other writers stored meanwhile (here a second
/// server on the same SQLite file, with no relay between them); the sessions of the rebuilt
/// room get it at once, not only when they reconnect.
#[tokio::test]
async fn a_rebuild_brings_its_sessions_what_others_stored() {
    let dir = temp_dir("rebuild-broadcast");
    let data = path_arg(&dir);
    let a = TestServer::start(&["--data-dir", &data]).await;
    let b = TestServer::start(&["--data-dir", &data]).await;
    let kept = Doc::new();
    let mut keeper = Client::connect(&a.ws_url()).await;
    keeper.open("rebuilt", "", &kept).await;

    let other = Doc::new();
    let mut writer = Client::connect(&b.ws_url()).await;
    writer.open("rebuilt", "", &other).await;
    writer
        .edit_acknowledged("rebuilt", &other, "stored by b")
        .await;

    // The same crafted update as above: it fails halfway in yrs, so A rebuilds from storage.
    let mut attacker = Client::connect(&a.ws_url()).await;
    attacker.open("rebuilt", "", &Doc::new()).await;
    let crafted = vec![1, 2, 99, 0, 4, 1, 1, b't', 1, b'x', 4, 0, 99, 0, 1, b'y', 0];
    attacker
        .send("rebuilt", Message::Sync(SyncMessage::Update(crafted)))
        .await;
    attacker.expect_close().await;

    keeper
        .expect("rebuilt", |m| match m {
            Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update)) => {
                apply(&kept, update);
                (text(&kept) == "stored by b").then_some(())
            }
            _ => None,
        })
        .await;
    drop((keeper, writer));
    a.stop().await;
    b.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Issue 21, item 2: two updates that each pass the per-update walk but give one id two
/// contents (`fuzz/regressions/update_sequence/use-after-free-exclude`: a use-after-free
/// inside yrs 0.28.1 when it integrates them). The second closes its socket, never reaching
/// yrs; the same content sent again, however it is cut, is still acknowledged.
#[tokio::test]
async fn an_update_that_gives_known_ids_other_content_closes_only_its_socket() {
    let server = TestServer::start(&memory(&[])).await;
    let doc = Doc::new();
    let mut honest = Client::connect(&server.ws_url()).await;
    honest.open("ids", "", &doc).await;
    still_syncs(&mut honest, "ids", &doc, "kept").await;
    // The whole state again, as a reconnecting provider's Step2 racing its updates would.
    honest
        .send(
            "ids",
            Message::Sync(SyncMessage::SyncStep2(full_state(&doc))),
        )
        .await;
    honest
        .expect("ids", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    let mut attacker = Client::connect(&server.ws_url()).await;
    attacker.open("ids", "", &Doc::new()).await;
    // Client 1's clock 1 (a map entry), integrated ahead of its clock 0.
    let k1 = unhex("01 01 01 01 28 01 01 6d 02 6b 31 01 7d b1 02 00");
    attacker
        .send("ids", Message::Sync(SyncMessage::Update(k1)))
        .await;
    attacker
        .expect("ids", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    // Clocks 0–1 as the text "hx": clock 1 is already a map entry.
    let hx = unhex("01 01 01 00 04 01 01 74 02 68 78 00");
    attacker
        .send("ids", Message::Sync(SyncMessage::Update(hx)))
        .await;
    let close = attacker.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1007, "{}", close.reason);
    assert!(
        has_metric_line(
            &server,
            "collab_server_updates_refused_total{reason=\"conflicting_ids\"} 1"
        )
        .await
    );
    still_syncs(&mut honest, "ids", &doc, " safe").await;
    let mut reader = Client::connect(&server.ws_url()).await;
    assert_eq!(reader.read_text("ids", "").await, "kept safe");
    server.stop().await;
}
