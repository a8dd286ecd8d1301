//! Nothing acknowledged is ever lost: stored updates that cannot be integrated, missing
//! dependencies, compaction races.

mod support;

use collab_server::protocol::Message;
use collab_server::storage::{DocumentStore, SqliteStore};
use support::*;
use yrs::sync::SyncMessage;
use yrs::{Doc, ReadTxn, Transact};

/// A log where one row cannot be integrated (as when a peer replica stored what this one
/// rejects) still loads: the row is quarantined and counted, the rest is served and editable.
#[tokio::test]
async fn a_log_with_an_update_no_load_can_fold_is_served_without_it() {
    let dir = temp_dir("quarantine");
    let data = path_arg(&dir);
    {
        let store = SqliteStore::open(&dir.join("collab.db"))
            .await
            .expect("open");
        let ydoc = Doc::new();
        let half_applying = vec![1, 2, 99, 0, 4, 1, 1, b't', 1, b'x', 4, 0, 99, 0, 1, b'y', 0];
        store
            .append(
                "poisoned",
                0,
                &[
                    insert(&ydoc, "before "),
                    half_applying,
                    insert(&ydoc, "after"),
                ],
            )
            .await
            .expect("append");
    }
    let server = TestServer::start(&["--data-dir", &data, "--compact-after", "1"]).await;
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("poisoned", "", &doc).await;
    assert_eq!(text(&doc), "before after");
    assert!(metric(&server, "collab_server_updates_quarantined_total").await >= 1.0);
    client.edit_acknowledged("poisoned", &doc, "!").await;
    drop(client);
    server.stop().await;
    // Compacted on unload: still loads, with every acknowledged edit.
    let server = TestServer::start(&["--data-dir", &data]).await;
    let mut client = Client::connect(&server.ws_url()).await;
    assert_eq!(client.read_text("poisoned", "").await, "before after!");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Missing dependencies belong to one update: once the document holds a pending update, a
/// Step2 of what is already known is not appended, not broadcast, and triggers nothing.
#[tokio::test]
async fn a_no_op_step2_is_not_stored_while_another_update_is_pending() {
    let server = TestServer::start(&["--database-url", "memory://"]).await;
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("pending", "", &doc).await;
    // An update whose dependency the server never saw: it stays pending there.
    let elsewhere = Doc::with_client_id(7);
    insert(&elsewhere, "first");
    let before = elsewhere.transact().state_vector();
    insert(&elsewhere, " second");
    let dependent = elsewhere.transact().encode_state_as_update_v1(&before);
    client
        .send("pending", Message::Sync(SyncMessage::Update(dependent)))
        .await;
    client
        .expect("pending", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    let rows = metric(&server, "collab_server_log_rows_appended_total").await;
    // A reconnecting client's Step2 that brings nothing new.
    let known = doc
        .transact()
        .encode_state_as_update_v1(&Default::default());
    for _ in 0..5 {
        client
            .send(
                "pending",
                Message::Sync(SyncMessage::SyncStep2(known.clone())),
            )
            .await;
        client
            .expect("pending", |m| {
                matches!(m, Message::SyncStatus(true)).then_some(())
            })
            .await;
    }
    assert_eq!(
        metric(&server, "collab_server_log_rows_appended_total").await,
        rows,
        "no-op Step2 frames were stored"
    );
    server.stop().await;
}

/// A read-only provider that reconnects to a document with deletions is in sync (its Step2
/// carries the whole delete set); its real edits are never reported as saved.
#[tokio::test]
async fn read_only_acknowledgements_tell_the_truth() {
    let server = TestServer::start(&["--database-url", "memory://", "--jwt-secret", "s"]).await;
    let writer_token = token("s", serde_json::json!({"exp": now() + 600}));
    let reader_token = token(
        "s",
        serde_json::json!({"exp": now() + 600, "readonly": true}),
    );
    let doc = Doc::new();
    let mut writer = Client::connect(&server.ws_url()).await;
    writer.open("ro", &writer_token, &doc).await;
    writer
        .send(
            "ro",
            Message::Sync(SyncMessage::Update(insert(&doc, "hello world"))),
        )
        .await;
    writer
        .expect("ro", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    let text_ref = doc.get_or_insert_text("t");
    let before = doc.transact().state_vector();
    {
        use yrs::Text;
        text_ref.remove_range(&mut doc.transact_mut(), 0, 6);
    }
    let deletion = doc.transact().encode_state_as_update_v1(&before);
    writer
        .send("ro", Message::Sync(SyncMessage::Update(deletion)))
        .await;
    writer
        .expect("ro", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;

    // The reader has everything (as after an earlier session) and reconnects.
    let reader_doc = Doc::new();
    apply(&reader_doc, &full_state(&doc));
    let mut reader = Client::connect(&server.ws_url()).await;
    reader.open("ro", &reader_token, &reader_doc).await; // waits for SyncStatus(true)
    // A real edit is answered "not saved".
    reader
        .send(
            "ro",
            Message::Sync(SyncMessage::Update(insert(&reader_doc, "!"))),
        )
        .await;
    reader
        .expect("ro", |m| {
            matches!(m, Message::SyncStatus(false)).then_some(())
        })
        .await;
    server.stop().await;
}

/// An acknowledged update that waits for a dependency is kept until that arrives: across
/// compactions (which fold the log into a snapshot of what the document holds) and restarts.
/// Since issue 21 such an update is held by the admission rules, outside yrs, so it is not in
/// the document's state (which yrs' pending state was): a compaction must keep its row.
#[tokio::test]
async fn an_acknowledged_update_waiting_for_its_dependency_survives_compaction_and_restart() {
    let dir = temp_dir("held-across-compaction");
    let data = path_arg(&dir);
    let args = ["--data-dir", data.as_str(), "--compact-after", "1"];
    let server = TestServer::start(&args).await;
    let elsewhere = Doc::with_client_id(7);
    let first = insert(&elsewhere, "first");
    let second = insert(&elsewhere, " second");
    let doc = Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("held", "", &doc).await;
    // Its dependency (client 7's "first") is not there yet: acknowledged, stored, waiting.
    client
        .send("held", Message::Sync(SyncMessage::Update(second)))
        .await;
    client
        .expect("held", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    // Other edits, each followed by a compaction (--compact-after 1).
    for word in ["a", "b", "c"] {
        client.edit_acknowledged("held", &doc, word).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(client);
    server.stop().await;

    let server = TestServer::start(&args).await;
    let mut client = Client::connect(&server.ws_url()).await;
    let doc = Doc::new();
    client.open("held", "", &doc).await;
    client
        .send("held", Message::Sync(SyncMessage::Update(first)))
        .await;
    client
        .expect("held", |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    drop(client);
    let mut reader = Client::connect(&server.ws_url()).await;
    let text = reader.read_text("held", "").await;
    assert!(
        text.contains("first second") && text.contains("abc"),
        "both writers' text: {text:?}"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
