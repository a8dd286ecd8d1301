//! The WebSocket transport against RFC 6455, byte by byte over a raw TCP stream: the handshake,
//! fragmentation, control frames, the close handshake and its codes, UTF-8 in close reasons,
//! size limits and masking. Each case checks the honest client beside it is still served.

mod support;

use std::time::Duration;

use collab_server::protocol::{self, Auth, Frame, Message};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yrs::sync::SyncMessage;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A WebSocket client that writes frames exactly as the test spells them.
struct Raw {
    tcp: TcpStream,
    /// Bytes read and not yet parsed into frames.
    buffer: Vec<u8>,
}

/// A server frame: FIN, opcode, payload.
#[derive(Debug)]
struct ServerFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl Raw {
    async fn connect(server: &TestServer) -> Self {
        let (mut raw, response) = Self::handshake(server, "13").await;
        assert!(
            response.starts_with("HTTP/1.1 101"),
            "handshake refused: {response}"
        );
        // RFC 6455 4.2.2: the accept value for the key in `handshake`.
        assert!(
            response.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "wrong Sec-WebSocket-Accept: {response}"
        );
        raw.buffer.clear();
        raw
    }

    /// Sends the upgrade request (RFC 6455's example key) and reads the response head.
    async fn handshake(server: &TestServer, version: &str) -> (Self, String) {
        let address = server.ws_url().trim_start_matches("ws://").to_owned();
        let tcp = TcpStream::connect(&address).await.expect("connect");
        let mut raw = Self {
            tcp,
            buffer: Vec::new(),
        };
        let request = format!(
            "GET /raw HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        );
        raw.tcp.write_all(request.as_bytes()).await.expect("write");
        while !raw.buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            if !raw.read_more().await {
                break;
            }
        }
        let end = raw
            .buffer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(raw.buffer.len(), |p| p + 4);
        let head = String::from_utf8_lossy(&raw.buffer[..end]).into_owned();
        raw.buffer.drain(..end);
        (raw, head)
    }

    async fn read_more(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
            .await
            .expect("the server answers within the wait")
            .unwrap_or(0);
        self.buffer.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// A client frame, masked unless told otherwise.
    fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&MASK);
            out.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send(&Self::frame(fin, opcode, payload, true)).await;
    }

    /// The next frame the server sends; `None` once it closed the stream.
    async fn next(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            if !self.read_more().await {
                return None;
            }
        }
    }

    /// The next frame that is not a keepalive (server Ping, awareness).
    async fn next_significant(&mut self) -> Option<ServerFrame> {
        loop {
            let frame = self.next().await?;
            if frame.opcode == 9 {
                continue;
            }
            if frame.opcode == 2
                && let Ok(Frame::Document {
                    message: Message::Awareness(_) | Message::QueryAwareness,
                    ..
                }) = protocol::decode_frame(&frame.payload)
            {
                continue;
            }
            return Some(frame);
        }
    }

    /// Expects the server's close frame with `code`, then the end of the stream.
    async fn expect_close(&mut self, code: u16) {
        let frame = self.next_significant().await.expect("a close frame");
        assert_eq!(frame.opcode, 8, "expected a close frame, got {frame:?}");
        assert!(frame.payload.len() >= 2, "close frame without a code");
        assert_eq!(
            u16::from_be_bytes([frame.payload[0], frame.payload[1]]),
            code,
            "close reason: {}",
            String::from_utf8_lossy(&frame.payload[2..])
        );
        assert!(
            std::str::from_utf8(&frame.payload[2..]).is_ok(),
            "close reason is UTF-8"
        );
        assert!(
            self.next().await.is_none(),
            "the stream ends after the close"
        );
    }
}

fn parse_server_frame(buffer: &[u8]) -> Option<(ServerFrame, usize)> {
    let [first, second, rest @ ..] = buffer else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "a server must not mask its frames");
    assert_eq!(first & 0x70, 0, "no reserved bits without an extension");
    let (len, header) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = buffer.get(header..header + len)?.to_vec();
    Some((
        ServerFrame {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            payload,
        },
        header + len,
    ))
}

fn auth_frame(address: &str) -> Vec<u8> {
    protocol::encode_frame(
        address,
        &Message::Auth(Auth::Token {
            token: String::new(),
            provider_version: Some("4.8.0".into()),
        }),
    )
}

fn is_authenticated(frame: &ServerFrame) -> bool {
    frame.opcode == 2
        && matches!(
            protocol::decode_frame(&frame.payload),
            Ok(Frame::Document {
                message: Message::Auth(Auth::Authenticated { .. }),
                ..
            })
        )
}

