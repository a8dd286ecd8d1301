//! Writes one socket's outbox: batches of frames, each batch with one `writev` from the shared
//! frames (no per-socket copy), a send timeout on every write, and the close handshake on the
//! way out.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tungstenite::protocol::frame::coding::Control;

use super::socket::{WRITE_BATCH, Writer};
use crate::outbox::{CloseReason, Outbox, close_code};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One write that did not complete: the socket failed, or made no progress in time.
enum WriteFailed {
    Socket,
    Timeout,
}

/// Runs one write within the send timeout.
async fn within<F>(timeout: Duration, operation: F) -> Result<(), WriteFailed>
where
    F: Future<Output = std::io::Result<()>>,
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
pub async fn write_loop(mut writer: Writer, outbox: Outbox) {
    let shared = outbox.shared.clone();
    let timeout = shared.limits.send_timeout;
    let outcome: Result<(), WriteFailed> = loop {
        tokio::select! {
            biased;
            _ = shared.kill.cancelled() => break Ok(()),
            _ = shared.ready.notified() => {
                // Boxed: its writes and timers would otherwise size every idle socket's task.
                let written = Box::pin(write_ready(&mut writer, &outbox, timeout));
                if let Err(failed) = written.await {
                    break Err(failed);
                }
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
            flush_remaining(&mut writer, &outbox).await;
        }
    }
    outbox.discard();
    // Boxed: the closing handshake's futures would otherwise size every idle writer's task.
    let finished = Box::pin(finish(writer, &outbox, failed));
    finished.await;
}

/// Writes what is ready: a Pong owed, a Ping asked for, then every queued frame.
async fn write_ready(
    writer: &mut Writer,
    outbox: &Outbox,
    timeout: Duration,
) -> Result<(), WriteFailed> {
    if let Some(payload) = outbox.take_pong() {
        within(timeout, writer.control(Control::Pong, &payload)).await?;
    }
    if outbox.shared.ping.swap(false, Ordering::Relaxed) {
        within(timeout, writer.control(Control::Ping, &[])).await?;
    }
    let mut written = 0;
    loop {
        let mut batch = outbox.take(WRITE_BATCH);
        if batch.is_empty() {
            break;
        }
        let bytes: usize = batch.iter().map(|frame| frame.len()).sum();
        within(timeout, writer.send(batch.make_contiguous())).await?;
        outbox.shared.metrics.bytes_out.inc_by(bytes as u64);
        written += batch.len();
    }
    // A wake-up may find the queue already emptied by the previous round.
    if written > 0 {
        outbox.mark_sent();
    }
    Ok(())
}

/// Frames written on the way out, at most (within [`CLOSE_TIMEOUT`] in all).
const FLUSH_ON_CLOSE: usize = 16;

async fn flush_remaining(writer: &mut Writer, outbox: &Outbox) {
    let mut batch = outbox.take(FLUSH_ON_CLOSE);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.send(batch.make_contiguous())).await;
}

/// Sends the close frame (unless writing already failed) and ends our side of the stream.
async fn finish(mut writer: Writer, outbox: &Outbox, failed: bool) {
    if !failed && let Some(CloseReason { code, reason }) = outbox.close_reason() {
        outbox
            .shared
            .metrics
            .closes
            .with_label_values(&[close_label(code)])
            .inc();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.close(code, &reason)).await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await;
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
        1002 => "protocol",
        _ => "other",
    }
}
