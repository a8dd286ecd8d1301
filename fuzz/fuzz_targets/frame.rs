//! Hocuspocus frames: `protocol::decode_frame` on arbitrary bytes must not panic, and whatever
//! decodes must re-encode (`encode_frame`) to bytes that decode to the same frame.
#![no_main]

use collab_server::protocol::{Frame, decode_frame, encode_frame, message_type};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = decode_frame(data) else {
        return;
    };
    let encoded = match &frame {
        Frame::Document { address, message } => encode_frame(address, message),
        Frame::Ping => vec![message_type::PING],
        Frame::Pong => vec![message_type::PONG],
    };
    let again = decode_frame(&encoded)
        .unwrap_or_else(|e| panic!("re-encoded frame does not decode: {e}\nframe: {frame:?}"));
    assert_eq!(again, frame, "frame does not round-trip");
});
