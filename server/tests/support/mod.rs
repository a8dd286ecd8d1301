//! Test harness: a real server on 127.0.0.1:0 and a minimal client built on `collab_server::protocol`.
#![allow(dead_code)]

pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use collab_server::config::Config;
use collab_server::protocol::{self, Auth, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::CancellationToken;
use yrs::sync::SyncMessage;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), collab_server::Error>>,
}

impl TestServer {
    pub async fn start(args: &[&str]) -> Self {
        let mut all = vec!["collab-server", "--host", "127.0.0.1"];
        all.extend_from_slice(args);
        let config = Config::from_args(all).expect("valid test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(collab_server::run(config, listener, shutdown.clone()));
        let server = Self {
            addr,
            shutdown,
            task,
        };
        // Readiness: /health answers.
        let url = format!("http://{addr}/health");
        for _ in 0..200 {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become healthy");
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful shutdown; returns once every document is stored.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops within the deadline")
            .expect("server task")
            .expect("server result");
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "collab-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub enum Received {
    Frame(Frame),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = connect_async(url).await.expect("connect");
        Self { ws }
    }

    /// `None` while nothing listens at `url` yet.
    pub async fn try_connect(url: &str) -> Option<Self> {
        connect_async(url).await.ok().map(|(ws, _)| Self { ws })
    }

    /// Sends a frame; `false` once the socket is closed (no panic).
    pub async fn try_send(&mut self, address: &str, message: Message) -> bool {
        self.ws
            .send(WsMessage::Binary(
                protocol::encode_frame(address, &message).into(),
            ))
            .await
            .is_ok()
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMessage::Binary(bytes.into()))
            .await
            .expect("send");
    }

    pub async fn send(&mut self, address: &str, message: Message) {
        self.send_raw(protocol::encode_frame(address, &message))
            .await;
    }

    pub async fn auth(&mut self, address: &str, token: &str) {
        self.send(
            address,
            Message::Auth(Auth::Token {
                token: token.into(),
                provider_version: Some("4.8.0".into()),
            }),
        )
        .await;
    }

    pub async fn recv_raw(&mut self) -> Option<WsMessage> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait")?;
            match message {
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
                Ok(message) => return Some(message),
                Err(_) => return None,
            }
        }
    }

    pub async fn recv(&mut self) -> Received {
        match self.recv_raw().await {
            Some(WsMessage::Binary(bytes)) => {
                Received::Frame(protocol::decode_frame(&bytes).expect("server frames decode"))
            }
            Some(WsMessage::Close(frame)) => Received::Closed(frame),
            None => Received::Closed(None),
            Some(other) => panic!("unexpected message {other:?}"),
        }
    }

    /// Next frame for `address` that is not an awareness keepalive/broadcast.
    pub async fn recv_message(&mut self, address: &str) -> Message {
        loop {
            match self.recv().await {
                Received::Frame(Frame::Document {
                    address: a,
                    message,
                }) if a == address => {
                    if matches!(message, Message::Awareness(_)) {
                        continue;
                    }
                    return message;
                }
                Received::Frame(_) => continue,
                Received::Closed(frame) => panic!("socket closed: {frame:?}"),
            }
        }
    }

    /// Reads until `pred` matches a message for `address`.
    pub async fn expect<T>(
        &mut self,
        address: &str,
        mut pred: impl FnMut(&Message) -> Option<T>,
    ) -> T {
        loop {
            let message = match self.recv().await {
                Received::Frame(Frame::Document {
                    address: a,
                    message,
                }) if a == address => message,
                Received::Frame(_) => continue,
                Received::Closed(frame) => panic!("socket closed: {frame:?}"),
            };
            if let Some(found) = pred(&message) {
                return found;
            }
        }
    }

    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.recv().await {
                Received::Closed(frame) => return frame,
                Received::Frame(_) => continue,
            }
        }
    }

    /// Appends `word` to the document's text, sends the update and waits for its SyncStatus.
    pub async fn edit_acknowledged(&mut self, address: &str, ydoc: &Doc, word: &str) {
        self.send(
            address,
            Message::Sync(SyncMessage::Update(insert(ydoc, word))),
        )
        .await;
        self.expect(address, |m| {
            matches!(m, Message::SyncStatus(true)).then_some(())
        })
        .await;
    }

    /// Opens `address` on a fresh document and returns its text.
    pub async fn read_text(&mut self, address: &str, token: &str) -> String {
        let ydoc = Doc::new();
        self.open(address, token, &ydoc).await;
        text(&ydoc)
    }

    /// Auth + Step1 + answer the server's Step1; returns once the document is in sync.
    pub async fn open(&mut self, address: &str, token: &str, ydoc: &Doc) {
        self.auth(address, token).await;
        let sv = ydoc.transact().state_vector();
        self.send(address, Message::Sync(SyncMessage::SyncStep1(sv)))
            .await;
        let mut got_step2 = false;
        let mut acknowledged = false;
        while !(got_step2 && acknowledged) {
            match self.recv_message(address).await {
                Message::Auth(Auth::Authenticated { .. }) => {}
                Message::Auth(Auth::PermissionDenied { reason }) => panic!("denied: {reason}"),
                Message::Sync(SyncMessage::SyncStep1(remote)) => {
                    let diff = ydoc.transact().encode_diff_v1(&remote);
                    self.send(address, Message::Sync(SyncMessage::SyncStep2(diff)))
                        .await;
                }
                // The answer to our Step2: from here on every SyncStatus is for our edits.
                Message::SyncStatus(true) => acknowledged = true,
                Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                    apply(ydoc, &update);
                    got_step2 = true;
                }
                _ => {}
            }
        }
    }
}

