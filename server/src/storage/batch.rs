//! Taking a batch from a queue for one group commit: the next item (waiting for it), then
//! whatever else is already queued, up to a count and a byte budget. The first item is taken
//! however large; an item that would exceed the budget is carried into the next batch, so
//! order is kept. Used by the per-document writer and by SQLite's committer.

use tokio::sync::mpsc;

/// How much one batch may hold.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub items: usize,
    pub bytes: usize,
}

/// Fills `batch` (expected empty) with the next batch; `false` once the queue is closed and
/// nothing is carried.
pub async fn next<T>(
    queue: &mut mpsc::UnboundedReceiver<T>,
    carried: &mut Option<T>,
    batch: &mut Vec<T>,
    limits: Limits,
    size: impl Fn(&T) -> usize,
) -> bool {
    let first = match carried.take() {
        Some(first) => first,
        None => match queue.recv().await {
            Some(first) => first,
            None => return false,
        },
    };
    let mut bytes = size(&first);
    batch.push(first);
    while batch.len() < limits.items {
        match queue.try_recv() {
            Ok(next) if bytes + size(&next) > limits.bytes => {
                *carried = Some(next);
                break;
            }
            Ok(next) => {
                bytes += size(&next);
                batch.push(next);
            }
            Err(_) => break,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_keep_order_and_respect_both_limits() {
        let (sender, mut queue) = mpsc::unbounded_channel();
        for length in [5, 1, 1, 1, 9, 2, 20] {
            sender.send(vec![0u8; length]).expect("send");
        }
        drop(sender);
        let limits = Limits {
            items: 3,
            bytes: 10,
        };
        let (mut carried, mut batches) = (None, Vec::new());
        let mut batch = Vec::new();
        while next(&mut queue, &mut carried, &mut batch, limits, Vec::len).await {
            batches.push(batch.drain(..).map(|item| item.len()).collect::<Vec<_>>());
        }
        // Count limit, byte limit (9 is carried), then a first item over budget alone.
        assert_eq!(batches, vec![vec![5, 1, 1], vec![1, 9], vec![2], vec![20]]);
    }
}
