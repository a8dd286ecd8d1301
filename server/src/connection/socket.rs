//! The WebSocket transport (RFC 6455, server side) on the TCP stream taken from hyper's
//! upgrade: frame headers parsed and formatted by tungstenite's codec, everything around them
//! here, shaped for many mostly idle sockets and shared frames.
//!
//! - Reading: an idle socket holds no buffer. A read gets a buffer for what arrived and gives
//!   it back once every whole frame in it is handled; only a frame that is not whole yet keeps
//!   one, sized for that frame.
//! - Writing: frames go out with `writev` straight from the `Bytes` the rooms queued — the same
//!   allocation for every socket a frame goes to (a 1 MB document sent to 500 sockets is 1 MB,
//!   not 500), and nothing is copied into a per-socket buffer.
//!
//! Decoding ([`Decoder`]) is a pure function of the bytes received: property-tested below and
//! checked against a real client in `server/tests/websocket.rs`.

use std::io::{self, Cursor, IoSlice};

use bytes::Bytes;

use crate::outbox::Outgoing;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// The connection hyper hands over after the 101 response (it replays anything it read past
/// the request first).
pub type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// Splits an upgraded connection into the socket's two halves.
pub fn split(upgraded: Upgraded, max_message: usize) -> (Reader, Writer) {
    let (read, write) = tokio::io::split(upgraded);
    (
        Reader {
            stream: std::sync::Mutex::new(read),
            buffer: Vec::new(),
            start: 0,
            decoder: Decoder::new(max_message),
            eof: false,
        },
        Writer { stream: write },
    )
}

/// What an HTTP request asks of the WebSocket handshake (RFC 6455 4.2).
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Not an upgrade to WebSocket: an ordinary HTTP request.
    NotWebSocket,
    /// An upgrade this server cannot accept (a version other than 13, no key).
    Unsupported(&'static str),
    /// Accept it: the `Sec-WebSocket-Accept` value.
    Accept(String),
}

/// Checks an upgrade request's method and headers.
pub fn handshake(method: &http::Method, headers: &http::HeaderMap) -> Handshake {
    use http::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
    let has_token = |name, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != http::Method::GET || !has_token(UPGRADE, "websocket") {
        return Handshake::NotWebSocket;
    }
    if !has_token(CONNECTION, "upgrade") {
        return Handshake::Unsupported("the Connection header must include \"upgrade\"");
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Handshake::Unsupported("only WebSocket version 13 is supported");
    }
    match headers.get(SEC_WEBSOCKET_KEY) {
        Some(key) => Handshake::Accept(tungstenite::handshake::derive_accept_key(key.as_bytes())),
        None => Handshake::Unsupported("Sec-WebSocket-Key is missing"),
    }
}

/// Control frames carry at most this many payload bytes (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;
/// Each runtime thread's read buffer (what one read takes at most when no frame is in progress).
const READ_SCRATCH: usize = 64 * 1024;
/// What one read asks for at least while a frame arrives.
const READ_CHUNK: usize = 4096;
/// What one read asks for at most while a large frame arrives.
const READ_CHUNK_MAX: usize = 256 * 1024;

/// A message or control frame received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Binary(Bytes),
    /// A text message (not part of either protocol; its content is not kept).
    Text,
    Ping(Bytes),
    Pong,
    /// The peer's close frame and its status code, if it sent one.
    Close(Option<u16>),
}

/// Why a socket cannot be read any further.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// Closes with 1002.
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// Closes with 1009.
    #[error("message of {len} bytes is over the limit of {max}")]
    TooBig { len: u64, max: usize },
    /// Closes with 1007.
    #[error("close reason is not UTF-8")]
    InvalidUtf8,
}

impl SocketError {
    /// The close code to answer with, if the peer is still there to read it.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            SocketError::Io(_) => None,
            SocketError::Protocol(_) => Some(1002),
            SocketError::TooBig { .. } => Some(1009),
            SocketError::InvalidUtf8 => Some(1007),
        }
    }
}

