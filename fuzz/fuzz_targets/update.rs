//! Yjs v1 updates: `protocol::bounded::check_update` and `bounded::update` on arbitrary bytes
//! must not panic (nor allocate more than the bytes justify: libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch that). An update the walk accepts and yrs decodes is applied to a
//! fresh document through `bounded::apply`, as a room does: errors (and panics inside yrs, which
//! it contains) are fine, a panic that escapes is not. What yrs then encodes must pass the walk.
#![no_main]

use collab_server::protocol::bounded;
use libfuzzer_sys::fuzz_target;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

fuzz_target!(|data: &[u8]| {
    let checked = bounded::check_update(data);
    let decoded = bounded::update(data);
    if checked.is_err() {
        assert!(
            decoded.is_err(),
            "bounded::update accepted what check_update refused"
        );
        return;
    }
    // Accepted by the walk: only now may yrs decode it, exactly as a room does.
    let Ok(update) = decoded else {
        return;
    };
    let doc = Doc::new();
    {
        let mut txn = doc.transact_mut();
        // As a room does: through `bounded::apply`, which contains a panic inside yrs as an
        // error (the room then rebuilds its document without the update). libFuzzer's panic
        // hook aborts before unwinding, so it is set aside for this call only.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let outcome = bounded::apply(&mut txn, update);
        std::panic::set_hook(hook);
        if outcome.is_err() {
            // The document may hold part of the update; the server discards such a document.
            return;
        }
    }
    // The same bytes once more, through yrs' own decoder, on the same document.
    if let Ok(update) = Update::decode_v1(data) {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let outcome = bounded::apply(&mut doc.transact_mut(), update);
        std::panic::set_hook(hook);
        if outcome.is_err() {
            return;
        }
    }
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    if let Err(error) = bounded::check_update(&state) {
        panic!("the walk refuses an update yrs itself encoded: {error}\nstate: {state:02x?}");
    }
});
