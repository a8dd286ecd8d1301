//! Sequences of 2–8 Yjs updates applied to one document, as a room applies a client's stream:
//! out of order (so yrs keeps some pending and merges later ones into them), some mutated, and
//! the same updates merged (`Update::merge_updates`) into a second document. Structure-aware:
//! the updates come from real edits of simulated clients (inserts, deletions, map writes),
//! then some are mutated at a byte the input picks or by field (the first block's client, clock,
//! info byte or origin set to a small value, so updates reuse each other's ids), beside the
//! plain byte mutation libFuzzer does to the input itself.
//!
//! Every update goes through the walk and the admission rules (`protocol::admission`) as in a
//! room, and some are sent again whole (a client's whole state, as a reconnect's Step2 that
//! races its updates), so the same ids arrive twice with the same content.
//!
//! Must hold: no panic escapes `bounded::apply` (yrs' are contained as errors); the admission
//! rules never refuse an unmutated sequence; when nothing was mutated the document converges to
//! what a reference document that applied them in order holds, whatever the delivery order;
//! whatever yrs encodes passes the walk. Under AddressSanitizer (cargo fuzz's default) a
//! use-after-free inside yrs aborts.
#![no_main]

use collab_server::protocol::admission::{Admission, Extent, Offence};
use collab_server::protocol::bounded;
use libfuzzer_sys::fuzz_target;
use yrs::updates::decoder::Decode;
use yrs::types::ToJson;
use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

/// Reads the input as a small program; every read past the end is 0.
struct Program<'a> {
    data: &'a [u8],
    at: usize,
}

impl Program<'_> {
    fn byte(&mut self) -> u8 {
        let byte = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        byte
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { usize::from(self.byte()) % n }
    }
}

/// One edit of client `doc`, as the update it produces.
fn edit(doc: &Doc, program: &mut Program<'_>) -> Vec<u8> {
    let text = doc.get_or_insert_text("t");
    let map = doc.get_or_insert_map("m");
    let before = doc.transact().state_vector();
    {
        let mut txn = doc.transact_mut();
        let len = text.len(&txn) as usize;
        match program.below(3) {
            0 => {
                let at = program.below(len + 1) as u32;
                let piece: String = (0..1 + program.below(4))
                    .map(|_| char::from(b'a' + program.below(26) as u8))
                    .collect();
                text.insert(&mut txn, at, &piece);
            }
            1 if len > 0 => {
                let at = program.below(len);
                let count = 1 + program.below(len - at);
                text.remove_range(&mut txn, at as u32, count as u32);
            }
            _ => {
                let key = format!("k{}", program.below(3));
                map.insert(&mut txn, key, i64::from(program.byte()));
            }
        }
    }
    doc.transact().encode_state_as_update_v1(&before)
}

/// What became of one update.
#[derive(PartialEq)]
enum Outcome {
    /// Applied, or held until what it needs arrives (released by a later update).
    Admitted,
    /// Refused by the walk or the admission rules: yrs never saw it.
    Refused,
    /// Failed inside yrs (a contained panic or an error).
    Failed,
}

/// Offers `bytes` as a room does: walk, admission (held or applied), yrs.
fn apply(doc: &Doc, admission: &mut Admission, bytes: &[u8]) -> Outcome {
    let Ok(spans) = bounded::spans(bytes) else {
        return Outcome::Refused;
    };
    let mut txn = doc.transact_mut();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = admission.offer(&mut txn, &spans, bytes, Extent::Everything, 0);
    std::panic::set_hook(hook);
    match outcome {
        Ok(_) => Outcome::Admitted,
        Err(Offence::Refused(_)) => Outcome::Refused,
        Err(Offence::Failed { .. }) => Outcome::Failed,
    }
}