/// Turns received bytes into messages: unmasks, reassembles fragments, checks what RFC 6455
/// requires of a client's frames, and bounds messages by size.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// The data message being reassembled: whether it is text, and its bytes so far.
    fragments: Option<(bool, Vec<u8>)>,
    /// A close frame was decoded: nothing after it is.
    closed: bool,
}

/// What one call to [`Decoder::decode`] found at the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A message or control frame, and the bytes it took.
    Frame(Incoming, usize),
    /// A fragment that does not end its message, and the bytes it took.
    Fragment(usize),
    /// The input does not hold a whole frame: at least this many bytes are needed in all.
    NeedMore(usize),
}

impl Decoder {
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            fragments: None,
            closed: false,
        }
    }

    /// Decodes the frame at the front of `input`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, SocketError> {
        if self.closed {
            return Ok(Decoded::NeedMore(usize::MAX));
        }
        let mut cursor = Cursor::new(input);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            // The longest header is 14 bytes; fewer than that may just be an incomplete one.
            Ok(None) => return Ok(Decoded::NeedMore(input.len().max(2) + 1)),
            Err(_) => return Err(SocketError::Protocol("reserved opcode")),
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(SocketError::Protocol(
                "reserved bits set (no extension agreed)",
            ));
        }
        let Some(mask) = header.mask else {
            return Err(SocketError::Protocol("a client's frame must be masked"));
        };
        match header.opcode {
            OpCode::Control(_) => {
                if !header.is_final {
                    return Err(SocketError::Protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(SocketError::Protocol("control frame over 125 bytes"));
                }
            }
            OpCode::Data(_) => {
                let so_far = self.fragments.as_ref().map_or(0, |(_, bytes)| bytes.len());
                let total = len.saturating_add(so_far as u64);
                if total > self.max_message as u64 {
                    return Err(SocketError::TooBig {
                        len: total,
                        max: self.max_message,
                    });
                }
            }
        }
        // Within max_message (data) or 125 (control), so it fits a usize.
        let len = usize::try_from(len).map_err(|_| SocketError::Protocol("frame too long"))?;
        let start = cursor.position() as usize;
        let Some(end) = start.checked_add(len).filter(|&end| end <= input.len()) else {
            return Ok(Decoded::NeedMore(start + len));
        };
        let mut payload = input[start..end].to_vec();
        unmask(&mut payload, mask);
        let incoming = match header.opcode {
            OpCode::Data(Data::Continue) => {
                let Some((_, bytes)) = self.fragments.as_mut() else {
                    return Err(SocketError::Protocol(
                        "continuation frame without a message",
                    ));
                };
                bytes.extend_from_slice(&payload);
                if !header.is_final {
                    return Ok(Decoded::Fragment(end));
                }
                let Some((text, bytes)) = self.fragments.take() else {
                    return Err(SocketError::Protocol(
                        "continuation frame without a message",
                    ));
                };
                message(text, bytes)
            }
            OpCode::Data(data) => {
                if self.fragments.is_some() {
                    return Err(SocketError::Protocol(
                        "a new message inside a fragmented one",
                    ));
                }
                let text = matches!(data, Data::Text);
                if !header.is_final {
                    self.fragments = Some((text, payload));
                    return Ok(Decoded::Fragment(end));
                }
                message(text, payload)
            }
            OpCode::Control(Control::Close) => {
                self.closed = true;
                Incoming::Close(close_code(&payload)?)
            }
            OpCode::Control(Control::Ping) => Incoming::Ping(Bytes::from(payload)),
            OpCode::Control(Control::Pong) => Incoming::Pong,
            OpCode::Control(Control::Reserved(_)) => {
                return Err(SocketError::Protocol("reserved opcode"));
            }
        };
        Ok(Decoded::Frame(incoming, end))
    }
}

fn message(text: bool, bytes: Vec<u8>) -> Incoming {
    if text {
        Incoming::Text
    } else {
        Incoming::Binary(Bytes::from(bytes))
    }
}

