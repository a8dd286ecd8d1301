//! The payload of every message on the Redis relay, as `@hocuspocus/extension-redis` lays it
//! out: `[u8 identifier length][identifier][Hocuspocus frame]`. The frame's address is always
//! the plain document name. Pure functions, like `protocol`.
//!
//! Our replicas append the document's **generation** to their identifier (`<identifier>#<n>`;
//! see `docs/reliability.md`): a DELETE starts a new generation, and a message of an older one
//! is dropped, never applied or stored. Node peers compare identifiers only for equality with
//! their own, so the suffix changes nothing for them; their messages carry none and are taken as
//! of the receiving room's current generation.

/// The longest envelope identifier (its length is one byte).
const MAX_ENVELOPE_IDENTIFIER_BYTES: usize = 255;
/// `#` and the decimal digits of the largest `u64`.
const MAX_GENERATION_SUFFIX_BYTES: usize = 21;
/// Identifiers longer than this cannot be framed with a generation.
pub const MAX_IDENTIFIER_BYTES: usize = MAX_ENVELOPE_IDENTIFIER_BYTES - MAX_GENERATION_SUFFIX_BYTES;

/// A relay message taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The sending replica (a Node peer's identifier as it is).
    pub sender: &'a str,
    /// The document's generation at the sender; `None` from a peer that does not send one.
    pub generation: Option<u64>,
    pub frame: &'a [u8],
}

/// Frames `frame` as sent by `identifier` (at most [`MAX_IDENTIFIER_BYTES`], checked by the
/// configuration) for the document's `generation`.
pub fn encode_generation(identifier: &str, generation: u64, frame: &[u8]) -> Vec<u8> {
    let id = &identifier.as_bytes()[..identifier.len().min(MAX_IDENTIFIER_BYTES)];
    let suffix = format!("#{generation}");
    let mut out = Vec::with_capacity(1 + id.len() + suffix.len() + frame.len());
    out.push((id.len() + suffix.len()) as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(frame);
    out
}

/// Takes a relay message apart: its sender, the generation its identifier carries (the digits
/// after the last `#`), and the frame.
pub fn open(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (identifier, frame) = decode(bytes)?;
    let (sender, generation) = match identifier.rsplit_once('#') {
        Some((sender, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            match digits.parse() {
                Ok(generation) => (sender, Some(generation)),
                Err(_) => (identifier, None),
            }
        }
        _ => (identifier, None),
    };
    Ok(Envelope {
        sender,
        generation,
        frame,
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("empty relay message")]
    Empty,
    #[error("relay message shorter than its identifier")]
    Truncated,
    #[error("relay identifier is not UTF-8")]
    Identifier,
}

/// Frames `frame` as sent by `identifier`, as a Node peer does (no generation).
pub fn encode(identifier: &str, frame: &[u8]) -> Vec<u8> {
    let id = &identifier.as_bytes()[..identifier.len().min(MAX_ENVELOPE_IDENTIFIER_BYTES)];
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

    #[test]
    fn generations_ride_on_the_identifier() {
        let frame = b"\x02r1\x00\x00\x01\x00";
        let ours = encode_generation("replica-a", 7, frame);
        assert_eq!(&ours[..12], b"\x0breplica-a#7");
        assert_eq!(
            open(&ours),
            Ok(Envelope {
                sender: "replica-a",
                generation: Some(7),
                frame
            })
        );
        // A Node peer's identifier (no suffix), and ones that only look like it.
        for node in [
            "node-31001",
            "host#",
            "host#x1",
            "a#99999999999999999999999",
        ] {
            let theirs = encode(node, frame);
            assert_eq!(
                open(&theirs),
                Ok(Envelope {
                    sender: node,
                    generation: None,
                    frame
                }),
                "{node}"
            );
        }
        // An identifier of ours holding `#` keeps it: the generation is after the last one.
        let hashed = encode_generation("pod#3", 12, frame);
        assert_eq!(
            open(&hashed).map(|e| (e.sender, e.generation)),
            Ok(("pod#3", Some(12)))
        );
        // The longest identifier still fits with the largest generation.
        let longest = "x".repeat(MAX_IDENTIFIER_BYTES);
        let framed = encode_generation(&longest, u64::MAX, frame);
        assert_eq!(
            open(&framed).map(|e| (e.sender.len(), e.generation)),
            Ok((MAX_IDENTIFIER_BYTES, Some(u64::MAX)))
        );
    }

    proptest! {
        #[test]
        fn generations_round_trip(identifier in "\\PC{0,40}", generation in any::<u64>(), frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(identifier.len() <= MAX_IDENTIFIER_BYTES);
            let encoded = encode_generation(&identifier, generation, &frame);
            prop_assert_eq!(open(&encoded), Ok(Envelope { sender: identifier.as_str(), generation: Some(generation), frame: frame.as_slice() }));
        }

        #[test]
        fn round_trips(identifier in "\\PC{0,40}", frame in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assume!(identifier.len() <= MAX_IDENTIFIER_BYTES);
            let encoded = encode(&identifier, &frame);
            prop_assert_eq!(decode(&encoded), Ok((identifier.as_str(), frame.as_slice())));
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&bytes);
            let _ = open(&bytes);
        }
    }
}
