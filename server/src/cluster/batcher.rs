//! How relay messages are grouped into Redis pipelines.
//!
//! Redis spends its CPU per round of its event loop (a read of the publisher's socket, a write
//! of the replies, a write to every subscriber with deliveries), not per `PUBLISH`: a command
//! costs it about 0.3 µs, a round about 15 µs of system calls. The publish loop writes each
//! pipeline in one write (`publish_loop` in the parent module); this decides how much goes in
//! one. A pipeline leaves at once when the one before it left at least [`LINGER`] ago, and
//! otherwise at `LINGER` after it with everything queued meanwhile: at most one pipeline per
//! `LINGER` under load, no wait at all at a calm rate (a message every few milliseconds).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// The least time between two pipelines; under load, a relayed message waits at most this long.
pub(super) const LINGER: Duration = Duration::from_millis(1);

/// Takes batches of messages off the relay's queue.
pub(super) struct Batcher<T> {
    receiver: mpsc::Receiver<T>,
    linger: Duration,
    max: usize,
    last_sent: Option<Instant>,
}

impl<T> Batcher<T> {
    pub(super) fn new(receiver: mpsc::Receiver<T>, linger: Duration, max: usize) -> Self {
        Self {
            receiver,
            linger,
            max: max.max(1),
            last_sent: None,
        }
    }

    /// Fills `batch` with the next pipeline's messages (at most `max`): waits for one, then,
    /// when the previous pipeline left less than the linger ago, for the rest of the linger,
    /// taking what arrived meanwhile. Returns how many it took; 0 once the queue is closed and
    /// empty. The caller sends the batch right away (its time counts from here).
    pub(super) async fn next(&mut self, batch: &mut Vec<T>) -> usize {
        if self.receiver.recv_many(batch, self.max).await == 0 {
            return 0;
        }
        if let Some(last) = self.last_sent {
            let until = last + self.linger;
            if batch.len() < self.max && Instant::now() < until {
                tokio::time::sleep_until(until).await;
                while batch.len() < self.max {
                    match self.receiver.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
            }
        }
        self.last_sent = Some(Instant::now());
        batch.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn messages_arriving_within_the_linger_leave_in_one_pipeline() {
        let (sender, receiver) = mpsc::channel(1024);
        // tokio's timers tick in milliseconds: a linger of 10 and messages 1 ms apart.
        let linger = Duration::from_millis(10);
        let mut batcher = Batcher::new(receiver, linger, 256);
        let mut batch = Vec::new();

        // A calm queue: the first message leaves at once.
        let start = Instant::now();
        sender.send(0).await.unwrap();
        assert_eq!(batcher.next(&mut batch).await, 1);
        assert_eq!(Instant::now(), start, "the first message waited");
        batch.clear();

        // Under load: messages 1 ms apart right after a pipeline left go together.
        let producer = tokio::spawn({
            let sender = sender.clone();
            async move {
                for message in 1..=8 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    sender.send(message).await.unwrap();
                }
            }
        });
        assert_eq!(batcher.next(&mut batch).await, 8);
        assert_eq!(batch, (1..=8).collect::<Vec<_>>());
        assert_eq!(Instant::now(), start + linger);
        producer.await.unwrap();
        batch.clear();

        // One sent right after that pipeline left waits a linger after it.
        sender.send(9).await.unwrap();
        assert_eq!(batcher.next(&mut batch).await, 1);
        assert_eq!(batch, [9]);
        assert_eq!(Instant::now(), start + 2 * linger);
        batch.clear();

        // Calm again: a message long after the last pipeline does not wait.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let quiet = Instant::now();
        sender.send(11).await.unwrap();
        assert_eq!(batcher.next(&mut batch).await, 1);
        assert_eq!(Instant::now(), quiet, "a message at a calm rate waited");
        batch.clear();

        // A full batch does not wait for the linger either.
        for message in 0..300 {
            sender.send(message).await.unwrap();
        }
        let full = Instant::now();
        assert_eq!(batcher.next(&mut batch).await, 256);
        assert_eq!(Instant::now(), full, "a full pipeline waited");
        batch.clear();

        drop(sender);
        assert_eq!(batcher.next(&mut batch).await, 44);
        batch.clear();
        assert_eq!(
            batcher.next(&mut batch).await,
            0,
            "a closed queue gives nothing"
        );
    }
}
