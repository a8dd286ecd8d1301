//! One task per socket: reads frames, routes them by document, keeps auth state per document.
//!
//! The first binary frame decides the framing. Hocuspocus providers start with a non-empty
//! address (`[varString name]…`); y-websocket clients start with `00` (Sync, Step1) and name
//! their room in the URL path. A Hocuspocus socket may carry any number of documents, each with
//! its own session: pending (frames queued until its Auth is checked), denied, or active
//! (joined to the document's room).

pub mod admission;
pub mod rate;
pub mod socket;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::outbox::{
    CloseReason, Outbox, OutboxLimits, WS_PING_INTERVAL, close_code, truncate_reason,
};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use writer::write_loop;

use crate::auth::{Authenticator, Denied};
use crate::document::{Command, Framing, Identity, Registry, RoomHandle, Subscriber, SubscriberId};
use crate::metrics::{Direction, Metrics};
use crate::protocol::{self, Auth, DecodeError, Frame, Message, Scope};
use rate::{Bucket, Rate};
use socket::{Incoming, Reader, SocketError, Writer};

/// How long a closed socket waits for the peer to close its side.
const CLOSE_DRAIN: Duration = Duration::from_secs(1);
/// Longest document name accepted, in bytes.
pub const MAX_DOCUMENT_NAME_BYTES: usize = 1024;
/// Longest Hocuspocus address: a document name and a 4.x session suffix (`"\0" + sessionId`).
/// A longer one closes the socket: it would be kept and echoed back in every reply.
pub const MAX_ADDRESS_BYTES: usize = MAX_DOCUMENT_NAME_BYTES + 128;
/// Frames queued per socket for documents whose Auth is not yet checked (Hocuspocus 4.3 limits).
const MAX_PENDING_FRAMES: usize = 1000;
const MAX_PENDING_BYTES: usize = 5 * 1024 * 1024;
const MAX_PENDING_DOCUMENTS: usize = 100;
/// Denied documents remembered per socket (so their frames are ignored); one more closes it.
const MAX_DENIED_DOCUMENTS: usize = 100;

/// Everything a connection needs, shared by all connections.
pub struct Context {
    pub registry: Arc<Registry>,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub shutdown: CancellationToken,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_documents_per_connection: usize,
    pub outbox: OutboxLimits,
    pub idle_timeout: Duration,
    pub keepalive: Duration,
    /// What a token's expiry does to an open session.
    pub token_expiry: crate::config::TokenExpiry,
    /// Inbound messages per second, per socket.
    pub messages: Rate,
    /// Inbound bytes per second, per socket.
    pub bytes: Rate,
}

/// What the HTTP upgrade knew about the request.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The URL path without the leading `/` (y-websocket's room), undecoded, like y-websocket.
    pub path: String,
    /// `?token=` (y-websocket clients authenticate at upgrade time).
    pub token: Option<String>,
    /// Headers and query parameters, kept only when webhooks report them.
    pub request: Option<Arc<crate::webhook::RequestInfo>>,
    /// The client's address (behind a trusted proxy, the one it forwards).
    pub client: std::net::IpAddr,
}

