//! Generations: a DELETE here, a deletion elsewhere, and the one check every peer message
//! passes (`remote_in`): older generations are dropped, newer ones start the room over.

use super::*;

impl Room {
    /// Carries out what a command left to the loop; `false` when storage could not be read
    /// (the loop then closes every session and unloads the room).
    pub(super) async fn follow(&mut self, followup: Followup) -> bool {
        match followup {
            Followup::Delete { reason, reply } => self.delete(reason, reply).await,
            Followup::StartOver { reason } => self.start_over(&reason).await,
        }
    }

    /// Deletes the document: every session ends (told why), the writes in flight finish, the
    /// store forgets the document and starts its next generation, the peers are told, and the
    /// room serves that generation, empty.
    pub(super) async fn delete(
        &mut self,
        reason: String,
        reply: tokio::sync::oneshot::Sender<Result<bool, RequestError>>,
    ) -> bool {
        self.deny_all(&reason);
        let drained = tokio::time::timeout(DELETE_DRAIN_TIMEOUT, async {
            while self.durable < self.enqueued {
                match self.written.recv().await {
                    Some(Written::Durable(through)) => self.acknowledge(through),
                    Some(Written::Compacted) => {}
                    // Deleted elsewhere meanwhile: what is in flight went with it.
                    Some(Written::Superseded) | None => return false,
                }
            }
            true
        })
        .await;
        if !matches!(drained, Ok(true)) {
            tracing::error!("deletion abandoned: updates in flight were not stored");
            let _ = reply.send(Err(RequestError::Unavailable(
                "updates in flight could not be stored; nothing was deleted".into(),
            )));
            // The writer may be gone (superseded): serve what storage holds now.
            return self.start_over(&reason).await;
        }
        let deleted = match self.registry.store().delete(&self.name).await {
            Ok(deleted) => deleted,
            Err(error) => {
                tracing::error!(%error, "failed to delete the stored document");
                let _ = reply.send(Err(RequestError::Unavailable(error.to_string())));
                return true;
            }
        };
        self.reset(Doc::new(), Admission::default());
        self.start_writer(deleted.generation, 0);
        // Sent in the new generation: peers still in the old one start over on it.
        self.relay(&Message::Close(Some(reason.clone())));
        tracing::info!(%reason, generation = deleted.generation, "document deleted");
        let _ = reply.send(Ok(deleted.existed));
        true
    }

    /// The document was deleted on another replica (its notice, a message of a newer
    /// generation, or the store refusing our append as superseded): every session ends (told
    /// why), what is in flight is dropped unacknowledged (it can never be stored: its generation
    /// is over), and the room serves what storage holds now. Nothing is deleted here: only the
    /// replica that ran the DELETE touches the store. `false` when storage could not be read.
    pub(super) async fn start_over(&mut self, reason: &str) -> bool {
        let loaded = match load(&self.name, &self.registry, Vec::new()).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "cannot reload the document after its deletion elsewhere");
                return false;
            }
        };
        if loaded.generation == self.generation && !self.writer.is_closed() {
            // Not deleted after all (a stale notice): nothing changes.
            tracing::debug!(
                reason,
                "deletion notice for the current generation; ignored"
            );
            return true;
        }
        tracing::info!(
            reason,
            generation = loaded.generation,
            "document deleted on another replica; starting over from storage"
        );
        self.deny_all(reason);
        self.reset(loaded.doc, loaded.admission);
        self.size_estimate = loaded.bytes;
        self.start_writer(loaded.generation, loaded.log_rows);
        self.resync();
        true
    }

    /// Ends every session of the document with `reason`.
    pub(super) fn deny_all(&mut self, reason: &str) {
        let ids: Vec<SubscriberId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.deny(id, reason);
        }
    }

    /// `doc` in place of the document of an ended generation: nothing in flight is kept, and
    /// nobody still waiting is told it was stored (API callers get an error).
    pub(super) fn reset(&mut self, doc: Doc, admission: Admission) {
        self.awareness = Awareness::with_clock(doc, now_millis);
        self.admission = admission;
        self.whole_state = None;
        self.awareness_owner.clear();
        self.awareness_reserved.clear();
        self.inflight.clear();
        self.tainted = false;
        self.size_estimate = 0;
        self.local_change = None;
        for (_, ack, _) in self.pending_acks.drain(..) {
            let deleted = || {
                RequestError::Unavailable(
                    "the document was deleted before the update was stored".into(),
                )
            };
            match ack {
                Ack::Api(reply) => drop(reply.send(Err(deleted()))),
                Ack::State((reply, ..)) => drop(reply.send(Err(deleted()))),
                Ack::Session(_) => {}
            }
        }
        self.registry
            .metrics
            .pending_updates
            .sub(self.enqueued.saturating_sub(self.durable) as i64);
        self.durable = self.enqueued;
    }

    /// A writer for `generation` in place of the current one (which finishes what it holds,
    /// or drops it if its generation is over, and is awaited when the room unloads).
    pub(super) fn start_writer(&mut self, generation: u64, log_rows: usize) {
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let written = Arc::new(crate::storage::writer::Reports::default());
        self.writers.retain(|writer| !writer.is_finished());
        self.writers.push(tokio::spawn(crate::storage::writer::run(
            self.name.clone(),
            generation,
            self.registry.store().clone(),
            writer_rx,
            written.clone(),
            log_rows,
            self.registry.settings.compact_after,
        )));
        self.writer = writer_tx;
        self.written = written;
        self.generation = generation;
    }

    /// Publishes `message` to the peer replicas, in this room's generation.
    pub(super) fn relay(&self, message: &Message) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(&self.name, self.generation, message);
        }
    }

    /// A message from a peer replica, by its generation: one of an older generation is dropped
    /// (the document was deleted since), one of a newer generation, or a deletion notice,
    /// starts the room over; a message without a generation (a Node peer) is taken as current.
    pub(super) fn remote_in(
        &mut self,
        message: Message,
        generation: Option<u64>,
    ) -> Option<Followup> {
        let deletion = matches!(&message, Message::Close(Some(reason)) if reason.starts_with(DELETED_REASON_PREFIX));
        match generation {
            Some(generation) if generation < self.generation => {
                // That peer missed the deletion notice (its subscription was down, or the
                // message was lost): tell it again, at most once a second.
                self.registry.metrics.relay_stale.inc();
                if self
                    .last_stale_notice
                    .is_none_or(|at| at.elapsed() >= MISSING_RESYNC_MIN_INTERVAL)
                {
                    self.last_stale_notice = Some(Instant::now());
                    let notice = format!(
                        "{DELETED_REASON_PREFIX}: generation {} started",
                        self.generation
                    );
                    self.relay(&Message::Close(Some(notice)));
                }
                None
            }
            Some(generation) if generation > self.generation || deletion => {
                // The message itself is not applied: starting over loads that generation from
                // storage and asks the peers for what it lacks.
                let reason = match message {
                    Message::Close(Some(reason)) if deletion => reason,
                    _ => format!("{DELETED_REASON_PREFIX} on another replica"),
                };
                Some(Followup::StartOver { reason })
            }
            // Node servers have no DELETE: a notice without a generation is only a reason to
            // look at storage.
            None if deletion => Some(Followup::StartOver {
                reason: format!("{DELETED_REASON_PREFIX} on another replica"),
            }),
            _ => {
                self.remote(message);
                None
            }
        }
    }
}
