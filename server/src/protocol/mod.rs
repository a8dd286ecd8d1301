//! The wire formats, as pure functions: bytes in, values out, no sockets.
//!
//! Two framings share one message model:
//!
//! * **Hocuspocus** (`@hocuspocus/provider` 2.x–4.x): `[varString address][varUint type][payload]`.
//!   The address is the document name, or for 4.x providers with `sessionAwareness` a routing key
//!   `name + "\0" + sessionId`. 4.x also uses bare one-byte `Ping` (`09`) / `Pong` (`0a`) frames.
//! * **y-websocket**: `[varUint type][payload]`, the room comes from the URL path.
//!
//! Sync and awareness payloads are encoded and decoded by `yrs` (lib0 primitives, `SyncMessage`,
//! `AwarenessUpdate`); this module only knows the envelope and the Hocuspocus-specific messages.
//! Decoding goes through [`bounded`]: every count on the wire is checked against the bytes that
//! follow before anything is reserved, and an update's structure is checked before yrs sees it.

pub mod admission;
pub mod bounded;
pub mod envelope;

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::sync::{AwarenessUpdate, SyncMessage};
use yrs::updates::encoder::Encode;

/// Hocuspocus message type numbers (`packages/server/src/types.ts`).
pub mod message_type {
    pub const SYNC: u8 = 0;
    pub const AWARENESS: u8 = 1;
    pub const AUTH: u8 = 2;
    pub const QUERY_AWARENESS: u8 = 3;
    pub const SYNC_REPLY: u8 = 4;
    pub const STATELESS: u8 = 5;
    pub const BROADCAST_STATELESS: u8 = 6;
    pub const CLOSE: u8 = 7;
    pub const SYNC_STATUS: u8 = 8;
    pub const PING: u8 = 9;
    pub const PONG: u8 = 10;
}

/// Hocuspocus auth sub-types (`packages/common/src/auth.ts`).
mod auth_type {
    pub const TOKEN: u8 = 0;
    pub const PERMISSION_DENIED: u8 = 1;
    pub const AUTHENTICATED: u8 = 2;
}

/// y-protocols' own auth numbering, used by y-websocket: PermissionDenied is 0.
const YWS_PERMISSION_DENIED: u8 = 0;

/// Why a frame could not be decoded. The connection closes the socket with this as the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("malformed {part}: {source}")]
    Malformed {
        part: &'static str,
        #[source]
        source: ReadError,
    },
    #[error("unknown message type {0}")]
    UnknownType(u64),
    #[error("unknown auth type {0}")]
    UnknownAuthType(u64),
    #[error("unknown sync type")]
    UnknownSyncType,
    #[error("message type {0} is not accepted from clients")]
    NotFromClients(u8),
}

/// `yrs`' read error, made comparable for tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ReadError(String);

fn malformed<E: std::fmt::Display>(part: &'static str) -> impl FnOnce(E) -> DecodeError {
    move |e| DecodeError::Malformed {
        part,
        source: ReadError(e.to_string()),
    }
}

/// The Auth (2) message family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Client → server: the token, and (4.x only) the provider version.
    /// Server → client with an empty token and no version: "send me your token again".
    Token {
        token: String,
        provider_version: Option<String>,
    },
    /// Server → client: access to this document is denied.
    PermissionDenied { reason: String },
    /// Server → client: `"read-write"` or `"readonly"`.
    Authenticated { scope: Scope },
}

/// The scope a server grants a document session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ReadWrite,
    ReadOnly,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadWrite => "read-write",
            Scope::ReadOnly => "readonly",
        }
    }
}

/// One message, independent of the framing it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Sync(SyncMessage),
    Awareness(AwarenessUpdate),
    Auth(Auth),
    QueryAwareness,
    /// Server-internal (Redis relay): a Sync that must not be answered with our own Step1.
    SyncReply(SyncMessage),
    Stateless(String),
    BroadcastStateless(String),
    /// Client → server: no payload. Server → client (3.x+): a reason.
    Close(Option<String>),
    /// Server → client after every Step2/Update: `true` = applied, `false` = rejected.
    SyncStatus(bool),
}