/// Serves one WebSocket until it closes, then gives its connection slot (`ticket`) back.
///
/// NB: not an `async fn`. An async fn keeps its arguments for as long as it runs, beside what
/// it moves them into: the connection is built here, and the future holds only it.
pub fn serve(
    reader: Reader,
    writer: Writer,
    context: Arc<Context>,
    upgrade: Upgrade,
    ticket: admission::Ticket,
) -> impl Future<Output = ()> + Send + 'static {
    let metrics = context.metrics.clone();
    metrics.connections.inc();
    let outbox = Outbox::new(context.limits.outbox, metrics.clone());
    let now = Instant::now();
    let message_rate = Bucket::new(context.limits.messages, now);
    let byte_rate = Bucket::new(context.limits.bytes, now);
    // Also the idle check's granularity: never coarser than the idle timeout itself.
    let tick = context.limits.keepalive.min(context.limits.idle_timeout);
    let writer = tokio::spawn(write_loop(writer, outbox.clone()).in_current_span());
    let mut connection = Connection {
        context,
        outbox,
        reader,
        sessions: Sessions::default(),
        pending_frames: 0,
        pending_bytes: 0,
        message_rate,
        byte_rate,
        throttled_until: None,
        y_websocket: false,
        last_inbound: Instant::now(),
        opened: Instant::now(),
        last_ping: Instant::now(),
        request: None,
        client: upgrade.client,
        last_closed: None,
        keepalive_timer: {
            let mut timer = tokio::time::interval(tick);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer.reset();
            timer
        },
    };
    async move {
        let _ticket = ticket;
        connection.run(upgrade).await;
        // Boxed: once per socket, and larger than the idle socket's state.
        Box::pin(connection.leave_all()).await;
        connection.outbox.close(close_code::NORMAL, String::new());
        let _ = writer.await;
        connection.context.metrics.connections.dec();
        // Our close frame is out and our side shut: wait (briefly) for the peer's side to
        // close, so that dropping the socket with unread data does not reset the connection.
        Box::pin(connection.reader.drain(CLOSE_DRAIN)).await;
    }
}

enum Session {
    /// Waiting for this document's Auth frame; frames are queued in arrival order, with the
    /// bytes they arrived in (counted against the socket's pending limit).
    Pending { queue: Vec<Message>, bytes: usize },
    /// Auth failed; only a new Auth frame is considered (4.x retries on the same socket).
    Denied,
    Active {
        room: RoomHandle,
        id: SubscriberId,
        /// The token's expiry (seconds since the epoch), with `COLLAB_SERVER_TOKEN_EXPIRY=refresh`
        /// only: a fresh token is asked for then.
        expires_at: Option<u64>,
        /// When a fresh token was asked for: the session is denied [`TOKEN_REFRESH_KEEPALIVES`]
        /// keepalive intervals later unless one checks.
        refresh_asked: Option<Instant>,
    },
}

/// How long a provider has to answer the server's token request, in keepalive intervals (30 s
/// with the default 10 s interval).
const TOKEN_REFRESH_KEEPALIVES: u32 = 3;

/// A socket's document sessions by address. A vector, not a map: almost every socket carries
/// one or a few documents, and a map's smallest table costs several times a vector's entry.
#[derive(Default)]
struct Sessions(Vec<(Arc<str>, Session)>);

impl Sessions {
    fn position(&self, address: &str) -> Option<usize> {
        self.0.iter().position(|(a, _)| &**a == address)
    }

    fn get(&self, address: &str) -> Option<&Session> {
        self.position(address).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, address: &str) -> Option<&mut Session> {
        self.position(address).map(|i| &mut self.0[i].1)
    }

    fn insert(&mut self, address: Arc<str>, session: Session) {
        match self.position(&address) {
            Some(i) => self.0[i].1 = session,
            None => {
                // Most sockets carry one document: no room for more until they ask.
                self.0.reserve_exact(1);
                self.0.push((address, session));
            }
        }
    }

    fn remove(&mut self, address: &str) -> Option<Session> {
        self.position(address).map(|i| self.0.swap_remove(i).1)
    }

    fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Session)> {
        self.0.iter().map(|(a, s)| (a, s))
    }

    fn values(&self) -> impl Iterator<Item = &Session> {
        self.0.iter().map(|(_, s)| s)
    }

    fn drain(&mut self) -> impl Iterator<Item = (Arc<str>, Session)> + '_ {
        self.0.drain(..)
    }
}

struct Connection {
    context: Arc<Context>,
    outbox: Outbox,
    reader: Reader,
    /// Hocuspocus: by raw address. y-websocket: one entry under the room name.
    sessions: Sessions,
    pending_frames: usize,
    pending_bytes: usize,
    message_rate: Bucket,
    byte_rate: Bucket,
    /// Reads pause until then: the socket went over its rate.
    throttled_until: Option<Instant>,
    /// y-websocket framing (no addresses).
    y_websocket: bool,
    last_inbound: Instant,
    opened: Instant,
    /// When the writer was last asked for a WebSocket Ping.
    last_ping: Instant,
    keepalive_timer: tokio::time::Interval,
    /// The upgrade request, for webhooks (`None` without them).
    request: Option<Arc<crate::webhook::RequestInfo>>,
    /// The address the client detached last (its Close), whose stragglers are ignored.
    last_closed: Option<Arc<str>>,
    /// The client's address: its sessions' identity when their tokens name no subject.
    client: std::net::IpAddr,
}

