//! The per-document writer task: group commit, retry with backoff, compaction spacing.
//!
//! A room hands it `(sequence, update)` pairs and learns from it the highest sequence that is
//! durable; only then does the room acknowledge. How it stops: when the room drops its sender,
//! the queue closes, the writer stores what is left, folds the log into the snapshot, and exits
//! (the room awaits that).
//!
//! A writer writes one generation of its document. When the store refuses an append as
//! superseded (the document was deleted, on any replica), nothing it holds can ever be stored:
//! it reports [`Written::Superseded`], drops the rest and exits; the room starts over.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{DocumentStore, StoreError, batch};

/// What a room queues: its sequence number, the update, and who made it (for the document's
/// activity; `None` for a peer's update, which its own replica records). Boxed: a channel
/// allocates its slots 32 at a time, and every loaded document has one (a tuple would be 48
/// bytes each).
pub type Queued = Box<(u64, Vec<u8>, Option<Arc<str>>)>;

/// What the writer reports to its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Every update up to this sequence number is durable.
    Durable(u64),
    /// The generation was deleted: the updates from this one on are not stored, and never will.
    Superseded,
    /// A compaction folded the log into the snapshot.
    Compacted,
}

/// What a writer reports to its room, read as [`Written`] in order: how far updates are durable,
/// compactions, the end of the generation, the writer's exit. Counters and flags behind one
/// `Notify`, not a channel: every loaded document has one, and a tokio channel costs about a
/// kilobyte before its first message.
#[derive(Debug, Default)]
pub struct Reports {
    durable: AtomicU64,
    /// The highest `durable` the room has taken.
    taken: AtomicU64,
    compactions: AtomicU32,
    superseded: AtomicBool,
    finished: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Reports {
    fn report(&self, written: Written) {
        match written {
            Written::Durable(through) => {
                self.durable.fetch_max(through, Ordering::AcqRel);
            }
            Written::Compacted => {
                self.compactions.fetch_add(1, Ordering::AcqRel);
            }
            Written::Superseded => self.superseded.store(true, Ordering::Release),
        }
        self.notify.notify_one();
    }

    /// The next report without waiting: durability first, then compactions, then the end of
    /// the generation (reported once).
    pub fn try_recv(&self) -> Option<Written> {
        let durable = self.durable.load(Ordering::Acquire);
        if durable > self.taken.load(Ordering::Acquire) {
            self.taken.store(durable, Ordering::Release);
            return Some(Written::Durable(durable));
        }
        if self
            .compactions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            return Some(Written::Compacted);
        }
        if self.superseded.swap(false, Ordering::AcqRel) {
            return Some(Written::Superseded);
        }
        None
    }

    /// The next report; `None` once the writer has exited and everything it reported is taken.
    pub async fn recv(&self) -> Option<Written> {
        loop {
            // A report made between the check and the wait leaves a permit: no wake-up is lost.
            if let Some(written) = self.try_recv() {
                return Some(written);
            }
            if self.finished.load(Ordering::Acquire) {
                return self.try_recv();
            }
            self.notify.notified().await;
        }
    }
}

/// Marks the writer's exit however it exits.
struct Finished<'a>(&'a Reports);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Release);
        self.0.notify.notify_one();
    }
}

/// Most updates written in one group commit, and most bytes (a batch takes at least one update,
/// however large).
const MAX_BATCH: usize = 512;
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Retry backoff while the database is unreachable. The longest wait stays well under the
/// shutdown deadline (25 s by default), so a store that comes back is used before it.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// The document's activity is written at most this often while updates keep coming (one small
/// transaction per interval, not one per group commit), and once the queue has been idle for
/// [`ACTIVITY_IDLE`] (and when the writer stops).
const ACTIVITY_INTERVAL: Duration = Duration::from_secs(5);
const ACTIVITY_IDLE: Duration = Duration::from_secs(1);
/// Compactions of one document start at least this far apart (each folds the whole document).
const MIN_COMPACTION_INTERVAL: Duration = Duration::from_secs(2);

