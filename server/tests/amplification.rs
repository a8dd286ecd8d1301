//! A frame of n bytes costs O(n) memory: counts read from the wire that the bytes cannot hold
//! are refused before anything is reserved. Its own test binary, alone in its process, so the
//! peak resident memory it reads is this test's.

mod support;

use support::*;

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplification_frames_cost_no_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc: peak memory cannot be read here; skipped");
        return;
    }
    let server = TestServer::start(&["--database-url", "memory://"]).await;
    // Warm up: one honest session, so lazily allocated parts are in the baseline.
    let mut honest = Client::connect(&server.ws_url()).await;
    let doc = yrs::Doc::new();
    honest.open("a", "", &doc).await;
    let before = peak_rss_kib();
    // Document "a", each claiming 2^29 entries in 5 bytes: a Sync Step1 state vector (the
    // issue's 10-byte frame), an awareness update, a Step2 update, and an update's blocks.
    let frames: [&[u8]; 4] = [
        &[0x01, 0x61, 0x00, 0x00, 0x05, 0x80, 0x80, 0x80, 0x80, 0x02],
        &[0x01, 0x61, 0x01, 0x05, 0x80, 0x80, 0x80, 0x80, 0x02],
        &[0x01, 0x61, 0x00, 0x01, 0x05, 0x80, 0x80, 0x80, 0x80, 0x02],
        &[
            0x01, 0x61, 0x00, 0x02, 0x08, 0x01, 0x80, 0x80, 0x80, 0x80, 0x02, 0x01, 0x00,
        ],
    ];
    for round in 0..1000 {
        let mut attacker = Client::connect(&server.ws_url()).await;
        attacker
            .send_raw(frames[round % frames.len()].to_vec())
            .await;
        let close = attacker.expect_close().await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1007, "{}", close.reason);
    }
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    eprintln!("peak RSS growth after 1,000 amplification frames: {growth_mib} MiB");
    assert!(
        growth_mib < 32,
        "1,000 frames of 10 bytes raised peak memory by {growth_mib} MiB"
    );
    // The honest client was never disturbed.
    honest
        .send(
            "a",
            collab_server::protocol::Message::Sync(yrs::sync::SyncMessage::Update(insert(
                &doc,
                "still here",
            ))),
        )
        .await;
    honest
        .expect("a", |m| {
            matches!(m, collab_server::protocol::Message::SyncStatus(true)).then_some(())
        })
        .await;
    server.stop().await;
}
