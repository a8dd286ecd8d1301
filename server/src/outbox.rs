//! The outbound side of one socket: a bounded queue drained by a writer task
//! (`connection::writer`). Rooms and connections only ever queue here; nothing in this module
//! knows about sockets.
//!
//! Rooms push frames with [`Outbox::send`], which never waits: when the queue is full — in
//! frames or in bytes — the socket is a slow consumer and is closed (4205, the client reconnects
//! and resyncs) instead of stalling the room and every other subscriber, or holding copies of a
//! large document for a client that never reads. The writer gives up on a write that makes no
//! progress for the send timeout (a peer with a zero receive window), which frees the socket's
//! task, its queue and its connection slot.
//!
//! The queue is a `VecDeque` behind a mutex with a `Notify`, not a channel: an idle socket's
//! queue holds no allocation at all (a bounded tokio channel allocates a block of slots up
//! front, about 1.5 KB per socket), and that is most sockets most of the time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// WebSocket-level pings: clients answer them with a Pong, which counts as inbound traffic (an
/// idle client with no awareness sends nothing else) and detects dead TCP connections.
pub const WS_PING_INTERVAL: Duration = Duration::from_secs(30);

/// Close codes, chosen so that every provider version reconnects where it should.
pub mod close_code {
    /// Client closed normally / provider_initiated.
    pub const NORMAL: u16 = 1000;
    /// Malformed frame (the bytes are reported in the reason).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy: y-websocket connection with a token that does not grant the room.
    pub const POLICY: u16 = 1008;
    /// Server restarting (graceful shutdown): providers reconnect, to another replica if any.
    pub const RESTART: u16 = 1012;
    /// Overload: slow consumer, too many connections/queued frames. Providers reconnect.
    pub const RESET_CONNECTION: u16 = 4205;
    /// No authenticated document before the deadline (2.x providers then stop retrying).
    pub const UNAUTHORIZED: u16 = 4401;
    /// Idle timeout.
    pub const TIMEOUT: u16 = 4408;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// How many frames and bytes one socket may have queued, and how long one write may take.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    pub frames: usize,
    /// A frame larger than this is still queued into an empty queue (a full-document reply to a
    /// client that reads), never behind others.
    pub bytes: usize,
    pub send_timeout: Duration,
}

impl OutboxLimits {
    pub fn frames(frames: usize) -> Self {
        Self {
            frames,
            bytes: usize::MAX,
            send_timeout: Duration::from_secs(30),
        }
    }
}

/// One message to write: its bytes in two parts, a head and a body, sent as one WebSocket
/// message. A body shared by many sockets (a document's whole state, an update) is one
/// allocation for all of them; the head is what differs per socket (a Hocuspocus address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub head: Bytes,
    pub body: Bytes,
}

