//! The outbound side of one socket: a bounded queue drained by a writer task.
//!
//! Rooms push frames with [`Outbox::send`], which never waits: when the queue is full the
//! socket is a slow consumer and is closed (4205, the client reconnects and resyncs) instead of
//! stalling the room and every other subscriber.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
/// WebSocket-level pings detect dead TCP connections; providers ignore them.
const WS_PING_INTERVAL: Duration = Duration::from_secs(30);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

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

struct Shared {
    kill: CancellationToken,
    close: Mutex<Option<CloseReason>>,
    started: Instant,
    last_sent_ms: AtomicU64,
    metrics: Arc<Metrics>,
}

/// A cheap, cloneable handle for queueing frames to one socket.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

impl Outbox {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared {
            kill: CancellationToken::new(),
            close: Mutex::new(None),
            started: Instant::now(),
            last_sent_ms: AtomicU64::new(0),
            metrics,
        });
        (Self { tx, shared }, rx)
    }

    /// Queues a frame without waiting. A full queue closes the socket as a slow consumer.
    pub fn send(&self, frame: Bytes) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.shared.kill.is_cancelled() {
                    self.shared.metrics.fanout_drops.inc();
                    self.close(
                        close_code::RESET_CONNECTION,
                        "Reset Connection: client too slow".into(),
                    );
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
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

    fn mark_sent(&self) {
        let now = self.shared.started.elapsed().as_millis() as u64;
        self.shared.last_sent_ms.store(now, Ordering::Relaxed);
    }
}

/// Drains the queue onto the socket until the outbox is closed, then sends the close frame.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::Receiver<Bytes>,
    outbox: Outbox,
) {
    let kill = outbox.closed().clone();
    let metrics = outbox.shared.metrics.clone();
    let mut ping = tokio::time::interval(WS_PING_INTERVAL);
    ping.reset();
    let failed = 'write: loop {
        tokio::select! {
            biased;
            _ = kill.cancelled() => break false,
            frame = rx.recv() => {
                let Some(frame) = frame else { break false };
                let mut bytes = frame.len();
                if sink.feed(WsMessage::Binary(frame)).await.is_err() {
                    break 'write true;
                }
                for _ in 1..WRITE_BATCH {
                    let Ok(frame) = rx.try_recv() else { break };
                    bytes += frame.len();
                    if sink.feed(WsMessage::Binary(frame)).await.is_err() {
                        break 'write true;
                    }
                }
                if sink.flush().await.is_err() {
                    break true;
                }
                metrics.bytes_out.inc_by(bytes as u64);
                outbox.mark_sent();
            }
            _ = ping.tick() => {
                if sink.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    break true;
                }
            }
        }
    };
    if !failed && let Some(CloseReason { code, reason }) = outbox.close_reason() {
        metrics.closes.with_label_values(&[close_label(code)]).inc();
        let frame = CloseFrame {
            code,
            reason: truncate_reason(&reason).into(),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

fn close_label(code: u16) -> &'static str {
    match code {
        close_code::NORMAL => "normal",
        close_code::INVALID_PAYLOAD => "invalid_payload",
        close_code::POLICY => "policy",
        close_code::RESTART => "shutdown",
        close_code::RESET_CONNECTION => "reset",
        close_code::UNAUTHORIZED => "unauthorized",
        close_code::TIMEOUT => "timeout",
        1009 => "too_big",
        _ => "other",
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
        let (outbox, _rx) = Outbox::new(2, metrics.clone());
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
    fn the_first_close_reason_wins() {
        let (outbox, _rx) = Outbox::new(1, Arc::new(Metrics::new()));
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
}
