//! The payload of every message on the Redis relay, as `@hocuspocus/extension-redis` lays it
//! out: `[u8 identifier length][identifier][Hocuspocus frame]`. The frame's address is always
//! the plain document name. Pure functions, like `protocol`.

/// Identifiers longer than this cannot be framed (their length is one byte).
pub const MAX_IDENTIFIER_BYTES: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("empty relay message")]
    Empty,
    #[error("relay message shorter than its identifier")]
    Truncated,
    #[error("relay identifier is not UTF-8")]
    Identifier,
}

/// Frames `frame` as sent by `identifier` (at most [`MAX_IDENTIFIER_BYTES`], checked by the
/// configuration).
pub fn encode(identifier: &str, frame: &[u8]) -> Vec<u8> {
    let id = &identifier.as_bytes()[..identifier.len().min(MAX_IDENTIFIER_BYTES)];
    let mut out = Vec::with_capacity(1 + id.len() + frame.len());
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(frame);
    out
}

/// Splits a relay message into its sender's identifier and the frame.
pub fn decode(bytes: &[u8]) -> Result<(&str, &[u8]), EnvelopeError> {
    let (&length, rest) = bytes.split_first().ok_or(EnvelopeError::Empty)?;
    let length = usize::from(length);
    if rest.len() < length {
        return Err(EnvelopeError::Truncated);
    }
    let (identifier, frame) = rest.split_at(length);
    let identifier = std::str::from_utf8(identifier).map_err(|_| EnvelopeError::Identifier)?;
    Ok((identifier, frame))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn matches_the_captured_node_layout() {
        // Captured from @hocuspocus/extension-redis: instance "node-31001", doc "r1", Sync Step1.
        let captured = b"\x0anode-31001\x02r1\x00\x00\x01\x00";
        let (identifier, frame) = decode(captured).expect("decodes");
        assert_eq!(identifier, "node-31001");
        assert_eq!(frame, b"\x02r1\x00\x00\x01\x00");
        assert_eq!(encode(identifier, frame), captured.to_vec());
    }

    #[test]
    fn short_and_empty_messages_are_errors() {
        assert_eq!(decode(b""), Err(EnvelopeError::Empty));
        assert_eq!(decode(b"\x05abc"), Err(EnvelopeError::Truncated));
        assert_eq!(decode(b"\x02\xff\xfe"), Err(EnvelopeError::Identifier));
        assert_eq!(decode(b"\x00"), Ok(("", &b""[..])));
    }

    proptest! {
        #[test]
        fn round_trips(identifier in "\\PC{0,40}", frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(identifier.len() <= MAX_IDENTIFIER_BYTES);
            let encoded = encode(&identifier, &frame);
            prop_assert_eq!(decode(&encoded), Ok((identifier.as_str(), frame.as_slice())));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
        }
    }
}
