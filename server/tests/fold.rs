//! Folding a long log of small edits (what a burst of typing leaves when the writer outruns
//! compaction, or a crash leaves unfolded) costs memory in proportion to the document, not to
//! the square of the log: the fold commits one transaction per update, as a room applies them.
//! Its own test binary, alone in its process, so the peak resident memory it reads is its own.

use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact};

/// The process's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_long_log_of_one_character_edits_folds_in_bounded_memory() {
    let Some(before) = peak_rss_kib() else {
        eprintln!("no /proc: peak memory cannot be read here; skipped");
        return;
    };
    // 60,000 one-character edits, each its own update, as a typing client sends them.
    let writer = Doc::new();
    let text = writer.get_or_insert_text("t");
    let mut log = Vec::with_capacity(60_000);
    for i in 0..60_000u32 {
        let sv = writer.transact().state_vector();
        {
            let mut txn = writer.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, if i % 2 == 0 { "a" } else { "b" });
        }
        log.push(writer.transact().encode_state_as_update_v1(&sv));
    }
    let expected = text.get_string(&writer.transact());
    drop(writer);
    let log_refs: Vec<&[u8]> = log.iter().map(Vec::as_slice).collect();
    let after_log = peak_rss_kib().unwrap_or(before);

    let folded = collab_server::storage::integrate_all("typing", None, &log_refs).expect("folds");
    let state = folded
        .doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let read = folded.doc.get_or_insert_text("t");
    assert_eq!(read.get_string(&folded.doc.transact()), expected);
    let growth_mib = peak_rss_kib().unwrap_or(0).saturating_sub(after_log) / 1024;
    eprintln!(
        "fold of 60,000 one-character edits: state {} bytes, peak RSS growth {growth_mib} MiB",
        state.len()
    );
    assert!(
        growth_mib < 64,
        "folding 60,000 small edits raised peak memory by {growth_mib} MiB"
    );
}