/// The status code of a close frame's payload (none, or two bytes and a UTF-8 reason).
fn close_code(payload: &[u8]) -> Result<Option<u16>, SocketError> {
    match payload {
        [] => Ok(None),
        [_] => Err(SocketError::Protocol("close frame with a one-byte payload")),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !CloseCode::from(code).is_allowed() {
                return Err(SocketError::Protocol("close code not allowed on the wire"));
            }
            std::str::from_utf8(reason).map_err(|_| SocketError::InvalidUtf8)?;
            Ok(Some(code))
        }
    }
}

/// XORs `payload` with the frame's masking key, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Whole chunks of eight keep the key's phase: the rest starts at key byte 0.
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

thread_local! {
    /// Where each runtime thread reads sockets into (what arrived is copied out at once).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SCRATCH]);
}

/// One read into the thread's scratch buffer; returns what arrived (empty: end of stream).
fn read_scratch(
    stream: &mut ReadHalf<Upgraded>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<io::Result<Vec<u8>>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut buf = tokio::io::ReadBuf::new(scratch);
        match std::pin::Pin::new(stream).poll_read(cx, &mut buf) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(buf.filled().to_vec())),
            std::task::Poll::Ready(Err(error)) => std::task::Poll::Ready(Err(error)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}

/// The read half of a socket.
pub struct Reader {
    /// Never locked (only reached through `&mut self`, with `get_mut`): the mutex makes the
    /// reader `Sync` (hyper's upgraded stream is only `Send`), which the connection needs.
    stream: std::sync::Mutex<ReadHalf<Upgraded>>,
    /// Received bytes not yet decoded, from `start`; no allocation between frames.
    buffer: Vec<u8>,
    start: usize,
    decoder: Decoder,
    eof: bool,
}

impl Reader {
    /// The next message or control frame; `None` once the peer closed the TCP stream.
    /// Cancel-safe: what a cancelled call read stays in the buffer for the next one.
    pub async fn next(&mut self) -> Result<Option<Incoming>, SocketError> {
        loop {
            let needed = match self.decoder.decode(&self.buffer[self.start..])? {
                Decoded::Frame(incoming, used) => {
                    self.consume(used);
                    return Ok(Some(incoming));
                }
                Decoded::Fragment(used) => {
                    self.consume(used);
                    continue;
                }
                Decoded::NeedMore(needed) => needed,
            };
            if self.eof {
                return Ok(None);
            }
            let stream = self
                .stream
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.buffer.is_empty() {
                // No frame in progress: read into the thread's scratch buffer and keep only what
                // arrived, in an allocation of its size (given back once decoded). A buffer per
                // socket, or one of a fixed size per read, would cost every socket memory
                // (glibc keeps what such buffers leave between the long-lived allocations).
                let received = std::future::poll_fn(|cx| read_scratch(stream, cx)).await?;
                if received.is_empty() {
                    self.eof = true;
                }
                self.buffer = received;
                continue;
            }
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            // A frame in progress: read into its buffer, sized for what it still needs.
            let wanted = needed
                .saturating_sub(self.buffer.len())
                .clamp(READ_CHUNK, READ_CHUNK_MAX);
            self.buffer.reserve(wanted);
            if stream.read_buf(&mut self.buffer).await? == 0 {
                self.eof = true;
            }
        }
    }

    fn consume(&mut self, used: usize) {
        self.start += used;
        if self.start >= self.buffer.len() {
            // Everything received is handled: the socket holds no buffer while it waits.
            self.buffer = Vec::new();
            self.start = 0;
        }
    }