/// What the read loop should do next.
enum Next {
    Frame(Bytes),
    Stop,
}

impl Connection {
    async fn run(&mut self, upgrade: Upgrade) {
        self.request = upgrade.request.clone();
        let Next::Frame(first) = self.next_frame().await else {
            return;
        };
        let room = upgrade.path.trim_start_matches('/');
        if first.first() == Some(&0) && !room.is_empty() {
            self.context
                .metrics
                .connections_total
                .with_label_values(&["y-websocket"])
                .inc();
            self.y_websocket = true;
            let room: Arc<str> = Arc::from(room.split('?').next().unwrap_or(room));
            let span = tracing::debug_span!("y-websocket", document = %room);
            // Boxed: its auth and join futures would otherwise size every socket's task.
            // (bound first: a temporary in an awaited expression stays in the future's state)
            let yws = Box::pin(self.run_yws(room, upgrade.token, first).instrument(span));
            yws.await;
        } else {
            self.context
                .metrics
                .connections_total
                .with_label_values(&["hocuspocus"])
                .inc();
            self.run_hocuspocus(first).await;
        }
    }

    /// Waits for the next binary frame, handling timers, shutdown and close conditions.
    async fn next_frame(&mut self) -> Next {
        if let Some(until) = self.throttled_until.take() {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = self.outbox.closed().cancelled() => return Next::Stop,
                _ = self.context.shutdown.cancelled() => {
                    self.outbox.close(close_code::RESTART, "server shutting down".into());
                    return Next::Stop;
                }
            }
            // Time spent paused by us is not the client's silence.
            self.last_inbound = Instant::now();
        }
        loop {
            // Frames already received are handled before shutdown or timers are looked at.
            tokio::select! {
                biased;
                message = self.reader.next() => match message {
                    Ok(Some(Incoming::Binary(bytes))) => {
                        let now = Instant::now();
                        self.last_inbound = now;
                        self.context.metrics.bytes_in.inc_by(bytes.len() as u64);
                        let wait = self
                            .message_rate
                            .take(1.0, now)
                            .max(self.byte_rate.take(bytes.len() as f64, now));
                        if !wait.is_zero() {
                            self.context.metrics.throttled.inc();
                            self.throttled_until = Some(now + wait);
                        }
                        return Next::Frame(bytes);
                    }
                    Ok(Some(Incoming::Text)) => {
                        self.outbox.close_invalid("text frames are not part of the protocol".into());
                        return Next::Stop;
                    }
                    Ok(Some(Incoming::Ping(payload))) => {
                        self.last_inbound = Instant::now();
                        self.outbox.pong(payload);
                    }
                    Ok(Some(Incoming::Pong)) => {
                        self.last_inbound = Instant::now();
                    }
                    Ok(Some(Incoming::Close(_)) | None) => return Next::Stop,
                    Err(error) => {
                        if let Some(code) = error.close_code() {
                            let reason = match error {
                                SocketError::TooBig { .. } => "Message Too Big".to_owned(),
                                other => other.to_string(),
                            };
                            tracing::debug!(code, %reason, "closing a socket that broke the WebSocket protocol");
                            self.outbox.close(code, reason);
                        }
                        return Next::Stop;
                    }
                },
                _ = self.outbox.closed().cancelled() => return Next::Stop,
                _ = self.context.shutdown.cancelled() => {
                    self.outbox.close(close_code::RESTART, "server shutting down".into());
                    return Next::Stop;
                }
                _ = self.keepalive_timer.tick() => {
                    self.keepalive();
                    // Boxed: rare, and it keeps the idle socket's future small.
                    Box::pin(self.expire_sessions()).await;
                }
            }
        }
    }

    /// Runs every keepalive interval: closes sockets silent for the idle timeout and sockets
    /// that never authenticated anything, and keeps idle providers from reconnecting (they
    /// expect an app message every 30 s). One timer per socket, never reset per frame.
    fn keepalive(&mut self) {
        let limits = &self.context.limits;
        if self.last_inbound.elapsed() >= limits.idle_timeout {
            self.outbox
                .close(close_code::TIMEOUT, "Connection Timeout".into());
            return;
        }
        let any_active = self
            .sessions
            .values()
            .any(|s| matches!(s, Session::Active { .. }));
        if !any_active
            && self.context.auth.is_required()
            && self.opened.elapsed() >= limits.idle_timeout
        {
            let waiting = self
                .sessions
                .values()
                .filter(|s| matches!(s, Session::Pending { .. }))
                .count();
            tracing::info!(
                documents_without_auth = waiting,
                "closing a socket that authenticated no document (4401): tokens are required; a 2.x provider configured without a token never sends one"
            );
            self.outbox
                .close(close_code::UNAUTHORIZED, "Unauthorized".into());
            return;
        }
        if self.last_ping.elapsed() >= WS_PING_INTERVAL {
            self.last_ping = Instant::now();
            self.outbox.ping();
        }
        if self.outbox.idle_for() < limits.keepalive {
            return;
        }
        for (address, session) in self.sessions.iter() {
            if matches!(session, Session::Active { .. }) {
                let address = (!self.y_websocket).then_some(&**address);
                self.outbox
                    .send(Bytes::from(protocol::keepalive_frame(address)));
            }
        }
    }

    /// The expiry a session keeps: none unless `COLLAB_SERVER_TOKEN_EXPIRY=refresh` (by default
    /// the token is checked when a document is opened, as Hocuspocus does, and the session
    /// outlives it).
    fn enforced_expiry(&self, expires_at: Option<u64>) -> Option<u64> {
        match self.context.limits.token_expiry {
            crate::config::TokenExpiry::Open => None,
            crate::config::TokenExpiry::Refresh => expires_at,
        }
    }

    /// With `COLLAB_SERVER_TOKEN_EXPIRY=refresh`: asks each session whose token expired (past
    /// the leeway) for a fresh one (`[address] 02 00`, which 3.3+ providers answer on the same
    /// socket), and denies a session still without one [`TOKEN_REFRESH_KEEPALIVES`] keepalive
    /// intervals later (4.x providers then retry with a fresh token; a y-websocket socket,
    /// which has one session, is closed and its provider reconnects with a fresh token).
    async fn expire_sessions(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let grace = self.context.limits.keepalive * TOKEN_REFRESH_KEEPALIVES;
        let mut ask = Vec::new();
        let mut expired = Vec::new();
        for (address, session) in self.sessions.iter() {
            let Session::Active {
                expires_at: Some(at),
                refresh_asked,
                ..
            } = session
            else {
                continue;
            };
            if at.saturating_add(crate::auth::LEEWAY_SECS) >= now {
                continue;
            }
            match refresh_asked {
                // y-websocket has no token request: its session ends at expiry.
                None if !self.y_websocket => ask.push(address.clone()),
                Some(asked) if asked.elapsed() < grace => {}
                _ => expired.push(address.clone()),
            }
        }
        for address in ask {
            if let Some(Session::Active { refresh_asked, .. }) = self.sessions.get_mut(&address) {
                *refresh_asked = Some(Instant::now());
            }
            // An empty token without a version encodes as the request: `02 00` and nothing else.
            let request = Message::Auth(Auth::Token {
                token: String::new(),
                provider_version: None,
            });
            let frame = protocol::encode_frame(&address, &request);
            self.context.metrics.message(Direction::Out, "auth");
            self.outbox.send(Bytes::from(frame));
        }
        for address in expired {
            if let Some(Session::Active { room, id, .. }) = self.sessions.remove(&address) {
                room.send(Command::Leave { id }).await;
            }
            let reason = Denied::Expired.to_string();
            self.deny_metrics(&Denied::Expired);
            if self.y_websocket {
                self.deny_yws(reason);
            } else {
                self.deny(address, reason);
            }
        }
    }

    /// A token sent again on an open document (the provider's `sendToken()`, or its answer to
    /// the server's token request): checked for the document; if it checks, the session's
    /// expiry moves to the new token's and the room asks the provider for anything it typed
    /// meanwhile (its Step1, which the provider answers with what the server lacks). A token
    /// that does not check denies the document, as on open.
    async fn resync_token(&mut self, address: Arc<str>, token: &str) {
        let name = protocol::document_name(&address).to_owned();
        match self.context.auth.authorize(token, &name).await {
            Ok(grant) => {
                let expiry = self.enforced_expiry(grant.expires_at);
                let Some(Session::Active {
                    room,
                    id,
                    expires_at,
                    refresh_asked,
                }) = self.sessions.get_mut(&address)
                else {
                    return;
                };
                *expires_at = expiry;
                *refresh_asked = None;
                let (room, id) = (room.clone(), *id);
                room.send(Command::RequestSync { id }).await;
            }
            Err(denied) => {
                if let Some(Session::Active { room, id, .. }) = self.sessions.remove(&address) {
                    room.send(Command::Leave { id }).await;
                }
                self.deny_metrics(&denied);
                self.deny(address, denied.to_string());
            }
        }
    }

    /// A session's identity: its token's subject, else this client's address.
    fn identity(&self, subject: Option<&str>) -> Identity {
        match subject {
            Some(subject) => Identity::Subject(Arc::from(subject)),
            None => Identity::Address(self.client),
        }
    }

    async fn leave_all(&mut self) {
        for (_, session) in self.sessions.drain() {
            if let Session::Active { room, id, .. } = session {
                room.send(Command::Leave { id }).await;
            }
        }
    }

    // ---- y-websocket ---------------------------------------------------------------------

    /// Denies a y-websocket socket its room: PermissionDenied with the reason, then a close
    /// (the socket carries that one room only).
    fn deny_yws(&self, reason: String) {
        let reply = Message::Auth(Auth::PermissionDenied {
            reason: reason.clone(),
        });
        if let Some(frame) = protocol::encode_yws(&reply) {
            self.outbox.send(Bytes::from(frame));
        }
        self.outbox.close(close_code::POLICY, reason);
    }

    async fn run_yws(&mut self, room: Arc<str>, token: Option<String>, first: Bytes) {
        if let Err(reason) = validate_name(&room, self.context.registry.store().max_name_chars()) {
            self.deny_yws(reason);
            return;
        }
        let grant = match self
            .context
            .auth
            .authorize(token.as_deref().unwrap_or(""), &room)
            .await
        {
            Ok(grant) => grant,
            Err(denied) => {
                self.deny_metrics(&denied);
                self.deny_yws(denied.to_string());
                return;
            }
        };
        self.context
            .metrics
            .auth
            .with_label_values(&["granted"])
            .inc();
        let hook = match self.hook_session(&room).await {
            Ok(hook) => hook,
            Err(reason) => {
                self.deny_yws(reason);
                return;
            }
        };
        let id = SubscriberId::next();
        let subscriber = Subscriber {
            id,
            framing: Framing::YWebsocket,
            scope: grant.scope,
            identity: self.identity(grant.subject.as_deref()),
            outbox: self.outbox.clone(),
            hook,
        };
        let handle = match self.context.registry.join(&room, subscriber).await {
            Ok(handle) => handle,
            Err(error) => {
                let reply = Message::Auth(Auth::PermissionDenied {
                    reason: error.to_string(),
                });
                if let Some(frame) = protocol::encode_yws(&reply) {
                    self.outbox.send(Bytes::from(frame));
                }
                self.outbox
                    .close(close_code::RESET_CONNECTION, error.to_string());
                return;
            }
        };
        self.sessions.insert(
            room.clone(),
            Session::Active {
                room: handle.clone(),
                id,
                expires_at: self.enforced_expiry(grant.expires_at),
                refresh_asked: None,
            },
        );
        let mut frame = first;
        loop {
            let message = match protocol::decode_yws(&frame) {
                Ok(message) => message,
                Err(error) => {
                    self.outbox
                        .close_invalid(format!("malformed frame: {error}"));
                    return;
                }
            };
            self.context.metrics.message(Direction::In, message.kind());
            let command = match message {
                Message::Sync(message) => Some(Command::Sync {
                    id,
                    message: Box::new(message),
                }),
                Message::Awareness(update) => Some(Command::Awareness {
                    id,
                    update: Box::new(update),
                }),
                _ => None,
            };
            if let Some(command) = command
                && !handle.send(command).await
            {
                return;
            }
            match self.next_frame().await {
                Next::Frame(next) => frame = next,
                Next::Stop => return,
            }
        }
    }

    // ---- Hocuspocus ----------------------------------------------------------------------

    async fn run_hocuspocus(&mut self, first: Bytes) {
        let mut frame = first;
        loop {
            match protocol::decode_frame(&frame) {
                Ok(Frame::Ping) => {
                    self.outbox
                        .send(Bytes::from_static(&[protocol::message_type::PONG]));
                }
                Ok(Frame::Pong) => {}
                Ok(Frame::Document { address, .. }) if address.len() > MAX_ADDRESS_BYTES => {
                    self.outbox.close_invalid(format!(
                        "malformed frame: address longer than {MAX_ADDRESS_BYTES} bytes"
                    ));
                    return;
                }
                Ok(Frame::Document { address, message }) => {
                    self.context.metrics.message(Direction::In, message.kind());
                    // Boxed: the idle socket's task then holds only the small read future.
                    let handled = Box::pin(self.handle(address, message, frame.len()));
                    if !handled.await {
                        return;
                    }
                }
                Err(error) => {
                    self.reject_frame(&error);
                    return;
                }
            }
            match self.next_frame().await {
                Next::Frame(next) => frame = next,
                Next::Stop => return,
            }
        }
    }

    fn reject_frame(&self, error: &DecodeError) {
        tracing::debug!(%error, "closing a socket after a malformed frame");
        self.outbox
            .close_invalid(format!("malformed frame: {error}"));
    }

    /// Handles one frame for one address. `false` stops the connection.
    async fn handle(&mut self, address: String, message: Message, size: usize) -> bool {
        for ended in self.outbox.take_ended_sessions() {
            if matches!(self.sessions.get(&ended), Some(Session::Active { .. })) {
                self.sessions.insert(ended, Session::Denied);
            }
        }
        let address: Arc<str> = Arc::from(address);
        // The keepalive is an empty awareness update, which every provider version accepts,
        // so the 4.x provider version needs no special handling (no bare Ping is ever sent).
        if let Message::Auth(Auth::Token { token, .. }) = &message {
            // Boxed: rare and deep (auth, document load); keeps every idle socket's task small.
            let authenticated = Box::pin(self.authenticate(address, token));
            return authenticated.await;
        }
        match self.sessions.get_mut(&address) {
            Some(Session::Active { room, id, .. }) => {
                let (room, id) = (room.clone(), *id);
                self.dispatch(&address, room, id, message).await
            }
            Some(Session::Pending { queue, bytes }) => {
                self.pending_frames += 1;
                self.pending_bytes += size;
                *bytes += size;
                queue.push(message);
                if self.pending_frames > MAX_PENDING_FRAMES
                    || self.pending_bytes > MAX_PENDING_BYTES
                {
                    self.outbox.close(
                        close_code::RESET_CONNECTION,
                        "Reset Connection: too many frames before authentication".into(),
                    );
                    return false;
                }
                true
            }
            Some(Session::Denied) => true,
            // A 2.x provider's `destroy()` sends an awareness removal after its Close: that
            // must not reopen the document (the room would keep a session nobody uses until
            // the socket closes). Only a sync message reopens a document just closed.
            None if self.last_closed.as_ref() == Some(&address)
                && !matches!(message, Message::Sync(_)) =>
            {
                true
            }
            None if !self.context.auth.is_required() => {
                // 2.x providers without a token never send Auth: with no authentication
                // configured the document opens on its first frame.
                let opened =
                    Box::pin(self.open(address.clone(), Scope::ReadWrite, false, None, None));
                if opened.await
                    && let Some(Session::Active { room, id, .. }) = self.sessions.get(&address)
                {
                    let (room, id) = (room.clone(), *id);
                    return self.dispatch(&address, room, id, message).await;
                }
                true
            }
            None => {
                let pending = self
                    .sessions
                    .values()
                    .filter(|s| matches!(s, Session::Pending { .. }))
                    .count();
                if pending >= MAX_PENDING_DOCUMENTS {
                    self.outbox.close(
                        close_code::RESET_CONNECTION,
                        "Reset Connection: too many documents awaiting authentication".into(),
                    );
                    return false;
                }
                self.pending_frames += 1;
                self.pending_bytes += size;
                self.sessions.insert(
                    address,
                    Session::Pending {
                        queue: vec![message],
                        bytes: size,
                    },
                );
                true
            }
        }
    }

    async fn authenticate(&mut self, address: Arc<str>, token: &str) -> bool {
        let queued = match self.sessions.remove(&address) {
            Some(active @ Session::Active { .. }) => {
                self.sessions.insert(address.clone(), active);
                Box::pin(self.resync_token(address, token)).await;
                return true;
            }
            Some(Session::Pending { queue, bytes }) => {
                self.release_pending(queue.len(), bytes);
                queue
            }
            Some(Session::Denied) | None => Vec::new(),
        };
        let name = protocol::document_name(&address).to_owned();
        if let Err(reason) = validate_name(&name, self.context.registry.store().max_name_chars()) {
            self.deny(address, reason);
            return true;
        }
        let grant = match self.context.auth.authorize(token, &name).await {
            Ok(grant) => grant,
            Err(denied) => {
                self.deny_metrics(&denied);
                tracing::debug!(document = %name, reason = %denied, "document denied");
                self.deny(address, denied.to_string());
                return true;
            }
        };
        self.context
            .metrics
            .auth
            .with_label_values(&["granted"])
            .inc();
        if !self
            .open(
                address.clone(),
                grant.scope,
                true,
                grant.expires_at,
                grant.subject.as_deref(),
            )
            .await
        {
            return true;
        }
        let Some(Session::Active { room, id, .. }) = self.sessions.get(&address) else {
            return true;
        };
        let (room, id) = (room.clone(), *id);
        for message in queued {
            if !self.dispatch(&address, room.clone(), id, message).await {
                return false;
            }
        }
        true
    }

    /// With webhooks: the session's report (its `connect` answer as context, when that event
    /// is on), or why the `connect` webhook denies it.
    async fn hook_session(
        &self,
        name: &str,
    ) -> Result<Option<Arc<crate::webhook::HookSession>>, String> {
        let Some(webhooks) = self.context.registry.webhooks() else {
            return Ok(None);
        };
        let request = self.request.clone().unwrap_or_default();
        let context = if webhooks.events().connect {
            webhooks.connect(name, &request).await?
        } else {
            serde_json::json!({})
        };
        Ok(Some(Arc::new(crate::webhook::HookSession {
            context,
            request,
        })))
    }

    /// Gives back what one pending session counted against the socket's pending limits.
    fn release_pending(&mut self, frames: usize, bytes: usize) {
        self.pending_frames = self.pending_frames.saturating_sub(frames);
        self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
    }

    fn deny_metrics(&self, denied: &Denied) {
        self.context
            .metrics
            .auth
            .with_label_values(&[denied.kind()])
            .inc();
    }

    /// Sends PermissionDenied for one address; the socket and its other documents carry on.
    /// A socket that collects more than [`MAX_DENIED_DOCUMENTS`] denials is closed instead.
    fn deny(&mut self, address: Arc<str>, reason: String) {
        let denied = self
            .sessions
            .values()
            .filter(|s| matches!(s, Session::Denied))
            .count();
        if denied >= MAX_DENIED_DOCUMENTS
            && !matches!(self.sessions.get(&address), Some(Session::Denied))
        {
            self.outbox.close(
                close_code::RESET_CONNECTION,
                "Reset Connection: too many denied documents".into(),
            );
            return;
        }
        let frame =
            protocol::encode_frame(&address, &Message::Auth(Auth::PermissionDenied { reason }));
        self.context.metrics.message(Direction::Out, "auth");
        self.outbox.send(Bytes::from(frame));
        self.sessions.insert(address, Session::Denied);
    }

    /// Joins the document of `address`; on success the session is active.
    async fn open(
        &mut self,
        address: Arc<str>,
        scope: Scope,
        announce: bool,
        expires_at: Option<u64>,
        subject: Option<&str>,
    ) -> bool {
        let name = protocol::document_name(&address).to_owned();
        if let Err(reason) = validate_name(&name, self.context.registry.store().max_name_chars()) {
            self.deny(address, reason);
            return false;
        }
        let active = self
            .sessions
            .values()
            .filter(|s| matches!(s, Session::Active { .. }))
            .count();
        if active >= self.context.limits.max_documents_per_connection {
            self.deny(
                address,
                format!(
                    "permission-denied: at most {} documents per connection",
                    self.context.limits.max_documents_per_connection
                ),
            );
            return false;
        }
        if announce {
            let frame =
                protocol::encode_frame(&address, &Message::Auth(Auth::Authenticated { scope }));
            self.context.metrics.message(Direction::Out, "auth");
            self.outbox.send(Bytes::from(frame));
        }
        let hook = match self.hook_session(&name).await {
            Ok(hook) => hook,
            Err(reason) => {
                self.deny(address, reason);
                return false;
            }
        };
        let id = SubscriberId::next();
        let subscriber = Subscriber {
            id,
            framing: Framing::hocuspocus(address.clone()),
            scope,
            identity: self.identity(subject),
            outbox: self.outbox.clone(),
            hook,
        };
        match self.context.registry.join(&name, subscriber).await {
            Ok(room) => {
                self.sessions.insert(
                    address,
                    Session::Active {
                        room,
                        id,
                        expires_at: self.enforced_expiry(expires_at),
                        refresh_asked: None,
                    },
                );
                true
            }
            Err(error) => {
                tracing::warn!(document = %name, %error, "document not served");
                self.deny(address, format!("permission-denied: {error}"));
                false
            }
        }
    }

    /// Routes a message of an active session. `false` stops the connection.
    async fn dispatch(
        &mut self,
        address: &Arc<str>,
        room: RoomHandle,
        id: SubscriberId,
        message: Message,
    ) -> bool {
        let command = match message {
            Message::Sync(message) => Command::Sync {
                id,
                message: Box::new(message),
            },
            Message::Awareness(update) => Command::Awareness {
                id,
                update: Box::new(update),
            },
            Message::Close(_) => {
                // The provider detached this document; the socket stays for the others.
                self.sessions.remove(address);
                self.last_closed = Some(address.clone());
                room.send(Command::Leave { id }).await;
                let reply = protocol::encode_frame(
                    address,
                    &Message::Close(Some("provider_initiated".into())),
                );
                self.outbox.send(Bytes::from(reply));
                return true;
            }
            // Nothing to do without server-side hooks: QueryAwareness gets no answer (as in
            // Node), Stateless has no listener, and server-internal types are ignored.
            Message::QueryAwareness
            | Message::Stateless(_)
            | Message::BroadcastStateless(_)
            | Message::SyncReply(_)
            | Message::SyncStatus(_)
            | Message::Auth(_) => return true,
        };
        if !room.send(command).await {
            // The room is gone (shutting down); the provider reconnects and resyncs.
            self.outbox
                .close(close_code::RESTART, "document closed".into());
            return false;
        }
        true
    }
}

/// A document name the server and its store can hold: not blank, at most
/// [`MAX_DOCUMENT_NAME_BYTES`], and at most `max_chars` characters where the store's table
/// limits them ([`crate::storage::DocumentStore::max_name_chars`]).
pub(crate) fn validate_name(name: &str, max_chars: Option<usize>) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("permission-denied: empty document name".into());
    }
    if name.len() > MAX_DOCUMENT_NAME_BYTES {
        return Err(format!(
            "permission-denied: document name longer than {MAX_DOCUMENT_NAME_BYTES} bytes"
        ));
    }
    if let Some(max) = max_chars
        && name.chars().count() > max
    {
        return Err(format!(
            "permission-denied: document name longer than {max} characters, the most the database's documents.name column holds"
        ));
    }
    Ok(())
}
