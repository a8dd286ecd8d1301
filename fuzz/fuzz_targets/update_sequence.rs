//! Sequences of 2–8 Yjs updates applied to one document, as a room applies a client's stream:
//! out of order (so yrs keeps some pending and merges later ones into them), some mutated, and
//! the same updates merged (`Update::merge_updates`) into a second document. Structure-aware:
//! the updates come from real edits of simulated clients (inserts, deletions, map writes),
//! then some are mutated at a byte the input picks, beside the plain byte mutation libFuzzer
//! does to the input itself.
//!
//! Must hold: no panic escapes `bounded::apply` (yrs' are contained as errors); when nothing was
//! mutated and every update applied, the document converges to what a reference document that
//! applied them in order holds, whatever the delivery order; whatever yrs encodes passes the
//! walk. Under AddressSanitizer (cargo fuzz's default) a use-after-free inside yrs aborts.
#![no_main]

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

/// Applies `bytes` as a room does; `false` if it was refused or failed inside yrs.
fn apply(doc: &Doc, bytes: &[u8]) -> bool {
    let Ok(update) = bounded::update(bytes) else {
        return false;
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = bounded::apply(&mut doc.transact_mut(), update);
    std::panic::set_hook(hook);
    outcome.is_ok()
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
    }
    // Mutations: a byte of an update overwritten, or an update replaced by a truncated one.
    let mut mutated = false;
    for _ in 0..program.below(3) {
        let which = program.below(updates.len());
        let update = &mut updates[which];
        if update.is_empty() {
            continue;
        }
        match program.below(2) {
            0 => {
                let at = program.below(update.len());
                update[at] = program.byte();
            }
            _ => {
                let keep = program.below(update.len());
                update.truncate(keep);
            }
        }
        mutated = true;
    }
    let reference = Doc::new();
    let mut all_applied = true;
    for update in &updates {
        all_applied &= apply(&reference, update);
    }
    // The same updates in an order the input picks: later ones first leaves earlier
    // dependencies missing, so yrs keeps them pending and merges the rest into them.
    let mut order: Vec<usize> = (0..updates.len()).collect();
    for i in (1..order.len()).rev() {
        let j = program.below(i + 1);
        order.swap(i, j);
    }
    let shuffled = Doc::new();
    for &i in &order {
        all_applied &= apply(&shuffled, &updates[i]);
    }
    // And merged into one update first, as a provider's batch or our own compaction does.
    let merged = Doc::new();
    if updates.iter().all(|u| bounded::check_update(u).is_ok()) {
        let refs: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let merged_bytes = std::panic::catch_unwind(|| yrs::merge_updates_v1(&refs));
        std::panic::set_hook(hook);
        if let Ok(Ok(bytes)) = merged_bytes {
            all_applied &= apply(&merged, &bytes);
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
    // yrs 0.28.1 can leave a pending update stuck when the blocks it waits for are inside it
    // (fuzz/regressions/update_sequence/stuck-pending-order; docs/security.md): the order then
    // changes the document. That known class is set aside here, so the campaign looks further.
    let stuck = shuffled.transact().store().pending_update().is_some();
    if !mutated && all_applied && !stuck {
        assert_eq!(
            contents(&shuffled),
            contents(&reference),
            "the delivery order changed the document"
        );
    }
});