    /// After the close frame went out: reads and discards until the peer closes too (or
    /// `within` passes), so that closing our end does not reset a connection with unread data
    /// (a reset can destroy the close frame before the peer reads it).
    pub async fn drain(&mut self, within: std::time::Duration) {
        let drain = async {
            let mut sink = [0u8; 512];
            let stream = self
                .stream
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while !self.eof {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => self.eof = true,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(within, drain).await;
    }
}

/// The write half of a socket.
pub struct Writer {
    stream: WriteHalf<Upgraded>,
}

/// Frames written with one `writev` at most (three slices each: header, head and body).
pub const WRITE_BATCH: usize = 64;

impl Writer {
    /// Writes each message as one binary frame, all of them with as few `writev` calls as the
    /// socket allows (at most [`WRITE_BATCH`] frames per call).
    pub async fn send(&mut self, messages: &[Outgoing]) -> io::Result<()> {
        for batch in messages.chunks(WRITE_BATCH) {
            let headers: Vec<Header> = batch
                .iter()
                .map(|message| Header::new(OpCode::Data(Data::Binary), message.len()))
                .collect();
            let mut slices = Vec::with_capacity(batch.len() * 3);
            for (header, message) in headers.iter().zip(batch) {
                slices.push(IoSlice::new(header.bytes()));
                for part in [&message.head, &message.body] {
                    if !part.is_empty() {
                        slices.push(IoSlice::new(part));
                    }
                }
            }
            self.write_all(&mut slices).await?;
        }
        Ok(())
    }

    /// Writes one control frame (at most 125 payload bytes; longer is cut).
    pub async fn control(&mut self, control: Control, payload: &[u8]) -> io::Result<()> {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD as usize)];
        let header = Header::new(OpCode::Control(control), payload.len());
        let mut slices = [IoSlice::new(header.bytes()), IoSlice::new(payload)];
        self.write_all(&mut slices).await
    }

    /// A close frame with a status code and a reason (cut to fit a control frame).
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(crate::outbox::truncate_reason(reason).as_bytes());
        self.control(Control::Close, &payload).await
    }

    /// Ends our side of the TCP stream (after the close frame).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }

    async fn write_all(&mut self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        while !slices.is_empty() {
            let written = self.stream.write_vectored(slices).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, written);
        }
        Ok(())
    }
}

/// A server frame's header: at most 10 bytes (no mask).
struct Header {
    bytes: [u8; 10],
    len: usize,
}

impl Header {
    fn new(opcode: OpCode, payload: usize) -> Self {
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let mut bytes = [0u8; 10];
        let mut out: &mut [u8] = &mut bytes;
        // Ten bytes always hold an unmasked header; formatting cannot fail.
        let _ = header.format(payload as u64, &mut out);
        let len = header.len(payload as u64);
        Self { bytes, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame: FIN flag, opcode, payload, masked with `mask`.
    fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    /// Decodes everything in `input`, as a reader does, one frame after another.
    fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Incoming>, SocketError> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            match decoder.decode(&input[at..])? {
                Decoded::Frame(incoming, used) => {
                    out.push(incoming);
                    at += used;
                }
                Decoded::Fragment(used) => at += used,
                Decoded::NeedMore(_) => return Ok(out),
            }
        }
    }

    #[test]
    fn fragments_make_one_message_and_control_frames_may_come_between_them() {
        let mask = [1, 2, 3, 4];
        let mut input = frame(false, 2, b"hel", mask);
        input.extend(frame(true, 9, b"?", mask));
        input.extend(frame(false, 0, b"lo ", mask));
        input.extend(frame(true, 0, b"world", mask));
        let decoded = decode_all(&mut Decoder::new(100), &input).expect("valid");
        assert_eq!(
            decoded,
            vec![
                Incoming::Ping(Bytes::from_static(b"?")),
                Incoming::Binary(Bytes::from_static(b"hello world")),
            ]
        );
    }