impl Outgoing {
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Outgoing {
    fn from(body: Bytes) -> Self {
        Self {
            head: Bytes::new(),
            body,
        }
    }
}

impl From<Vec<u8>> for Outgoing {
    fn from(body: Vec<u8>) -> Self {
        Bytes::from(body).into()
    }
}

struct Queue {
    frames: VecDeque<Outgoing>,
    bytes: usize,
}

pub(crate) struct Shared {
    pub(crate) kill: CancellationToken,
    /// Mirrors `kill` for [`Outbox::send`]: a token's `is_cancelled` takes a lock, and every
    /// broadcast asks it once per subscriber.
    closing: AtomicBool,
    close: Mutex<Option<CloseReason>>,
    /// Frames for the writer, at most `limits.frames` of them and `limits.bytes` in all.
    queue: Mutex<Queue>,
    pub(crate) limits: OutboxLimits,
    /// Wakes the writer when a frame is queued into an empty queue, or a ping is wanted.
    pub(crate) ready: Notify,
    /// Set by [`Outbox::ping`]; the writer sends a WebSocket Ping.
    pub(crate) ping: AtomicBool,
    /// The payload of a peer's Ping still to be answered (only the latest is, RFC 6455 5.5.3).
    pong: Mutex<Option<Bytes>>,
    started: Instant,
    last_sent_ms: AtomicU64,
    pub(crate) metrics: Arc<Metrics>,
    /// Set when a room ended one of this socket's sessions (see [`Outbox::end_session`]).
    sessions_ended: AtomicBool,
    ended: Mutex<Vec<Arc<str>>>,
}

/// A cheap, cloneable handle for queueing frames to one socket.
#[derive(Clone)]
pub struct Outbox {
    pub(crate) shared: Arc<Shared>,
}

impl Outbox {
    pub fn new(limits: OutboxLimits, metrics: Arc<Metrics>) -> Self {
        let shared = Arc::new(Shared {
            kill: CancellationToken::new(),
            closing: AtomicBool::new(false),
            close: Mutex::new(None),
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                bytes: 0,
            }),
            limits: OutboxLimits {
                frames: limits.frames.max(1),
                ..limits
            },
            ready: Notify::new(),
            ping: AtomicBool::new(false),
            pong: Mutex::new(None),
            started: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
            metrics,
            sessions_ended: AtomicBool::new(false),
            ended: Mutex::new(Vec::new()),
        });
        Self { shared }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A room ended this socket's session on `address` (the document was deleted, or an update
    /// would make it too large): the connection forgets the session before its next frame, so
    /// a new Auth opens the document again and nothing counts against the socket's limits.
    pub fn end_session(&self, address: &str) {
        self.shared
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::from(address));
        self.shared.sessions_ended.store(true, Ordering::Release);
    }

    /// The sessions rooms ended since the last call (almost always none: one atomic load).
    pub fn take_ended_sessions(&self) -> Vec<Arc<str>> {
        if !self.shared.sessions_ended.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .shared
                .ended
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Queues a frame without waiting. A full queue closes the socket as a slow consumer;
    /// `false` when the frame was not queued (full, or the socket is closing).
    pub fn send(&self, frame: impl Into<Outgoing>) -> bool {
        let frame = frame.into();
        if self.shared.closing.load(Ordering::Acquire) {
            return false;
        }
        let limits = &self.shared.limits;
        let mut queue = self.queue();
        let over_bytes =
            !queue.frames.is_empty() && queue.bytes.saturating_add(frame.len()) > limits.bytes;
        if queue.frames.len() >= limits.frames || over_bytes {
            drop(queue);
            self.shared.metrics.fanout_drops.inc();
            self.close(
                close_code::RESET_CONNECTION,
                "Reset Connection: client too slow".into(),
            );
            return false;
        }
        let was_empty = queue.frames.is_empty();
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        drop(queue);
        // The writer empties the queue before it waits, and a notification that finds no
        // waiter is kept for the next wait: one wake-up per empty-to-non-empty is enough.
        if was_empty {
            self.shared.ready.notify_one();
        }
        true
    }

    /// Asks the writer to send a WebSocket Ping.
    pub fn ping(&self) {
        self.shared.ping.store(true, Ordering::Relaxed);
        self.shared.ready.notify_one();
    }

    /// The next queued frame, for the writer. An emptied queue gives its memory back: most
    /// sockets are idle between bursts, and an idle socket should cost nothing here.
    /// Asks the writer to answer a peer's Ping with this payload.
    pub fn pong(&self, payload: Bytes) {
        *self
            .shared
            .pong
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(payload);
        self.shared.ready.notify_one();
    }

    /// The Pong to send, if a Ping came since the last one.
    pub(crate) fn take_pong(&self) -> Option<Bytes> {
        self.shared
            .pong
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Takes up to `max` frames from the front of the queue, in order (the whole queue, and its
    /// allocation, when it holds no more than that: an idle socket's queue holds nothing).
    pub(crate) fn take(&self, max: usize) -> VecDeque<Outgoing> {
        let mut queue = self.queue();
        let taken = if queue.frames.len() <= max {
            std::mem::take(&mut queue.frames)
        } else {
            queue.frames.drain(..max).collect()
        };
        queue.bytes -= taken.iter().map(Outgoing::len).sum::<usize>();
        taken
    }

    #[cfg(test)]
    pub(crate) fn pop(&self) -> Option<Outgoing> {
        let mut queue = self.queue();
        let frame = queue.frames.pop_front();
        if let Some(frame) = &frame {
            queue.bytes -= frame.len();
        }
        if queue.frames.is_empty() && queue.frames.capacity() > 0 {
            queue.frames = VecDeque::new();
        }
        frame
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.queue().bytes
    }

    /// Drops whatever is still queued (the socket is gone).
    pub(crate) fn discard(&self) {
        let mut queue = self.queue();
        queue.frames = VecDeque::new();
        queue.bytes = 0;
    }

    /// Closes the socket with `code`; the first reason given wins.
    pub fn close(&self, code: u16, reason: String) {
        let mut close = self
            .shared
            .close
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if close.is_none() {
            *close = Some(CloseReason { code, reason });
        }
        drop(close);
        self.shared.closing.store(true, Ordering::Release);
        self.shared.kill.cancel();
    }

    /// Closes the socket because a peer sent something that cannot be processed.
    pub fn close_invalid(&self, reason: String) {
        self.close(close_code::INVALID_PAYLOAD, reason);
    }

    pub fn closed(&self) -> &CancellationToken {
        &self.shared.kill
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared
            .close
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Time since the writer last put a frame on the wire.
    pub fn idle_for(&self) -> Duration {
        let elapsed = self.shared.started.elapsed();
        let last = Duration::from_millis(self.shared.last_sent_ms.load(Ordering::Relaxed));
        elapsed.saturating_sub(last)
    }

    pub(crate) fn mark_sent(&self) {
        let now = self.shared.started.elapsed().as_millis() as u64;
        self.shared.last_sent_ms.store(now, Ordering::Relaxed);
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut at a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= 123 {
        return reason;
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_socket_as_a_slow_consumer() {
        let metrics = Arc::new(Metrics::new());
        let outbox = Outbox::new(OutboxLimits::frames(2), metrics.clone());
        assert!(outbox.send(Bytes::from_static(b"1")));
        assert!(outbox.send(Bytes::from_static(b"2")));
        assert!(!outbox.closed().is_cancelled());
        assert!(!outbox.send(Bytes::from_static(b"3")));
        assert!(outbox.closed().is_cancelled());
        assert_eq!(
            outbox.close_reason().map(|r| r.code),
            Some(close_code::RESET_CONNECTION)
        );
        assert_eq!(metrics.fanout_drops.get(), 1);
        // Further overflow is not counted twice.
        assert!(!outbox.send(Bytes::from_static(b"4")));
        assert_eq!(metrics.fanout_drops.get(), 1);
    }

    #[test]
    fn queued_bytes_are_bounded_but_one_large_frame_fits_an_empty_queue() {
        let limits = OutboxLimits {
            frames: 1000,
            bytes: 100,
            send_timeout: Duration::from_secs(1),
        };
        let outbox = Outbox::new(limits, Arc::new(Metrics::new()));
        // A full-document reply larger than the limit still goes to a client that reads.
        assert!(outbox.send(Bytes::from(vec![0; 150])));
        assert_eq!(outbox.queued_bytes(), 150);
        assert_eq!(outbox.pop().map(|f| f.len()), Some(150));
        assert_eq!(outbox.queued_bytes(), 0);
        for _ in 0..10 {
            assert!(outbox.send(Bytes::from(vec![0; 10])));
        }
        assert_eq!(outbox.queued_bytes(), 100);
        // The 101st byte makes it a slow consumer, though only 11 frames are queued.
        assert!(!outbox.send(Bytes::from(vec![0; 1])));
        assert_eq!(
            outbox.close_reason().map(|r| r.code),
            Some(close_code::RESET_CONNECTION)
        );
    }

    #[test]
    fn the_first_close_reason_wins() {
        let outbox = Outbox::new(OutboxLimits::frames(1), Arc::new(Metrics::new()));
        outbox.close_invalid("bad".into());
        outbox.close(close_code::RESTART, "later".into());
        assert_eq!(
            outbox.close_reason(),
            Some(CloseReason {
                code: close_code::INVALID_PAYLOAD,
                reason: "bad".into()
            })
        );
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let cut = truncate_reason(&reason);
        assert!(cut.len() <= 123);
        assert!(reason.starts_with(cut));
    }

    #[test]
    fn frames_leave_in_order_and_an_emptied_queue_gives_its_memory_back() {
        let outbox = Outbox::new(OutboxLimits::frames(1000), Arc::new(Metrics::new()));
        for i in 0..200u8 {
            assert!(outbox.send(Bytes::from(vec![i])));
        }
        for i in 0..200u8 {
            assert_eq!(outbox.pop().map(|f| f.body), Some(Bytes::from(vec![i])));
        }
        assert_eq!(outbox.pop(), None);
        assert_eq!(outbox.queue().frames.capacity(), 0);
        assert_eq!(outbox.queued_bytes(), 0);
        outbox.close(close_code::NORMAL, String::new());
        assert!(
            !outbox.send(Bytes::from_static(b"late")),
            "nothing is queued once closing"
        );
    }
}
