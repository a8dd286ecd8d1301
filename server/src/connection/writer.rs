//! Writes one socket's outbox to its WebSocket sink: batches of frames, one flush per batch,
//! a send timeout on every write, and the close handshake on the way out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;

use crate::outbox::{CloseReason, Outbox, close_code, truncate_reason};

/// Frames written before one flush.
const WRITE_BATCH: usize = 64;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One write that did not complete: the socket failed, or made no progress in time.
enum WriteFailed {
    Socket,
    Timeout,
}

/// Runs one sink operation within the send timeout.
async fn within<F>(timeout: Duration, operation: F) -> Result<(), WriteFailed>
where
    F: Future<Output = Result<(), axum::Error>>,
{
    match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteFailed::Socket),
        Err(_) => Err(WriteFailed::Timeout),
    }
}

/// Drains the queue onto the socket until the outbox is closed, then sends the close frame.
/// A write that fails or stalls past the send timeout closes the outbox, which ends the
/// socket's read side too.
pub async fn write_loop(mut sink: SplitSink<WebSocket, WsMessage>, outbox: Outbox) {
    let shared = outbox.shared.clone();
    let timeout = shared.limits.send_timeout;
    let outcome: Result<(), WriteFailed> = 'write: loop {
        tokio::select! {
            biased;
            _ = shared.kill.cancelled() => break Ok(()),
            _ = shared.ready.notified() => {
                if shared.ping.swap(false, Ordering::Relaxed)
                    && let Err(failed) = within(timeout, sink.send(WsMessage::Ping(Bytes::new()))).await
                {
                    break Err(failed);
                }
                let (mut bytes, mut written, mut unflushed) = (0, 0, 0);
                while let Some(frame) = outbox.pop() {
                    bytes += frame.len();
                    written += 1;
                    if let Err(failed) = within(timeout, sink.feed(WsMessage::Binary(frame))).await {
                        break 'write Err(failed);
                    }
                    unflushed += 1;
                    if unflushed == WRITE_BATCH {
                        if let Err(failed) = within(timeout, sink.flush()).await {
                            break 'write Err(failed);
                        }
                        unflushed = 0;
                    }
                }
                // A wake-up may find the queue already emptied by the previous round.
                if written == 0 {
                    continue;
                }
                if let Err(failed) = within(timeout, sink.flush()).await {
                    break Err(failed);
                }
                shared.metrics.bytes_out.inc_by(bytes as u64);
                outbox.mark_sent();
            }
        }
    };
    let failed = match outcome {
        Ok(()) => false,
        Err(WriteFailed::Socket) => {
            outbox.close(close_code::NORMAL, String::new());
            true
        }
        Err(WriteFailed::Timeout) => {
            shared.metrics.fanout_drops.inc();
            outbox.close(
                close_code::RESET_CONNECTION,
                "Reset Connection: send timed out".into(),
            );
            true
        }
    };
    if !failed {
        // What was queued before a close with a reason (a PermissionDenied before 1008, a
        // provider_initiated reply) still goes out; a slow consumer's backlog does not.
        let slow = outbox
            .close_reason()
            .is_some_and(|r| r.code == close_code::RESET_CONNECTION);
        if !slow {
            flush_remaining(&mut sink, &outbox).await;
        }
    }
    outbox.discard();
    // Boxed: the closing handshake's futures would otherwise size every idle writer's task.
    let finished = Box::pin(finish(sink, &outbox, failed));
    finished.await;
}

/// Frames written on the way out, at most (within [`CLOSE_TIMEOUT`] in all).
const FLUSH_ON_CLOSE: usize = 16;

async fn flush_remaining(sink: &mut SplitSink<WebSocket, WsMessage>, outbox: &Outbox) {
    let flush = async {
        for _ in 0..FLUSH_ON_CLOSE {
            let Some(frame) = outbox.pop() else { break };
            if sink.feed(WsMessage::Binary(frame)).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, flush).await;
}

/// Sends the close frame (unless writing already failed) and closes the socket.
async fn finish(mut sink: SplitSink<WebSocket, WsMessage>, outbox: &Outbox, failed: bool) {
    if !failed && let Some(CloseReason { code, reason }) = outbox.close_reason() {
        outbox
            .shared
            .metrics
            .closes
            .with_label_values(&[close_label(code)])
            .inc();
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
