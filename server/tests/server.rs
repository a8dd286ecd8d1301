//! Integration tests: a real server on port 0, driven over real WebSockets.

mod support;

use collab_server::protocol::{self, Auth, Frame, Message, Scope};
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::Doc;
use yrs::sync::SyncMessage;

fn memory() -> Vec<&'static str> {
    vec!["--database-url", "memory://"]
}

#[tokio::test]
async fn handshake_follows_the_captured_order() {
    let server = TestServer::start(&memory()).await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.auth("doc1", "").await;
    client
        .send(
            "doc1",
            Message::Sync(SyncMessage::SyncStep1(Default::default())),
        )
        .await;
    assert_eq!(
        client.recv_message("doc1").await,
        Message::Auth(Auth::Authenticated {
            scope: Scope::ReadWrite
        })
    );
    // Server Step1 first, then Step2 (an empty document: `00 00`).
    assert!(matches!(
        client.recv_message("doc1").await,
        Message::Sync(SyncMessage::SyncStep1(_))
    ));
    assert_eq!(
        client.recv_message("doc1").await,
        Message::Sync(SyncMessage::SyncStep2(vec![0, 0]))
    );
    // The provider's Step2 answer is acknowledged, so its unsynced-changes counter reaches 0.
    client
        .send("doc1", Message::Sync(SyncMessage::SyncStep2(vec![0, 0])))
        .await;
    assert_eq!(client.recv_message("doc1").await, Message::SyncStatus(true));
    server.stop().await;
}