pub fn apply(ydoc: &Doc, update: &[u8]) {
    let update = Update::decode_v1(update).expect("valid update");
    ydoc.transact_mut().apply_update(update).expect("applies");
}

/// Appends `s` to the Y.Text "t" and returns the update.
pub fn insert(ydoc: &Doc, s: &str) -> Vec<u8> {
    let text = ydoc.get_or_insert_text("t");
    let before = ydoc.transact().state_vector();
    {
        let mut txn = ydoc.transact_mut();
        let len = text.len(&txn);
        text.insert(&mut txn, len, s);
    }
    ydoc.transact().encode_state_as_update_v1(&before)
}

pub fn text(ydoc: &Doc) -> String {
    let text = ydoc.get_or_insert_text("t");
    text.get_string(&ydoc.transact())
}

pub fn full_state(ydoc: &Doc) -> Vec<u8> {
    ydoc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

pub fn empty_sv() -> Vec<u8> {
    StateVector::default().encode_v1()
}

/// An HS256 token for `claims`.
pub fn token(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode token")
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// A port nothing listens on (free when asked).
pub fn closed_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr").port()
}

async fn metrics_text(server: &TestServer) -> String {
    reqwest::get(server.http("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body")
}

/// Whether `/metrics` has exactly this line (a series and its value).
pub async fn has_metric_line(server: &TestServer, line: &str) -> bool {
    metrics_text(server)
        .await
        .lines()
        .any(|candidate| candidate == line)
}

/// The value of an unlabelled metric on `/metrics` (0 when absent).
pub async fn metric(server: &TestServer, name: &str) -> f64 {
    metrics_text(server)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// An awareness update of one client id.
pub fn awareness(client: u64, clock: u32, json: &str) -> Message {
    Message::Awareness(yrs::sync::AwarenessUpdate {
        clients: std::collections::HashMap::from([(
            yrs::block::ClientID::new(client),
            yrs::sync::awareness::AwarenessUpdateEntry {
                clock,
                json: std::sync::Arc::from(json),
            },
        )]),
    })
}

/// What `watcher` sees of awareness id `client` until an update of `until` arrives (a sync point
/// sent after the frames in question): every state it was shown for `client`, in order.
pub async fn awareness_seen_until(
    watcher: &mut Client,
    address: &str,
    client: u64,
    until: u64,
) -> Vec<String> {
    let mut seen = Vec::new();
    watcher
        .expect(address, |m| {
            let Message::Awareness(update) = m else {
                return None;
            };
            if let Some(entry) = update.clients.get(&yrs::block::ClientID::new(client)) {
                seen.push(entry.json.to_string());
            }
            update
                .clients
                .contains_key(&yrs::block::ClientID::new(until))
                .then_some(())
        })
        .await;
    seen
}

impl Client {
    /// Connects with extra request headers (e.g. `X-Forwarded-For` behind a trusted proxy).
    pub async fn connect_with_header(url: &str, name: &str, value: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("header name"),
            value.parse().expect("header value"),
        );
        let (ws, _) = connect_async(request).await.expect("connect");
        Self { ws }
    }
}

/// The PostgreSQL and Redis the suite may use (`COLLAB_TEST_DATABASE_URL`,
/// `COLLAB_TEST_REDIS_URL`, set by scripts/test.sh); `None`, said on stderr, without either.
pub fn database_and_redis() -> Option<(String, String)> {
    let database = std::env::var("COLLAB_TEST_DATABASE_URL").ok();
    let redis = std::env::var("COLLAB_TEST_REDIS_URL").ok();
    if database.is_none() || redis.is_none() {
        eprintln!(
            "skipped: COLLAB_TEST_DATABASE_URL and COLLAB_TEST_REDIS_URL are needed; run the suite through scripts/test.sh"
        );
    }
    Some((database?, redis?))
}
