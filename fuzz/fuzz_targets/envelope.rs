//! Redis relay messages: `protocol::envelope::decode` and `open` (sender and generation) on
//! arbitrary bytes, then (as the relay's subscriber does) `protocol::decode_frame` of the frame
//! inside. Must not panic; the envelope must re-encode to the same bytes, a generation must
//! re-encode to the same bytes, and the frame must round-trip.
#![no_main]

use collab_server::protocol::envelope;
use collab_server::protocol::{Frame, decode_frame, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((identifier, frame)) = envelope::decode(data) else {
        return;
    };
    assert!(identifier.len() <= usize::from(u8::MAX));
    assert_eq!(
        envelope::encode(identifier, frame),
        data,
        "envelope does not round-trip"
    );
    let Ok(opened) = envelope::open(data) else {
        panic!("decodes but does not open");
    };
    if let Some(generation) = opened.generation
        && opened.sender.len() <= envelope::MAX_IDENTIFIER_BYTES
        && format!("{}#{generation}", opened.sender) == identifier
    {
        assert_eq!(
            envelope::encode_generation(opened.sender, generation, frame),
            data,
            "a generation does not round-trip"
        );
    }
    let Ok(decoded) = decode_frame(frame) else {
        return;
    };
    if let Frame::Document { address, message } = &decoded {
        let again = decode_frame(&encode_frame(address, message)).unwrap_or_else(|e| {
            panic!("re-encoded relayed frame does not decode: {e}\nframe: {decoded:?}")
        });
        assert_eq!(&again, &decoded, "relayed frame does not round-trip");
    }
});