#[tokio::test]
async fn updates_reach_everyone_including_the_sender_and_are_acknowledged() {
    let server = TestServer::start(&memory()).await;
    let (a_doc, b_doc) = (Doc::new(), Doc::new());
    let mut a = Client::connect(&server.ws_url()).await;
    let mut b = Client::connect(&server.ws_url()).await;
    a.open("shared", "", &a_doc).await;
    b.open("shared", "", &b_doc).await;
    let update = insert(&a_doc, "hello");
    a.send("shared", Message::Sync(SyncMessage::Update(update.clone())))
        .await;

    // The sender gets its echo and a SyncStatus (in either order).
    let mut echoed = false;
    let mut acknowledged = false;
    while !(echoed && acknowledged) {
        match a.recv_message("shared").await {
            Message::Sync(SyncMessage::Update(u)) => {
                assert_eq!(u, update);
                echoed = true;
            }
            Message::SyncStatus(true) => acknowledged = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    let received = b
        .expect("shared", |m| match m {
            Message::Sync(SyncMessage::Update(u)) => Some(u.clone()),
            _ => None,
        })
        .await;
    apply(&b_doc, &received);
    assert_eq!(text(&b_doc), "hello");
    server.stop().await;
}

#[tokio::test]
async fn one_socket_carries_several_documents_and_session_keys() {
    let server = TestServer::start(&memory()).await;
    let mut client = Client::connect(&server.ws_url()).await;
    let (one, two) = (Doc::new(), Doc::new());
    client.open("alpha", "", &one).await;
    // A 4.x routing key: name + "\0" + session id. Replies carry the raw key.
    client.open("beta\0sess1", "", &two).await;
    client
        .send(
            "beta\0sess1",
            Message::Sync(SyncMessage::Update(insert(&two, "B"))),
        )
        .await;
    client
        .expect("beta\0sess1", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    // A plain-name subscriber of the same document sees the edit.
    let mut other = Client::connect(&server.ws_url()).await;
    let plain = Doc::new();
    other.open("beta", "", &plain).await;
    assert_eq!(text(&plain), "B");
    let mut untouched = Client::connect(&server.ws_url()).await;
    let alpha = Doc::new();
    untouched.open("alpha", "", &alpha).await;
    assert_eq!(text(&alpha), "");
    server.stop().await;
}

#[tokio::test]
async fn legacy_providers_without_auth_frames_are_served_when_auth_is_off() {
    let server = TestServer::start(&memory()).await;
    let mut client = Client::connect(&server.ws_url()).await;
    // 2.x without a token: Step1 first, no Auth frame.
    client
        .send(
            "legacy",
            Message::Sync(SyncMessage::SyncStep1(Default::default())),
        )
        .await;
    assert!(matches!(
        client.recv_message("legacy").await,
        Message::Sync(SyncMessage::SyncStep1(_))
    ));
    assert!(matches!(
        client.recv_message("legacy").await,
        Message::Sync(SyncMessage::SyncStep2(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn malformed_frames_close_only_that_socket() {
    let server = TestServer::start(&memory()).await;
    let mut good = Client::connect(&server.ws_url()).await;
    let good_doc = Doc::new();
    good.open("steady", "", &good_doc).await;

    let mut bad = Client::connect(&server.ws_url()).await;
    bad.send_raw(vec![0x05, b'a']).await; // address length 5, one byte
    let close = bad.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007);
    assert!(close.reason.contains("malformed"), "{}", close.reason);

    // A frame with a valid envelope but a garbage update.
    let mut garbage = Client::connect(&server.ws_url()).await;
    let garbage_doc = Doc::new();
    garbage.open("steady", "", &garbage_doc).await;
    garbage
        .send(
            "steady",
            Message::Sync(SyncMessage::Update(vec![0xff, 0xff, 0xff, 0x01])),
        )
        .await;
    let close = garbage.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1007);

    // The good client still edits.
    good.send(
        "steady",
        Message::Sync(SyncMessage::Update(insert(&good_doc, "ok"))),
    )
    .await;
    good.expect("steady", |m| {
        matches!(m, Message::SyncStatus(true)).then_some(())
    })
    .await;
    let health = reqwest::get(server.http("/health")).await.expect("health");
    assert_eq!(health.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn bare_ping_is_answered_with_bare_pong() {
    let server = TestServer::start(&memory()).await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.send_raw(vec![protocol::message_type::PING]).await;
    match client.recv_raw().await {
        Some(WsMessage::Binary(bytes)) => assert_eq!(&bytes[..], &[protocol::message_type::PONG]),
        other => panic!("expected a pong, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_per_document() {
    let secret = "integration-secret";
    let server = TestServer::start(&["--database-url", "memory://", "--jwt-secret", secret]).await;
    let mut client = Client::connect(&server.ws_url()).await;

    let limited = token(secret, json!({"exp": now() + 60, "docs": ["team/*"]}));
    client.auth("private", &limited).await;
    match client.recv_message("private").await {
        Message::Auth(Auth::PermissionDenied { reason }) => {
            assert!(reason.contains("does not grant"), "{reason}")
        }
        other => panic!("expected denial, got {other:?}"),
    }
    let wrong = token("other-secret", json!({"exp": now() + 60}));
    client.auth("team/x", &wrong).await;
    assert!(matches!(
        client.recv_message("team/x").await,
        Message::Auth(Auth::PermissionDenied { .. })
    ));
    // Retry with a good token on the same socket (4.x semantics).
    let doc = Doc::new();
    client.open("team/x", &limited, &doc).await;
    client
        .send(
            "team/x",
            Message::Sync(SyncMessage::Update(insert(&doc, "x"))),
        )
        .await;
    client
        .expect("team/x", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn readonly_sessions_read_but_never_write() {
    let secret = "ro-secret";
    let server = TestServer::start(&["--database-url", "memory://", "--jwt-secret", secret]).await;
    let writer_token = token(secret, json!({"exp": now() + 60}));
    let reader_token = token(secret, json!({"exp": now() + 60, "readonly": true}));
    let (w_doc, r_doc) = (Doc::new(), Doc::new());
    let mut writer = Client::connect(&server.ws_url()).await;
    writer.open("ro", &writer_token, &w_doc).await;
    writer
        .send(
            "ro",
            Message::Sync(SyncMessage::Update(insert(&w_doc, "base"))),
        )
        .await;
    writer
        .expect("ro", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    let mut reader = Client::connect(&server.ws_url()).await;
    reader.auth("ro", &reader_token).await;
    assert_eq!(
        reader.recv_message("ro").await,
        Message::Auth(Auth::Authenticated {
            scope: Scope::ReadOnly
        })
    );
    reader
        .send(
            "ro",
            Message::Sync(SyncMessage::SyncStep1(r_doc_sv(&r_doc))),
        )
        .await;
    let step2 = reader
        .expect("ro", |m| match m {
            Message::Sync(SyncMessage::SyncStep2(u)) => Some(u.clone()),
            _ => None,
        })
        .await;
    apply(&r_doc, &step2);
    assert_eq!(text(&r_doc), "base");
    reader
        .send(
            "ro",
            Message::Sync(SyncMessage::Update(insert(&r_doc, "HACK"))),
        )
        .await;
    let status = reader
        .expect("ro", |m| match m {
            Message::SyncStatus(s) => Some(*s),
            _ => None,
        })
        .await;
    assert!(!status, "a read-only update is rejected");
    // The writer's next edit arrives, the reader's never did.
    writer
        .send(
            "ro",
            Message::Sync(SyncMessage::Update(insert(&w_doc, "!"))),
        )
        .await;
    let update = writer
        .expect("ro", |m| match m {
            Message::Sync(SyncMessage::Update(u)) => Some(u.clone()),
            _ => None,
        })
        .await;
    let late = Doc::new();
    let mut late_client = Client::connect(&server.ws_url()).await;
    late_client.open("ro", &writer_token, &late).await;
    assert_eq!(text(&late), "base!");
    assert!(!update.is_empty());
    server.stop().await;
}

fn r_doc_sv(doc: &Doc) -> yrs::StateVector {
    use yrs::{ReadTxn, Transact};
    doc.transact().state_vector()
}

#[tokio::test]
async fn documents_survive_a_restart_on_sqlite() {
    let dir = temp_dir("restart");
    let data = path_arg(&dir);
    let server = TestServer::start(&["--data-dir", &data]).await;
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("persist/me", "", &doc).await;
    for word in ["one ", "two ", "three"] {
        client
            .send(
                "persist/me",
                Message::Sync(SyncMessage::Update(insert(&doc, word))),
            )
            .await;
        client
            .expect("persist/me", |m| {
                matches!(m, Message::SyncStatus(true)).then_some(())
            })
            .await;
    }
    drop(client);
    server.stop().await;

    let server = TestServer::start(&["--data-dir", &data]).await;
    let fresh = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("persist/me", "", &fresh).await;
    assert_eq!(text(&fresh), "one two three");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_backend_serves_and_persists() {
    let Ok(url) = std::env::var("COLLAB_TEST_DATABASE_URL") else {
        eprintln!("COLLAB_TEST_DATABASE_URL is not set; run the suite through scripts/test.sh");
        return;
    };
    let name = format!("it/pg/{}", now());
    let server = TestServer::start(&["--database-url", &url]).await;
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open(&name, "", &doc).await;
    client
        .send(
            &name,
            Message::Sync(SyncMessage::Update(insert(&doc, "pg"))),
        )
        .await;
    client
        .expect(&name, |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    drop(client);
    server.stop().await;
    let server = TestServer::start(&["--database-url", &url]).await;
    let fresh = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open(&name, "", &fresh).await;
    assert_eq!(text(&fresh), "pg");
    server.stop().await;
}

#[tokio::test]
async fn y_websocket_clients_share_documents_with_providers() {
    let server = TestServer::start(&memory()).await;
    let provider_doc = Doc::new();
    let mut provider = Client::connect(&server.ws_url()).await;
    provider.open("rooms/one", "", &provider_doc).await;
    provider
        .send(
            "rooms/one",
            Message::Sync(SyncMessage::Update(insert(&provider_doc, "from provider"))),
        )
        .await;
    provider
        .expect("rooms/one", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    let mut yws = Client::connect(&format!("{}/rooms/one", server.ws_url())).await;
    let step1 = protocol::encode_yws(&Message::Sync(SyncMessage::SyncStep1(Default::default())))
        .expect("yws frame");
    yws.send_raw(step1).await;
    // The server opens with its own Step1, then answers ours with Step2.
    let yws_doc = Doc::new();
    let mut saw_step1 = false;
    loop {
        let Some(WsMessage::Binary(bytes)) = yws.recv_raw().await else {
            panic!("socket closed")
        };
        match protocol::decode_yws(&bytes).expect("yws frame") {
            Message::Sync(SyncMessage::SyncStep1(_)) => saw_step1 = true,
            Message::Sync(SyncMessage::SyncStep2(update)) => {
                apply(&yws_doc, &update);
                break;
            }
            _ => {}
        }
    }
    assert!(saw_step1);
    assert_eq!(text(&yws_doc), "from provider");
    server.stop().await;
}

#[tokio::test]
async fn http_endpoints_answer() {
    let server = TestServer::start(&memory()).await;
    let health: serde_json::Value = reqwest::get(server.http("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health, json!({"status": "healthy"}));
    assert_eq!(
        reqwest::get(server.http("/ready"))
            .await
            .expect("ready")
            .status(),
        200
    );
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("metered", "", &Doc::new()).await;
    let metrics = reqwest::get(server.http("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("collab_server_connections 1"), "{metrics}");
    assert!(metrics.contains("collab_server_documents_loaded 1"));
    assert!(metrics.contains("collab_server_messages_total{direction=\"in\",type=\"sync_step1\"}"));
    assert!(
        !metrics.contains("metered"),
        "document names never appear in metrics"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_sockets_with_a_reconnectable_code() {
    let server = TestServer::start(&memory()).await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("bye", "", &Doc::new()).await;
    let stopping = tokio::spawn(server.stop());
    let close = client.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1012);
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn golden_frames_from_real_providers_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        panic!("golden frames missing in {}", dir.display());
    };
    let mut decoded = 0;
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let frames: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let yws = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ywebsocket"));
        for frame in frames {
            let hex = frame["hex"].as_str().expect("hex field");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            if yws {
                let message = protocol::decode_yws(&bytes)
                    .unwrap_or_else(|e| panic!("{}: {frame}: {e}", path.display()));
                assert_eq!(protocol::encode_yws(&message).as_deref(), Some(&bytes[..]));
            } else {
                let decoded_frame = protocol::decode_frame(&bytes)
                    .unwrap_or_else(|e| panic!("{}: {frame}: {e}", path.display()));
                if let Frame::Document { address, message } = &decoded_frame {
                    // Awareness entries are a map: re-encoding may reorder several clients.
                    if !matches!(message, Message::Awareness(u) if u.clients.len() > 1) {
                        assert_eq!(protocol::encode_frame(address, message), bytes, "{frame}");
                    }
                }
            }
            decoded += 1;
        }
    }
    assert!(decoded > 0, "no golden frames found");

    // What distinguishes the lines: 4.x announces its version in Auth, 2.x/3.x do not.
    let first_auth = |file: &str| {
        let frames: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(dir.join(file)).expect("read")).expect("json");
        let hex = frames[0]["hex"].as_str().expect("hex").to_owned();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        match protocol::decode_frame(&bytes).expect("decodes") {
            Frame::Document {
                message:
                    Message::Auth(Auth::Token {
                        provider_version,
                        token,
                    }),
                ..
            } => (token, provider_version),
            other => panic!("first frame of {file} is not Auth: {other:?}"),
        }
    };
    assert_eq!(
        first_auth("provider-4.json"),
        ("good".into(), Some("4.8.0".into()))
    );
    assert_eq!(first_auth("provider-3.json"), ("good".into(), None));
    assert_eq!(first_auth("provider-2.json"), ("good".into(), None));
}

#[tokio::test]
async fn idle_sessions_get_empty_awareness_keepalives() {
    let server = TestServer::start(&["--database-url", "memory://", "--keepalive-secs", "1"]).await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("quiet", "", &Doc::new()).await;
    let keepalive = client
        .expect("quiet", |m| match m {
            Message::Awareness(update) => Some(update.clients.len()),
            _ => None,
        })
        .await;
    assert_eq!(keepalive, 0, "an awareness update with no entries");
    server.stop().await;
}

#[tokio::test]
async fn awareness_is_echoed_and_removed_when_the_socket_dies() {
    use std::collections::HashMap;
    use std::sync::Arc;
    use yrs::block::ClientID;
    use yrs::sync::AwarenessUpdate;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    let server = TestServer::start(&memory()).await;
    let mut watcher = Client::connect(&server.ws_url()).await;
    watcher.open("cursors", "", &Doc::new()).await;
    let mut leaver = Client::connect(&server.ws_url()).await;
    leaver.open("cursors", "", &Doc::new()).await;
    let client = ClientID::new(4242);
    let state = AwarenessUpdate {
        clients: HashMap::from([(
            client,
            AwarenessUpdateEntry {
                clock: 1,
                json: Arc::from(r#"{"user":{"name":"ada"}}"#),
            },
        )]),
    };
    leaver.send("cursors", Message::Awareness(state)).await;
    let is_state = |m: &Message, wanted: &str| match m {
        Message::Awareness(u) => u
            .clients
            .get(&ClientID::new(4242))
            .is_some_and(|e| &*e.json == wanted)
            .then_some(()),
        _ => None,
    };
    // Echoed to the sender and seen by the other session.
    leaver
        .expect("cursors", |m| is_state(m, r#"{"user":{"name":"ada"}}"#))
        .await;
    watcher
        .expect("cursors", |m| is_state(m, r#"{"user":{"name":"ada"}}"#))
        .await;
    // The socket dies without a goodbye: the state is removed for everyone else.
    drop(leaver);
    watcher.expect("cursors", |m| is_state(m, "null")).await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_messages_close_only_that_socket_with_1009() {
    let server =
        TestServer::start(&["--database-url", "memory://", "--max-message-bytes", "4096"]).await;
    let mut big = Client::connect(&server.ws_url()).await;
    big.open("limits", "", &Doc::new()).await;
    big.send("limits", Message::Sync(SyncMessage::Update(vec![0; 8192])))
        .await;
    let close = big.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 1009);
    let mut small = Client::connect(&server.ws_url()).await;
    small.open("limits", "", &Doc::new()).await;
    server.stop().await;
}

#[tokio::test]
async fn documents_per_socket_are_limited_without_closing_it() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--max-documents-per-connection",
        "2",
    ])
    .await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("one", "", &Doc::new()).await;
    client.open("two", "", &Doc::new()).await;
    client.auth("three", "").await;
    match client.recv_message("three").await {
        Message::Auth(Auth::PermissionDenied { reason }) => {
            assert!(reason.contains("at most 2 documents"), "{reason}")
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    // The first documents still work on the same socket.
    let doc = Doc::new();
    client
        .send("one", Message::Sync(SyncMessage::Update(insert(&doc, "x"))))
        .await;
    client
        .expect("one", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let server =
        TestServer::start(&["--database-url", "memory://", "--max-connections", "1"]).await;
    let mut first = Client::connect(&server.ws_url()).await;
    first.open("only", "", &Doc::new()).await;
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn healthcheck_subcommand_reports_the_server_state() {
    let server = TestServer::start(&memory()).await;
    let port = server.addr.port().to_string();
    // Not std::process: blocking this test's runtime would stall the server it checks.
    let run = |port: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_collab-server"))
            .args(["healthcheck", "--host", "127.0.0.1", "--port", &port])
            .status()
            .await
            .expect("run healthcheck")
    };
    assert!(run(port.clone()).await.success());
    server.stop().await;
    assert!(!run(port).await.success(), "nothing listens any more");
}

#[tokio::test]
async fn silent_sockets_are_closed_after_the_idle_timeout() {
    let server = TestServer::start(&[
        "--database-url",
        "memory://",
        "--idle-timeout-secs",
        "1",
        "--keepalive-secs",
        "1",
    ])
    .await;
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("idle", "", &Doc::new()).await;
    // Say nothing: keepalives arrive, then the close for the silence.
    let close = client.expect_close().await.expect("close frame");
    assert_eq!(u16::from(close.code), 4408);
    server.stop().await;
}

/// Sessions that start empty share one encoding of the whole document, renewed whenever the
/// document changes: each newcomer gets the document as it is at its arrival, with edits of
/// every kind (a client's, the API's, after a reload) included.
#[tokio::test]
async fn newcomers_get_the_current_document_while_its_encoding_is_shared() {
    let server = TestServer::start(&["--database-url", "memory://"]).await;
    let mut writer = Client::connect(&server.ws_url()).await;
    let ydoc = Doc::new();
    writer.open("shared", "", &ydoc).await;
    let mut expected = String::new();
    for word in ["one", " two", " three"] {
        writer.edit_acknowledged("shared", &ydoc, word).await;
        expected.push_str(word);
        for _ in 0..2 {
            let mut newcomer = Client::connect(&server.ws_url()).await;
            assert_eq!(newcomer.read_text("shared", "").await, expected);
        }
    }
    server.stop().await;
}

/// A 2.x provider's `destroy()` sends an awareness removal after its Close: the document is
/// not reopened by it, and unloads once its last session is gone.
#[tokio::test]
async fn an_awareness_removal_after_close_does_not_reopen_the_document() {
    use yrs::sync::AwarenessUpdate;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    let server = TestServer::start(&["--database-url", "memory://"]).await;
    let mut client = Client::connect(&server.ws_url()).await;
    let ydoc = Doc::new();
    client.open("detached", "", &ydoc).await;
    client.edit_acknowledged("detached", &ydoc, "x").await;
    assert_eq!(metric(&server, "collab_server_documents_loaded").await, 1.0);
    client.send("detached", Message::Close(None)).await;
    let removal = AwarenessUpdate {
        clients: [(
            ydoc.client_id(),
            AwarenessUpdateEntry {
                clock: 2,
                json: std::sync::Arc::from("null"),
            },
        )]
        .into(),
    };
    client.send("detached", Message::Awareness(removal)).await;
    let mut unloaded = false;
    for _ in 0..200 {
        if metric(&server, "collab_server_documents_loaded").await == 0.0 {
            unloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        unloaded,
        "the document stays loaded after its provider detached"
    );
    // The socket is still usable, and the document reopens on a sync message.
    assert_eq!(client.read_text("detached", "").await, "x");
    server.stop().await;
}

/// Issue 24, item 3: the seed's `documents(name varchar(255), …)` is adopted as it is. A name it
/// cannot hold is refused when the document is opened (nothing acknowledged that could never be
/// folded into the table); a name that fits is stored and folded into the seed's row.
#[tokio::test]
async fn names_the_adopted_table_cannot_hold_are_refused_before_any_acknowledgement() {
    let Ok(admin_url) = std::env::var("COLLAB_TEST_DATABASE_URL") else {
        eprintln!("COLLAB_TEST_DATABASE_URL is not set; run the suite through scripts/test.sh");
        return;
    };
    use sqlx::Connection as _;
    let database = format!("collab_seed_{}_{}", std::process::id(), now());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("admin");
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let mut url = reqwest::Url::parse(&admin_url).expect("url");
    url.set_path(&database);
    let url = url.to_string();
    {
        let mut seed = sqlx::PgConnection::connect(&url).await.expect("seed");
        // The seed's table, as its Node server created it.
        sqlx::query(
            "CREATE TABLE documents (name VARCHAR(255) PRIMARY KEY, content BYTEA, updated_at TIMESTAMPTZ DEFAULT now())",
        )
        .execute(&mut seed)
        .await
        .expect("seed table");
    }

    let server = TestServer::start(&["--database-url", &url]).await;
    let too_long = "n".repeat(256);
    let mut client = Client::connect(&server.ws_url()).await;
    client.auth(&too_long, "").await;
    let reason = client
        .expect(&too_long, |m| match m {
            Message::Auth(Auth::PermissionDenied { reason }) => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("255 characters"), "{reason}");
    // A name of exactly 255 characters (multi-byte ones count once) is served and stored.
    let fits = format!("é{}", "n".repeat(254));
    let doc = Doc::new();
    client.open(&fits, "", &doc).await;
    client.edit_acknowledged(&fits, &doc, "kept").await;
    drop(client);
    server.stop().await;
    {
        let mut seed = sqlx::PgConnection::connect(&url).await.expect("seed");
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM documents WHERE name = $1")
            .bind(&fits)
            .fetch_one(&mut seed)
            .await
            .expect("count");
        assert_eq!(
            rows, 1,
            "the edit was folded into the seed's table on shutdown"
        );
        seed.close().await.expect("close");
    }
    sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop database");
}

/// The server binary on `port` with in-memory storage, HS256 tokens and `env`, its log (stdout)
/// read line by line as a log collector would (not a terminal).
fn spawn_logging_server(
    port: u16,
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_collab-server"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("DATABASE_URL", "memory://")
        .env("JWT_SECRET", "s3cret")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().expect("stdout");
    (child, tokio::io::BufReader::new(stdout).lines())
}

/// Issue 24, items 8 and 9: the binary's start-up log, as a log collector receives it (not a
/// terminal): no colour escape codes, the authentication mode said, and the editor's URL one a
/// browser can open.
#[tokio::test]
async fn the_start_up_log_says_the_auth_mode_without_colour_codes() {
    let port = closed_port();
    let (mut child, mut lines) = spawn_logging_server(port, &[("COLLAB_SERVER_DEMO", "true")]);
    let mut log = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("collaborative editor at");
            log.push(line);
            if done {
                break;
            }
        }
    })
    .await;
    child.kill().await.expect("kill");
    let log = log.join("\n");
    assert!(read.is_ok(), "no editor line within the wait:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log:\n{log}"
    );
    assert!(
        log.contains("authentication: HS256 tokens (JWT_SECRET)"),
        "the auth mode is not said:\n{log}"
    );
    assert!(
        log.contains(&format!("http://localhost:{port}/")),
        "the editor URL is not one a browser opens:\n{log}"
    );
}

/// Issue 24, item 8: an unreachable database stops the start with its cause (here: refused),
/// said once, instead of "pool timed out" after 10 s.
#[tokio::test]
async fn an_unreachable_database_is_refused_at_start_with_its_cause_said_once() {
    let closed = closed_port();
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_collab-server"))
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{closed}/collab"),
            )
            .env("PORT", "0")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the start fails within the wait, not after a pool timeout")
    .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("Connection refused"), "{stderr}");
    assert_eq!(last.matches("Connection refused").count(), 1, "{last}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
}

/// Issue 24, item 8: a key set (JWKS, Cognito) that cannot be fetched is found out at start,
/// not by the first client: `collab_server_dependency_up{dependency="jwks"}` says 0.
#[tokio::test]
async fn an_unreachable_key_set_is_visible_from_the_start() {
    let closed = closed_port();
    let jwks = format!("http://127.0.0.1:{closed}/.well-known/jwks.json");
    let server = TestServer::start(&["--database-url", "memory://", "--jwks-url", &jwks]).await;
    assert!(
        has_metric_line(
            &server,
            "collab_server_dependency_up{dependency=\"jwks\"} 0"
        )
        .await,
        "no jwks gauge at 0"
    );
    server.stop().await;
}

/// Issue 24, item 9: a 2.x provider without a token against a server that requires one sends
/// no Auth frame; its socket is closed (4401) and the log says why, instead of nothing.
#[tokio::test]
async fn a_socket_that_never_authenticates_is_closed_and_logged() {
    let port = closed_port();
    let (mut child, mut lines) = spawn_logging_server(
        port,
        &[
            ("COLLAB_SERVER_IDLE_TIMEOUT_SECS", "2"),
            ("COLLAB_SERVER_KEEPALIVE_SECS", "1"),
        ],
    );
    let url = format!("ws://127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..200 {
        if let Ok(connected) = tokio::time::timeout(WAIT, Client::try_connect(&url)).await
            && let Some(connected) = connected
        {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let mut client = client.expect("the server listens");
    // What a 2.x provider without a token sends: Sync Step1 (and, being alive, more frames),
    // never Auth.
    let close = loop {
        // A send after the server's close may fail; the close frame is still read below.
        let _ = client
            .try_send(
                "no-token",
                Message::Sync(SyncMessage::SyncStep1(Default::default())),
            )
            .await;
        if let Ok(Received::Closed(frame)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), client.recv()).await
        {
            break frame.expect("a close frame");
        }
    };
    assert_eq!(u16::from(close.code), 4401);
    let logged = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("authenticated no document") {
                return true;
            }
        }
        false
    })
    .await;
    child.kill().await.expect("kill");
    assert_eq!(logged, Ok(true), "the close was not logged");
}