impl Message {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Sync(SyncMessage::SyncStep1(_)) => "sync_step1",
            Message::Sync(SyncMessage::SyncStep2(_)) => "sync_step2",
            Message::Sync(SyncMessage::Update(_)) => "sync_update",
            Message::Awareness(_) => "awareness",
            Message::Auth(_) => "auth",
            Message::QueryAwareness => "query_awareness",
            Message::SyncReply(_) => "sync_reply",
            Message::Stateless(_) => "stateless",
            Message::BroadcastStateless(_) => "broadcast_stateless",
            Message::Close(_) => "close",
            Message::SyncStatus(_) => "sync_status",
        }
    }
}

/// A decoded Hocuspocus frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `[address][type][payload]`.
    Document { address: String, message: Message },
    /// Bare `09` (4.x).
    Ping,
    /// Bare `0a` (4.x).
    Pong,
}

/// The document name of an address: everything before the first `\0` (4.x session routing key).
pub fn document_name(address: &str) -> &str {
    address.split('\0').next().unwrap_or(address)
}

/// Decodes one Hocuspocus frame as sent by a client (or, for tests, by a server).
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    match bytes {
        [] => return Err(DecodeError::Empty),
        [message_type::PING] => return Ok(Frame::Ping),
        [message_type::PONG] => return Ok(Frame::Pong),
        _ => {}
    }
    let mut cursor = Cursor::new(bytes);
    let address = cursor
        .read_string()
        .map_err(malformed("address"))?
        .to_owned();
    let message = decode_message(&mut cursor, Framing::Hocuspocus)?;
    Ok(Frame::Document { address, message })
}

/// Decodes one y-websocket frame (no address).
pub fn decode_yws(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    decode_message(&mut Cursor::new(bytes), Framing::YWebsocket)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Hocuspocus,
    YWebsocket,
}

fn decode_message(cursor: &mut Cursor<'_>, framing: Framing) -> Result<Message, DecodeError> {
    let kind: u64 = cursor.read_var().map_err(malformed("message type"))?;
    let kind = u8::try_from(kind).map_err(|_| DecodeError::UnknownType(kind))?;
    let message = match (kind, framing) {
        (message_type::SYNC, _) => Message::Sync(decode_sync(cursor)?),
        (message_type::AWARENESS, _) => {
            let payload = cursor.read_buf().map_err(malformed("awareness"))?;
            Message::Awareness(
                bounded::awareness_update(payload).map_err(malformed("awareness update"))?,
            )
        }
        (message_type::AUTH, Framing::Hocuspocus) => Message::Auth(decode_auth(cursor)?),
        (message_type::AUTH, Framing::YWebsocket) => {
            let sub: u64 = cursor.read_var().map_err(malformed("auth type"))?;
            if sub != u64::from(YWS_PERMISSION_DENIED) {
                return Err(DecodeError::UnknownAuthType(sub));
            }
            let reason = cursor.read_string().map_err(malformed("auth reason"))?;
            Message::Auth(Auth::PermissionDenied {
                reason: reason.to_owned(),
            })
        }
        (message_type::QUERY_AWARENESS, _) => Message::QueryAwareness,
        (message_type::SYNC_REPLY, Framing::Hocuspocus) => Message::SyncReply(decode_sync(cursor)?),
        (message_type::STATELESS, Framing::Hocuspocus) => Message::Stateless(
            cursor
                .read_string()
                .map_err(malformed("stateless payload"))?
                .to_owned(),
        ),
        (message_type::BROADCAST_STATELESS, Framing::Hocuspocus) => Message::BroadcastStateless(
            cursor
                .read_string()
                .map_err(malformed("stateless payload"))?
                .to_owned(),
        ),
        (message_type::CLOSE, Framing::Hocuspocus) => {
            if cursor.has_content() {
                Message::Close(Some(
                    cursor
                        .read_string()
                        .map_err(malformed("close reason"))?
                        .to_owned(),
                ))
            } else {
                Message::Close(None)
            }
        }
        (message_type::SYNC_STATUS, Framing::Hocuspocus) => {
            let status: u64 = cursor.read_var().map_err(malformed("sync status"))?;
            Message::SyncStatus(status == 1)
        }
        (other, _) => return Err(DecodeError::UnknownType(u64::from(other))),
    };
    Ok(message)
}

