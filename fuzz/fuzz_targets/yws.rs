//! y-websocket frames: `protocol::decode_yws` on arbitrary bytes must not panic, and every
//! message it decodes must be encodable (`encode_yws`) and decode back to the same message.
#![no_main]

use collab_server::protocol::{decode_yws, encode_yws};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = decode_yws(data) else {
        return;
    };
    let encoded = encode_yws(&message)
        .unwrap_or_else(|| panic!("decoded a y-websocket message it cannot encode: {message:?}"));
    let again = decode_yws(&encoded).unwrap_or_else(|e| {
        panic!("re-encoded message does not decode: {e}\nmessage: {message:?}")
    });
    assert_eq!(again, message, "message does not round-trip");
});