/// The text, and the map's entries in key order (a map's JSON lists them in hash order).
fn contents(doc: &Doc) -> (String, Vec<(String, String)>) {
    let txn = doc.transact();
    let text = txn
        .get_text("t")
        .map(|t| t.get_string(&txn))
        .unwrap_or_default();
    let mut map: Vec<(String, String)> = match txn.get_map("m").map(|m| m.to_json(&txn)) {
        Some(yrs::Any::Map(entries)) => entries
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    map.sort();
    (text, map)
}

fuzz_target!(|data: &[u8]| {
    let mut program = Program { data, at: 0 };
    let clients: Vec<Doc> = (0..1 + program.below(3))
        .map(|i| Doc::with_client_id(1 + i as u64))
        .collect();
    let count = 2 + program.below(7);
    let mut updates = Vec::with_capacity(count);
    for _ in 0..count {
        let client = &clients[program.below(clients.len())];
        // Sometimes a client first hears of another's edits (so updates depend on each other).
        if program.below(4) == 0 {
            let other = &clients[program.below(clients.len())];
            let state = other
                .transact()
                .encode_state_as_update_v1(&client.transact().state_vector());
            if let Ok(update) = Update::decode_v1(&state) {
                let _ = client.transact_mut().apply_update(update);
            }
        }
        updates.push(edit(client, &mut program));
        // Sometimes a client's whole state again: ids already sent, with the same content.
        if program.below(6) == 0 {
            let client = &clients[program.below(clients.len())];
            updates.push(
                client
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            );
        }
    }
    // Mutations: a byte of an update overwritten, or an update replaced by a truncated one.
    let mut mutated = false;
    for _ in 0..program.below(3) {
        let which = program.below(updates.len());
        let update = &mut updates[which];
        if update.is_empty() {
            continue;
        }
        match program.below(3) {
            0 => {
                let at = program.below(update.len());
                update[at] = program.byte();
            }
            1 => {
                let keep = program.below(update.len());
                update.truncate(keep);
            }
            _ => {
                // By field: the first block's client, clock, info byte or origin id (bytes
                // 2–6 while every varint before them is one byte) set to a small value, so
                // that updates reuse each other's ids with other content.
                let at = 2 + program.below(5);
                if update.len() > at && update[..=at].iter().all(|&b| b < 0x80) {
                    update[at] = program.below(6) as u8;
                }
            }
        }
        mutated = true;
    }
    // The order the updates are delivered in (below), drawn now so it can be shown first.
    let mut order: Vec<usize> = (0..updates.len()).collect();
    for i in (1..order.len()).rev() {
        let j = program.below(i + 1);
        order.swap(i, j);
    }
    // `UPDATE_SEQUENCE_DUMP=1 update_sequence INPUT` shows a case: the updates and the order.
    if std::env::var_os("UPDATE_SEQUENCE_DUMP").is_some() {
        for (i, update) in updates.iter().enumerate() {
            let hex: String = update.iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("update {i}: {hex}");
        }
        eprintln!("order: {order:?}, mutated: {mutated}");
    }
    let reference = Doc::new();
    let mut admission = Admission::default();
    let mut all_applied = true;
    for update in &updates {
        let outcome = apply(&reference, &mut admission, update);
        assert!(
            mutated || outcome != Outcome::Refused,
            "an unmutated update was refused (in order)"
        );
        all_applied &= outcome == Outcome::Admitted;
    }
    all_applied &= !admission.is_holding();
    // The same updates in that order: later ones first leaves earlier dependencies missing,
    // so yrs keeps them pending and merges the rest into them.
    let shuffled = Doc::new();
    let mut admission = Admission::default();
    for &i in &order {
        let outcome = apply(&shuffled, &mut admission, &updates[i]);
        assert!(
            mutated || outcome != Outcome::Refused,
            "an unmutated update was refused (out of order)"
        );
        all_applied &= outcome == Outcome::Admitted;
    }
    all_applied &= !admission.is_holding();
    // And merged into one update first, as a provider's batch or our own compaction does.
    let merged = Doc::new();
    if updates.iter().all(|u| bounded::check_update(u).is_ok()) {
        let refs: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let merged_bytes = std::panic::catch_unwind(|| yrs::merge_updates_v1(&refs));
        std::panic::set_hook(hook);
        if let Ok(Ok(bytes)) = merged_bytes {
            let mut admission = Admission::default();
            all_applied &= apply(&merged, &mut admission, &bytes) == Outcome::Admitted;
            all_applied &= !admission.is_holding();
        }
    }
    for doc in [&reference, &shuffled, &merged] {
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        if let Err(error) = bounded::check_update(&state) {
            panic!("the walk refuses an update yrs itself encoded: {error}\nstate: {state:02x?}");
        }
    }
    // yrs 0.28.1 alone can leave a pending update stuck when the blocks it waits for are
    // inside it (fuzz/regressions/update_sequence/stuck-pending-order); `bounded::apply`
    // integrates such a pending update again, so the order must not change the document.
    if !mutated && all_applied {
        assert_eq!(
            contents(&shuffled),
            contents(&reference),
            "the delivery order changed the document"
        );
    }
});