fn decode_sync(cursor: &mut Cursor<'_>) -> Result<SyncMessage, DecodeError> {
    use yrs::sync::protocol::{MSG_SYNC_STEP_1, MSG_SYNC_STEP_2, MSG_SYNC_UPDATE};
    let kind: u64 = cursor.read_var().map_err(malformed("sync type"))?;
    let kind = u8::try_from(kind).map_err(|_| DecodeError::UnknownSyncType)?;
    if ![MSG_SYNC_STEP_1, MSG_SYNC_STEP_2, MSG_SYNC_UPDATE].contains(&kind) {
        return Err(DecodeError::UnknownSyncType);
    }
    let payload = cursor.read_buf().map_err(malformed("sync payload"))?;
    if kind == MSG_SYNC_STEP_1 {
        return Ok(SyncMessage::SyncStep1(
            bounded::state_vector(payload).map_err(malformed("state vector"))?,
        ));
    }
    // Checked here, on the socket's task: a room only ever decodes updates that walk.
    bounded::check_update(payload).map_err(malformed("update"))?;
    Ok(match kind {
        MSG_SYNC_STEP_2 => SyncMessage::SyncStep2(payload.to_vec()),
        _ => SyncMessage::Update(payload.to_vec()),
    })
}

fn encode_sync(out: &mut Vec<u8>, sync: &SyncMessage) {
    use yrs::sync::protocol::{MSG_SYNC_STEP_1, MSG_SYNC_STEP_2, MSG_SYNC_UPDATE};
    match sync {
        SyncMessage::SyncStep1(sv) => {
            out.write_var(MSG_SYNC_STEP_1);
            out.write_buf(sv.encode_v1());
        }
        SyncMessage::SyncStep2(update) => {
            out.write_var(MSG_SYNC_STEP_2);
            out.write_buf(update);
        }
        SyncMessage::Update(update) => {
            out.write_var(MSG_SYNC_UPDATE);
            out.write_buf(update);
        }
    }
}

fn decode_auth(cursor: &mut Cursor<'_>) -> Result<Auth, DecodeError> {
    let sub: u64 = cursor.read_var().map_err(malformed("auth type"))?;
    let auth = match u8::try_from(sub).unwrap_or(u8::MAX) {
        auth_type::TOKEN => {
            let token = if cursor.has_content() {
                cursor.read_string().map_err(malformed("token"))?.to_owned()
            } else {
                String::new()
            };
            let provider_version = if cursor.has_content() {
                Some(
                    cursor
                        .read_string()
                        .map_err(malformed("provider version"))?
                        .to_owned(),
                )
            } else {
                None
            };
            Auth::Token {
                token,
                provider_version,
            }
        }
        auth_type::PERMISSION_DENIED => Auth::PermissionDenied {
            reason: cursor
                .read_string()
                .map_err(malformed("auth reason"))?
                .to_owned(),
        },
        auth_type::AUTHENTICATED => {
            let scope = cursor.read_string().map_err(malformed("auth scope"))?;
            Auth::Authenticated {
                scope: if scope == Scope::ReadOnly.as_str() {
                    Scope::ReadOnly
                } else {
                    Scope::ReadWrite
                },
            }
        }
        _ => return Err(DecodeError::UnknownAuthType(sub)),
    };
    Ok(auth)
}

/// The address as a Hocuspocus frame starts with it: what [`encode_frame`] puts before the
/// message's y-websocket encoding.
pub fn encode_address(address: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(address.len() + 2);
    out.write_string(address);
    out
}

/// Encodes a Hocuspocus frame `[address][type][payload]`.
pub fn encode_frame(address: &str, message: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(address.len() + 8 + payload_hint(message));
    out.write_string(address);
    encode_message(&mut out, message, Framing::Hocuspocus);
    out
}