async fn server(extra: &[&'static str]) -> TestServer {
    let mut args = vec!["--database-url", "memory://"];
    args.extend_from_slice(extra);
    TestServer::start(&args).await
}

/// An ordinary provider on the same server still syncs.
async fn honest_client_still_served(server: &TestServer) {
    let doc = yrs::Doc::new();
    let mut client = Client::connect(&server.ws_url()).await;
    client.open("honest", "", &doc).await;
    client.edit_acknowledged("honest", &doc, "still here").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_message_with_pings_between_its_fragments_is_one_message() {
    let server = server(&[]).await;
    let mut raw = Raw::connect(&server).await;
    let auth = auth_frame("fragmented");
    let (a, rest) = auth.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    raw.send_frame(false, 2, a).await;
    raw.send_frame(true, 9, b"between").await;
    raw.send_frame(false, 0, b).await;
    raw.send_frame(true, 0, c).await;
    // The Ping is answered with its payload; the three fragments are one Auth.
    let pong = raw.next_significant().await.expect("a pong");
    assert_eq!((pong.opcode, pong.fin), (10, true), "{pong:?}");
    assert_eq!(pong.payload, b"between");
    let reply = raw.next_significant().await.expect("a reply to the Auth");
    assert!(is_authenticated(&reply), "{reply:?}");
    // A message of 70,000 bytes in one frame (64-bit length): a whole-state update, applied.
    let doc = yrs::Doc::new();
    insert(&doc, &"x".repeat(70_000));
    let update = protocol::encode_update_frame(Some("fragmented"), &full_state(&doc));
    raw.send_frame(true, 2, &update).await;
    // Stored and applied once acknowledged.
    loop {
        let frame = raw.next_significant().await.expect("an acknowledgement");
        if let Ok(Frame::Document {
            message: Message::SyncStatus(applied),
            ..
        }) = protocol::decode_frame(&frame.payload)
        {
            assert!(applied, "the update was applied");
            break;
        }
    }
    let mut reader = Client::connect(&server.ws_url()).await;
    let copy = yrs::Doc::new();
    reader.open("fragmented", "", &copy).await;
    assert_eq!(text(&copy).len(), 70_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_a_client_must_not_send_close_only_that_socket_with_the_rfcs_code() {
    let server = server(&["--max-message-bytes", "65536"]).await;
    let mut oversized_header = vec![0x82, 0x80 | 127];
    oversized_header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    oversized_header.extend_from_slice(&MASK);
    let mut fragments_too_big = Raw::frame(false, 2, &vec![1; 40_000], true);
    fragments_too_big.extend(Raw::frame(true, 0, &vec![1; 40_000], true));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", Raw::frame(true, 2, b"\x01", false), 1002),
        (
            "reserved bit",
            {
                let mut f = Raw::frame(true, 2, b"\x01", true);
                f[0] |= 0x20;
                f
            },
            1002,
        ),
        ("reserved opcode", Raw::frame(true, 0xb, b"", true), 1002),
        ("fragmented ping", Raw::frame(false, 9, b"", true), 1002),
        (
            "ping over 125 bytes",
            Raw::frame(true, 9, &[0; 126], true),
            1002,
        ),
        (
            "continuation without a message",
            Raw::frame(true, 0, b"x", true),
            1002,
        ),
        (
            "close code 1006 on the wire",
            Raw::frame(true, 8, &1006u16.to_be_bytes(), true),
            1002,
        ),
        (
            "close reason not UTF-8",
            Raw::frame(true, 8, &[0x03, 0xe8, 0xc3, 0x28], true),
            1007,
        ),
        ("text message", Raw::frame(true, 1, b"hello", true), 1007),
        (
            "a 1 TB length, refused before its payload",
            oversized_header,
            1009,
        ),
        ("fragments over the limit together", fragments_too_big, 1009),
    ];
    for (what, bytes, code) in cases {
        let mut raw = Raw::connect(&server).await;
        raw.send(&bytes).await;
        eprintln!("case: {what}");
        raw.expect_close(code).await;
    }
    honest_client_still_served(&server).await;
    assert!(
        has_metric_line(
            &server,
            "collab_server_socket_closes_total{reason=\"protocol\"} 7"
        )
        .await,
        "the seven protocol errors are counted"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_handshake_is_answered_and_the_server_ends_the_stream() {
    let server = server(&[]).await;
    let mut raw = Raw::connect(&server).await;
    raw.send_frame(true, 2, &auth_frame("closing")).await;
    let reply = raw.next_significant().await.expect("a reply");
    assert!(is_authenticated(&reply), "{reply:?}");
    let mut close = 1001u16.to_be_bytes().to_vec();
    close.extend_from_slice("going away ✓".as_bytes());
    raw.send_frame(true, 8, &close).await;
    raw.expect_close(1000).await;
    // A close frame with no code is answered the same way.
    let mut raw = Raw::connect(&server).await;
    raw.send_frame(true, 8, b"").await;
    raw.expect_close(1000).await;
    honest_client_still_served(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_handshake_is_refused_with_the_version_we_speak() {
    let server = server(&[]).await;
    let (_, response) = Raw::handshake(&server, "8").await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{response}"
    );
    // A plain GET is still an ordinary HTTP request.
    let page = reqwest::get(server.http("/")).await.expect("GET /");
    assert_eq!(page.status(), 200);
    honest_client_still_served(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_document_reaches_many_sockets_whole() {
    // Every socket gets the same shared frame (written from one allocation): each copy whole.
    let server = server(&[]).await;
    let doc = yrs::Doc::new();
    let mut writer = Client::connect(&server.ws_url()).await;
    writer.open("large", "", &doc).await;
    for i in 0..8 {
        writer
            .edit_acknowledged("large", &doc, &format!("{i}{}", "y".repeat(40_000)))
            .await;
    }
    let expected = text(&doc);
    let mut readers = Vec::new();
    for _ in 0..20 {
        let mut raw = Raw::connect(&server).await;
        raw.send_frame(true, 2, &auth_frame("large")).await;
        readers.push(raw);
    }
    for raw in &mut readers {
        let step1 = protocol::encode_frame(
            "large",
            &Message::Sync(SyncMessage::SyncStep1(Default::default())),
        );
        raw.send_frame(true, 2, &step1).await;
    }
    for raw in &mut readers {
        let copy = yrs::Doc::new();
        loop {
            let frame = raw.next_significant().await.expect("frames");
            assert_eq!(frame.opcode, 2);
            if let Ok(Frame::Document {
                message: Message::Sync(SyncMessage::SyncStep2(update)),
                ..
            }) = protocol::decode_frame(&frame.payload)
            {
                apply(&copy, &update);
                break;
            }
        }
        assert_eq!(text(&copy), expected);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    server.stop().await;
}