    #[test]
    fn what_a_client_must_not_send_is_a_protocol_error() {
        let mask = [9, 9, 9, 9];
        let unmasked = [0x82, 0x01, b'x'];
        let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
            ("unmasked", unmasked.to_vec(), Some(1002)),
            (
                "reserved bit",
                {
                    let mut f = frame(true, 2, b"x", mask);
                    f[0] |= 0x40;
                    f
                },
                Some(1002),
            ),
            ("reserved opcode", frame(true, 3, b"x", mask), Some(1002)),
            ("fragmented ping", frame(false, 9, b"x", mask), Some(1002)),
            ("long ping", frame(true, 9, &[0; 126], mask), Some(1002)),
            ("lone continuation", frame(true, 0, b"x", mask), Some(1002)),
            (
                "message inside a message",
                {
                    let mut f = frame(false, 2, b"x", mask);
                    f.extend(frame(true, 2, b"y", mask));
                    f
                },
                Some(1002),
            ),
            ("one-byte close", frame(true, 8, &[3], mask), Some(1002)),
            (
                "close code 1005 on the wire",
                frame(true, 8, &1005u16.to_be_bytes(), mask),
                Some(1002),
            ),
            (
                "close reason not UTF-8",
                frame(true, 8, &[3, 232, 0xff], mask),
                Some(1007),
            ),
            ("too big", frame(true, 2, &[0; 101], mask), Some(1009)),
            (
                "too big in fragments",
                {
                    let mut f = frame(false, 2, &[0; 60], mask);
                    f.extend(frame(true, 0, &[0; 41], mask));
                    f
                },
                Some(1009),
            ),
        ];
        for (what, input, code) in cases {
            let error = decode_all(&mut Decoder::new(100), &input).expect_err(what);
            assert_eq!(error.close_code(), code, "{what}: {error}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_payload_arrives() {
        // Only the header of a 1 GB frame: refused now, not buffered up to the limit.
        let mut input = vec![0x82, 0x80 | 127];
        input.extend_from_slice(&(1u64 << 30).to_be_bytes());
        input.extend_from_slice(&[1, 2, 3, 4]);
        let error = Decoder::new(1 << 20).decode(&input).expect_err("too big");
        assert_eq!(error.close_code(), Some(1009));
    }

    #[test]
    fn a_close_frame_ends_decoding() {
        let mask = [5, 6, 7, 8];
        let mut input = frame(true, 8, &[3, 232, b'b', b'y', b'e'], mask);
        input.extend(frame(true, 2, b"after", mask));
        let decoded = decode_all(&mut Decoder::new(100), &input).expect("valid");
        assert_eq!(decoded, vec![Incoming::Close(Some(1000))]);
    }

    #[test]
    fn headers_are_the_shortest_encoding_of_the_length() {
        for (len, expected) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let header = Header::new(OpCode::Data(Data::Binary), len);
            assert_eq!(header.bytes().len(), expected, "length {len}");
            assert_eq!(header.bytes()[0], 0x82);
        }
    }

    proptest! {
        /// Any split of a stream of frames into reads decodes to the same messages.
        #[test]
        fn decoding_does_not_depend_on_how_bytes_arrive(
            messages in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), 1usize..4),
                1..8,
            ),
            mask in any::<[u8; 4]>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (payload, pieces) in &messages {
                let size = payload.len().div_ceil(*pieces).max(1);
                let chunks: Vec<&[u8]> = if payload.is_empty() {
                    vec![&[]]
                } else {
                    payload.chunks(size).collect()
                };
                for (i, chunk) in chunks.iter().enumerate() {
                    let opcode = if i == 0 { 2 } else { 0 };
                    input.extend(frame(i + 1 == chunks.len(), opcode, chunk, mask));
                }
                expected.push(Incoming::Binary(Bytes::from(payload.clone())));
            }
            // As a reader: decode what has arrived, keep the rest for the next read.
            let split = cut.index(input.len() + 1);
            let mut decoder = Decoder::new(1 << 20);
            let mut decoded = Vec::new();
            let mut pending: Vec<u8> = Vec::new();
            for piece in [&input[..split], &input[split..]] {
                pending.extend_from_slice(piece);
                let mut at = 0;
                loop {
                    match decoder.decode(&pending[at..]).expect("valid") {
                        Decoded::Frame(incoming, used) => {
                            decoded.push(incoming);
                            at += used;
                        }
                        Decoded::Fragment(used) => at += used,
                        Decoded::NeedMore(_) => break,
                    }
                }
                pending.drain(..at);
            }
            prop_assert!(pending.is_empty());
            prop_assert_eq!(decoded, expected);
        }

        #[test]
        fn unmasking_is_the_bytewise_xor(payload in proptest::collection::vec(any::<u8>(), 0..64), mask in any::<[u8; 4]>()) {
            let mut fast = payload.clone();
            unmask(&mut fast, mask);
            let slow: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
            prop_assert_eq!(fast, slow);
        }
    }
}