/// Encodes a y-websocket frame `[type][payload]`. Messages y-websocket does not know
/// (SyncStatus, Stateless, Close, …) encode to `None`.
pub fn encode_yws(message: &Message) -> Option<Vec<u8>> {
    match message {
        Message::Sync(_)
        | Message::Awareness(_)
        | Message::QueryAwareness
        | Message::Auth(Auth::PermissionDenied { .. }) => {
            let mut out = Vec::with_capacity(8 + payload_hint(message));
            encode_message(&mut out, message, Framing::YWebsocket);
            Some(out)
        }
        _ => None,
    }
}

fn payload_hint(message: &Message) -> usize {
    match message {
        Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) => u.len(),
        _ => 16,
    }
}

fn encode_message(out: &mut Vec<u8>, message: &Message, framing: Framing) {
    match message {
        Message::Sync(sync) => {
            out.write_var(message_type::SYNC);
            encode_sync(out, sync);
        }
        Message::Awareness(update) => {
            out.write_var(message_type::AWARENESS);
            out.write_buf(update.encode_v1());
        }
        Message::Auth(auth) => {
            out.write_var(message_type::AUTH);
            match (auth, framing) {
                (Auth::PermissionDenied { reason }, Framing::YWebsocket) => {
                    out.write_var(YWS_PERMISSION_DENIED);
                    out.write_string(reason);
                }
                (
                    Auth::Token {
                        token,
                        provider_version,
                    },
                    _,
                ) => {
                    out.write_var(auth_type::TOKEN);
                    if !token.is_empty() || provider_version.is_some() {
                        out.write_string(token);
                    }
                    if let Some(version) = provider_version {
                        out.write_string(version);
                    }
                }
                (Auth::PermissionDenied { reason }, Framing::Hocuspocus) => {
                    out.write_var(auth_type::PERMISSION_DENIED);
                    out.write_string(reason);
                }
                (Auth::Authenticated { scope }, _) => {
                    out.write_var(auth_type::AUTHENTICATED);
                    out.write_string(scope.as_str());
                }
            }
        }
        Message::QueryAwareness => out.write_var(message_type::QUERY_AWARENESS),
        Message::SyncReply(sync) => {
            out.write_var(message_type::SYNC_REPLY);
            encode_sync(out, sync);
        }
        Message::Stateless(payload) => {
            out.write_var(message_type::STATELESS);
            out.write_string(payload);
        }
        Message::BroadcastStateless(payload) => {
            out.write_var(message_type::BROADCAST_STATELESS);
            out.write_string(payload);
        }
        Message::Close(reason) => {
            out.write_var(message_type::CLOSE);
            if let Some(reason) = reason {
                out.write_string(reason);
            }
        }
        Message::SyncStatus(applied) => {
            out.write_var(message_type::SYNC_STATUS);
            out.write_var(u8::from(*applied));
        }
    }
}

/// Encodes a sync Update frame from raw update bytes without copying them into a `SyncMessage`.
pub fn encode_update_frame(address: Option<&str>, update: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(update.len() + address.map_or(0, str::len) + 8);
    if let Some(address) = address {
        out.write_string(address);
    }
    out.write_var(message_type::SYNC);
    out.write_var(yrs::sync::protocol::MSG_SYNC_UPDATE);
    out.write_buf(update);
    out
}

/// Encodes an awareness frame from an already encoded awareness update.
pub fn encode_awareness_frame(address: Option<&str>, encoded_update: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_update.len() + address.map_or(0, str::len) + 8);
    if let Some(address) = address {
        out.write_string(address);
    }
    out.write_var(message_type::AWARENESS);
    out.write_buf(encoded_update);
    out
}