/// The writer sub-task: group-commits updates to the store, reports durability, and starts
/// compactions.
pub async fn run(
    name: Arc<str>,
    generation: u64,
    store: Arc<dyn DocumentStore>,
    mut updates: mpsc::UnboundedReceiver<Queued>,
    reports: Arc<Reports>,
    mut rows_since_compaction: usize,
    compact_after: usize,
) {
    let _finished = Finished(&reports);
    let durable = &*reports;
    let mut batch = Vec::new();
    let mut compaction: Option<JoinHandle<super::Result<()>>> = None;
    let mut last_compaction: Option<Instant> = None;
    let mut activity: Vec<super::Activity> = Vec::new();
    let mut activity_written = Instant::now();
    // An update taken from the queue that did not fit the previous batch.
    let mut carried: Option<Queued> = None;
    let limits = batch::Limits {
        items: MAX_BATCH,
        bytes: MAX_BATCH_BYTES,
    };
    loop {
        if !activity.is_empty() && carried.is_none() {
            // Idle: the activity gathered so far is written unless an update comes first.
            match tokio::time::timeout(ACTIVITY_IDLE, updates.recv()).await {
                Ok(next) => carried = next,
                Err(_) => {
                    record_activity(&*store, &name, generation, &mut activity).await;
                    activity_written = Instant::now();
                }
            }
        }
        if !batch::next(&mut updates, &mut carried, &mut batch, limits, |queued| {
            queued.1.len()
        })
        .await
        {
            break;
        }
        let through = batch.last().map_or(0, |queued| queued.0);
        let stored = super::activity::tally(
            batch.iter().map(|queued| (&queued.2, queued.1.len())),
            super::versions::now_ms(),
        );
        let bytes: Vec<Vec<u8>> = batch.drain(..).map(|queued| queued.1).collect();
        let mut delay = RETRY_INITIAL;
        let mut failures = 0u32;
        loop {
            match store.append(&name, generation, &bytes).await {
                Ok(()) => break,
                Err(error @ StoreError::Superseded { .. }) => {
                    tracing::info!(%error, "the document was deleted; its pending updates are dropped");
                    durable.report(Written::Superseded);
                    updates.close();
                    // Nothing of this generation is left to fold.
                    return;
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(%error, failures, retry_in_ms = delay.as_millis() as u64,
                            "cannot store updates; they stay unacknowledged and are retried");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
        if failures > 0 {
            tracing::info!(failures, "stored updates after retrying");
        }
        durable.report(Written::Durable(through));
        super::activity::merge(&mut activity, stored);
        if activity_written.elapsed() >= ACTIVITY_INTERVAL {
            record_activity(&*store, &name, generation, &mut activity).await;
            activity_written = Instant::now();
        }
        rows_since_compaction += bytes.len();
        // Compaction runs beside the appends (it deletes exactly the rows it folded), so a
        // document's acknowledgements never wait for it; at most one runs per document, and
        // they are spaced out, since each one folds the whole document.
        if let Some(task) = compaction.take_if(|task| task.is_finished()) {
            if compaction_succeeded(task.await) {
                durable.report(Written::Compacted);
            } else {
                rows_since_compaction += compact_after;
            }
        }
        if compaction.is_none()
            && rows_since_compaction >= compact_after
            && last_compaction.is_none_or(|at: Instant| at.elapsed() >= MIN_COMPACTION_INTERVAL)
        {
            rows_since_compaction = 0;
            last_compaction = Some(Instant::now());
            let (store, name) = (store.clone(), name.clone());
            compaction = Some(tokio::spawn(async move { store.compact(&name).await }));
        }
    }
    record_activity(&*store, &name, generation, &mut activity).await;
    if let Some(task) = compaction
        && !compaction_succeeded(task.await)
    {
        rows_since_compaction += 1;
    }
    if rows_since_compaction > 0
        && let Err(error) = store.compact(&name).await
    {
        tracing::warn!(%error, "compaction on unload failed; the log is kept");
    }
}

/// Writes and clears the activity gathered so far (lost, with a warning, if the store fails:
/// it only counts what is stored).
async fn record_activity(
    store: &dyn DocumentStore,
    name: &str,
    generation: u64,
    activity: &mut Vec<super::Activity>,
) {
    if activity.is_empty() {
        return;
    }
    if let Err(error) = store.record_activity(name, generation, activity).await {
        tracing::warn!(%error, "the document's activity was not recorded");
    }
    // Not `clear`: an idle document keeps no allocation for it.
    *activity = Vec::new();
}

fn compaction_succeeded(outcome: Result<super::Result<()>, tokio::task::JoinError>) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "compaction failed; the log is kept and folded later");
            false
        }
        Err(error) => {
            tracing::error!(%error, "compaction task failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::storage::{Result, StoredDocument};

    /// Records the bytes of every append.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl DocumentStore for Recording {
        fn backend(&self) -> &'static str {
            "recording"
        }
        async fn load(&self, _: &str) -> Result<StoredDocument> {
            Ok(StoredDocument::default())
        }
        async fn append(&self, _: &str, _: u64, updates: &[Vec<u8>]) -> Result<()> {
            let bytes = updates.iter().map(Vec::len).sum();
            self.batches.lock().expect("lock").push(bytes);
            Ok(())
        }
        async fn compact(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn list(
            &self,
            _: &crate::storage::Listing,
        ) -> Result<Vec<crate::storage::DocumentInfo>> {
            Ok(Vec::new())
        }
        async fn delete(&self, _: &str) -> Result<crate::storage::Deleted> {
            Ok(crate::storage::Deleted {
                existed: false,
                generation: 1,
            })
        }
        async fn ping(&self) -> Result<()> {
            Ok(())
        }
        async fn revoke(&self, _: &crate::revocation::Revocation) -> Result<()> {
            Ok(())
        }
        async fn revocations(&self) -> Result<Vec<crate::revocation::Revocation>> {
            Ok(Vec::new())
        }
        async fn create_version(
            &self,
            document: &str,
            generation: u64,
            _: &crate::storage::NewVersion,
        ) -> Result<crate::storage::VersionInfo> {
            Err(crate::storage::StoreError::Superseded {
                document: document.to_owned(),
                generation,
            })
        }
        async fn versions(
            &self,
            _: &str,
            _: Option<i64>,
            _: u32,
        ) -> Result<Vec<crate::storage::VersionInfo>> {
            Ok(Vec::new())
        }
        async fn version(
            &self,
            _: &str,
            _: i64,
        ) -> Result<Option<(crate::storage::VersionInfo, Vec<u8>)>> {
            Ok(None)
        }
        async fn delete_version(&self, _: &str, _: i64) -> Result<bool> {
            Ok(false)
        }
        async fn record_activity(
            &self,
            _: &str,
            _: u64,
            _: &[crate::storage::Activity],
        ) -> Result<()> {
            Ok(())
        }
        async fn activity(
            &self,
            _: &str,
            _: u64,
            _: u64,
            _: u32,
        ) -> Result<Vec<crate::storage::Activity>> {
            Ok(Vec::new())
        }
    }

    /// The room reads what the writer reported in the order a channel would have given it:
    /// durability (coalesced to the highest), then compactions, then the end of the
    /// generation, then `None` once the writer is gone; a report made before the room waits
    /// is not lost.
    #[tokio::test]
    async fn reports_arrive_in_order_and_none_is_lost() {
        let reports = Arc::new(Reports::default());
        assert_eq!(reports.try_recv(), None);
        reports.report(Written::Durable(3));
        reports.report(Written::Durable(7));
        reports.report(Written::Compacted);
        reports.report(Written::Compacted);
        reports.report(Written::Superseded);
        assert_eq!(reports.recv().await, Some(Written::Durable(7)));
        assert_eq!(reports.recv().await, Some(Written::Compacted));
        assert_eq!(reports.recv().await, Some(Written::Compacted));
        assert_eq!(reports.recv().await, Some(Written::Superseded));
        assert_eq!(reports.try_recv(), None);
        // A report from another task wakes a waiting room.
        let room = reports.clone();
        let waiting = tokio::spawn(async move { room.recv().await });
        tokio::task::yield_now().await;
        reports.report(Written::Durable(9));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), waiting)
                .await
                .expect("woken")
                .expect("task"),
            Some(Written::Durable(9))
        );
        // The writer's exit ends the reports, after what it reported last.
        reports.report(Written::Durable(10));
        drop(Finished(&reports));
        assert_eq!(reports.recv().await, Some(Written::Durable(10)));
        assert_eq!(reports.recv().await, None);
    }

    #[tokio::test]
    async fn one_group_commit_is_capped_in_bytes() {
        let store = Arc::new(Recording::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let reports = Arc::new(Reports::default());
        // 20 updates of 1 MiB and one of 10 MiB, all queued before the writer looks.
        for seq in 1..=20 {
            tx.send(Box::new((seq, vec![0u8; 1 << 20], None)))
                .expect("send");
        }
        tx.send(Box::new((21, vec![0u8; 10 << 20], None)))
            .expect("send");
        drop(tx);
        run(
            Arc::from("doc"),
            0,
            store.clone(),
            rx,
            reports.clone(),
            0,
            usize::MAX,
        )
        .await;
        let batches = store.batches.lock().expect("lock").clone();
        assert_eq!(
            batches.iter().sum::<usize>(),
            30 << 20,
            "every byte written"
        );
        assert!(
            batches
                .iter()
                .all(|&b| b <= MAX_BATCH_BYTES || b == 10 << 20),
            "batches: {batches:?}"
        );
        assert!(batches.len() >= 4, "batches: {batches:?}");
        assert_eq!(
            reports.try_recv(),
            Some(Written::Durable(21)),
            "everything reported durable"
        );
        assert_eq!(reports.recv().await, None, "the writer has exited");
    }
}
