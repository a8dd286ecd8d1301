//! The Hocuspocus auth sub-protocol: a frame for document "doc1" with message type Auth (2),
//! followed by arbitrary bytes (sub-type, token, provider version, ...). Must not panic, and
//! what decodes must round-trip through `encode_frame`.
#![no_main]

use collab_server::protocol::{Frame, decode_frame, encode_frame, message_type};
use libfuzzer_sys::fuzz_target;

/// `[varString "doc1"][varUint 2]`.
const PREFIX: [u8; 6] = [4, b'd', b'o', b'c', b'1', message_type::AUTH];

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(PREFIX.len() + data.len());
    bytes.extend_from_slice(&PREFIX);
    bytes.extend_from_slice(data);
    let Ok(frame) = decode_frame(&bytes) else {
        return;
    };
    let Frame::Document { address, message } = &frame else {
        panic!("an Auth frame decoded as {frame:?}");
    };
    assert_eq!(address, "doc1");
    let again = decode_frame(&encode_frame(address, message))
        .unwrap_or_else(|e| panic!("re-encoded auth frame does not decode: {e}\nframe: {frame:?}"));
    assert_eq!(again, frame, "auth frame does not round-trip");
});