/// The keepalive every provider version accepts: an awareness update with zero entries.
pub fn keepalive_frame(address: Option<&str>) -> Vec<u8> {
    encode_awareness_frame(address, &[0])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use proptest::prelude::*;
    use yrs::sync::awareness::AwarenessUpdateEntry;
    use yrs::{ReadTxn, StateVector, Text, Transact};

    use super::*;

    /// A real update inserting `s` into a text.
    fn text_update(s: &str) -> Vec<u8> {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, s);
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn decodes_the_captured_4x_handshake() {
        // From the protocol reference, captured v4.8.0 provider ↔ v4.7.0 server.
        let auth = decode_frame(&hex("04 646f6331 02 00 04 676f6f64 05 342e382e30")).unwrap();
        assert_eq!(
            auth,
            Frame::Document {
                address: "doc1".into(),
                message: Message::Auth(Auth::Token {
                    token: "good".into(),
                    provider_version: Some("4.8.0".into())
                })
            }
        );
        let step1 = decode_frame(&hex("04 646f6331 00 00 01 00")).unwrap();
        assert_eq!(
            step1,
            Frame::Document {
                address: "doc1".into(),
                message: Message::Sync(SyncMessage::SyncStep1(StateVector::default()))
            }
        );
        let awareness = decode_frame(&hex("04 646f6331 01 07 01 d209 00 02 7b7d")).unwrap();
        let Frame::Document {
            message: Message::Awareness(update),
            ..
        } = awareness
        else {
            panic!("not awareness: {awareness:?}")
        };
        let entry = &update.clients[&yrs::block::ClientID::new(1234)];
        assert_eq!((entry.clock, &*entry.json), (0, "{}"));
    }

    #[test]
    fn encodes_the_captured_server_replies() {
        let authenticated = encode_frame(
            "doc1",
            &Message::Auth(Auth::Authenticated {
                scope: Scope::ReadWrite,
            }),
        );
        assert_eq!(
            authenticated,
            hex("04 646f6331 02 02 0a 726561642d7772697465")
        );
        let step1 = encode_frame(
            "doc1",
            &Message::Sync(SyncMessage::SyncStep1(StateVector::default())),
        );
        assert_eq!(step1, hex("04 646f6331 00 00 01 00"));
        let step2 = encode_frame("doc1", &Message::Sync(SyncMessage::SyncStep2(vec![0, 0])));
        assert_eq!(step2, hex("04 646f6331 00 01 02 00 00"));
        assert_eq!(
            encode_frame("doc1", &Message::SyncStatus(true)),
            hex("04 646f6331 08 01")
        );
        assert_eq!(keepalive_frame(Some("doc1")), hex("04 646f6331 01 01 00"));
        assert_eq!(
            encode_frame("doc1", &Message::Close(Some("provider_initiated".into()))),
            hex("04 646f6331 07 12 70726f76696465725f696e697469617465 64")
        );
    }

    #[test]
    fn y_websocket_frames_have_no_address() {
        assert_eq!(
            decode_yws(&hex("00 00 01 00")).unwrap(),
            Message::Sync(SyncMessage::SyncStep1(StateVector::default()))
        );
        assert_eq!(
            encode_yws(&Message::Sync(SyncMessage::SyncStep2(vec![0, 0]))).unwrap(),
            hex("00 01 02 00 00")
        );
        assert_eq!(
            encode_yws(&Message::Auth(Auth::PermissionDenied {
                reason: "no".into()
            }))
            .unwrap(),
            hex("02 00 02 6e6f")
        );
        assert_eq!(encode_yws(&Message::SyncStatus(true)), None);
    }

    #[test]
    fn bare_ping_and_pong_are_recognised() {
        assert_eq!(decode_frame(&[9]).unwrap(), Frame::Ping);
        assert_eq!(decode_frame(&[10]).unwrap(), Frame::Pong);
    }

    #[test]
    fn session_routing_keys_resolve_to_the_document_name() {
        assert_eq!(document_name("S\08wrjb3tgbyw"), "S");
        assert_eq!(document_name("plain/name"), "plain/name");
    }

    #[test]
    fn auth_token_without_version_is_a_legacy_provider() {
        let frame = encode_frame(
            "d",
            &Message::Auth(Auth::Token {
                token: "t".into(),
                provider_version: None,
            }),
        );
        let Frame::Document { message, .. } = decode_frame(&frame).unwrap() else {
            panic!()
        };
        assert_eq!(
            message,
            Message::Auth(Auth::Token {
                token: "t".into(),
                provider_version: None
            })
        );
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(decode_frame(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode_frame(&hex("01 61 63")),
            Err(DecodeError::UnknownType(0x63))
        );
        assert!(matches!(
            decode_frame(&hex("05 61")),
            Err(DecodeError::Malformed {
                part: "address",
                ..
            })
        ));
        assert_eq!(
            decode_frame(&hex("01 61 00 07 00")),
            Err(DecodeError::UnknownSyncType)
        );
    }

    #[test]
    fn counts_that_the_bytes_cannot_hold_are_malformed() {
        // The 10-byte attack: Sync Step1 whose state vector claims 2^29 entries.
        for frame in [
            "01 61 00 00 05 80 80 80 80 02",
            // Awareness claiming 2^29 clients.
            "01 61 01 05 80 80 80 80 02",
            // An update claiming 2^29 clients.
            "01 61 00 02 05 80 80 80 80 02",
        ] {
            let error = decode_frame(&hex(frame)).expect_err(frame);
            assert!(
                matches!(&error, DecodeError::Malformed { source, .. } if source.0.contains("claims")),
                "{frame}: {error}"
            );
        }
        assert!(decode_yws(&hex("00 00 05 80 80 80 80 02")).is_err());
    }

    fn arb_sync() -> impl Strategy<Value = SyncMessage> {
        prop_oneof![
            proptest::collection::vec((1u64..1 << 40, 0u32..1 << 30), 0..5).prop_map(|entries| {
                let mut sv = StateVector::default();
                for (client, clock) in entries {
                    sv.set_max(yrs::block::ClientID::new(client), clock);
                }
                SyncMessage::SyncStep1(sv)
            }),
            "\\PC{0,20}".prop_map(|s| SyncMessage::SyncStep2(text_update(&s))),
            "\\PC{0,20}".prop_map(|s| SyncMessage::Update(text_update(&s))),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            arb_sync().prop_map(Message::Sync),
            arb_sync().prop_map(Message::SyncReply),
            proptest::collection::vec((1u64..1 << 50, any::<u32>(), "[a-z{}:\" ]{0,12}"), 0..4)
                .prop_map(|entries| {
                    let clients: HashMap<_, _> = entries
                        .into_iter()
                        .map(|(id, clock, json)| {
                            (
                                yrs::block::ClientID::new(id),
                                AwarenessUpdateEntry {
                                    clock,
                                    json: Arc::from(json),
                                },
                            )
                        })
                        .collect();
                    Message::Awareness(AwarenessUpdate { clients })
                }),
            ("\\PC{1,20}", proptest::option::of("[0-9.]{1,8}")).prop_map(
                |(token, provider_version)| Message::Auth(Auth::Token {
                    token,
                    provider_version
                })
            ),
            "\\PC{0,20}".prop_map(|reason| Message::Auth(Auth::PermissionDenied { reason })),
            prop_oneof![Just(Scope::ReadOnly), Just(Scope::ReadWrite)]
                .prop_map(|scope| Message::Auth(Auth::Authenticated { scope })),
            Just(Message::QueryAwareness),
            "\\PC{0,40}".prop_map(Message::Stateless),
            "\\PC{0,40}".prop_map(Message::BroadcastStateless),
            proptest::option::of("\\PC{0,20}").prop_map(Message::Close),
            any::<bool>().prop_map(Message::SyncStatus),
        ]
    }

    proptest! {
        #[test]
        fn hocuspocus_frames_round_trip(address in "\\PC{1,40}", message in arb_message()) {
            let bytes = encode_frame(&address, &message);
            let decoded = decode_frame(&bytes).expect("round trip");
            prop_assert_eq!(decoded, Frame::Document { address, message });
        }

        #[test]
        fn y_websocket_frames_round_trip(message in arb_message()) {
            if let Some(bytes) = encode_yws(&message) {
                prop_assert_eq!(decode_yws(&bytes).expect("round trip"), message);
            }
        }

        #[test]
        fn truncated_frames_never_panic(address in "\\PC{1,10}", message in arb_message(), cut in 0usize..64) {
            let bytes = encode_frame(&address, &message);
            let end = cut.min(bytes.len());
            let _ = decode_frame(&bytes[..end]);
            let _ = decode_yws(&bytes[..end]);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frame(&bytes);
            let _ = decode_yws(&bytes);
        }
    }
}
