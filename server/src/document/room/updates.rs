//! Applying an update: bounded decode, the size limit, integration (and the rebuild after a
//! failure inside yrs), the fan-out and the hand-over to the writer, and acknowledgements once
//! the writer reports them durable.

use super::*;

impl Room {
    pub(super) fn apply_update(&mut self, origin: Origin, bytes: Vec<u8>) {
        let started = Instant::now();
        let spans = match protocol::bounded::spans(&bytes) {
            Ok(spans) => spans,
            Err(error) => {
                origin.refuse(self, RequestError::Malformed(error.to_string()));
                return;
            }
        };
        if !self.fits(bytes.len()) {
            self.registry
                .metrics
                .updates_refused
                .with_label_values(&["document_too_large"])
                .inc();
            let limit = self.registry.settings.max_document_bytes;
            origin.refuse(self, RequestError::TooLarge(limit));
            return;
        }
        let (changed, missing) = match self.integrate(&spans, &bytes) {
            Ok(outcome) => outcome,
            Err((reason, error)) => {
                self.registry
                    .metrics
                    .updates_refused
                    .with_label_values(&[reason])
                    .inc();
                origin.refuse(self, RequestError::Invalid(error));
                return;
            }
        };
        self.registry
            .metrics
            .update_apply_duration
            .observe(started.elapsed().as_secs_f64());
        if changed {
            let hook = match &origin {
                Origin::Session { id, .. } => self
                    .sessions
                    .get(id)
                    .and_then(|s| s.subscriber.hook.clone()),
                Origin::Api(_) => None,
            };
            let author = match &origin {
                Origin::Session { id, .. } => self
                    .sessions
                    .get(id)
                    .map(|s| author_of(&s.subscriber.identity)),
                Origin::Api(_) => Some(Arc::from(crate::storage::activity::API_AUTHOR)),
            };
            self.publish_update(&bytes);
            self.store_and_broadcast(bytes, author);
            self.local_change = Some((self.enqueued, hook));
        }
        if missing {
            // With peers, what this client's update depends on may still be on its way.
            self.resync_missing();
        }
        match origin {
            Origin::Session {
                id,
                hocuspocus: true,
            } => self.acknowledge_when_durable(Ack::Session(id), started),
            Origin::Session { .. } => {}
            Origin::Api(reply) => self.acknowledge_when_durable(Ack::Api(reply), started),
        }
    }

    /// Applies an update to the document: (whether anything changed, whether this update
    /// lacks dependencies the document has not seen). Missing dependencies are a property of
    /// the update, not of the document: an update that leaves the pending set as it was (a
    /// repeat, or a Step2 of what is known) changed nothing and misses nothing.
    ///
    /// The admission rules decide first (`protocol::admission`): an update that gives ids the
    /// document holds other content is refused before yrs sees it; one that needs ids the
    /// document lacks is held (stored and relayed like any change, integrated once what it
    /// needs arrives). yrs may fail halfway through an update with some of its blocks already
    /// integrated: the room is then tainted and rebuilt from storage before it serves anything
    /// else. Errors come with the `reason` label of `collab_server_updates_refused_total`.
    pub(super) fn integrate(
        &mut self,
        spans: &[Span],
        bytes: &[u8],
    ) -> Result<(bool, bool), (&'static str, String)> {
        let mut txn = self.awareness.doc().transact_mut();
        let pending_before = pending_fingerprint(&txn);
        let offered = match self
            .admission
            .offer(&mut txn, spans, bytes, Extent::Everything, 0)
        {
            Ok(offered) => offered,
            Err(Offence::Refused(refusal)) => return Err((refusal.label(), refusal.to_string())),
            Err(Offence::Failed { error, .. }) => {
                drop(txn);
                self.tainted = true;
                return Err(("invalid", error));
            }
        };
        let pending_after = pending_fingerprint(&txn);
        let missing = offered.held || (pending_after.is_some() && pending_after != pending_before);
        let changed =
            txn.before_state() != txn.after_state() || !txn.delete_set().is_empty() || missing;
        Ok((changed, missing))
    }

    /// Rebuilds the document from storage plus the updates not yet durable, after an update
    /// failed inside yrs. No other command ran since, so no session saw the partial state.
    /// `false` when storage could not be read.
    pub(super) async fn rebuild(&mut self) -> bool {
        self.tainted = false;
        let inflight = self
            .inflight
            .iter()
            .map(|(_, bytes)| bytes.clone())
            .collect();
        let loaded = match load(&self.name, &self.registry, inflight).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                tracing::error!(%reason, "cannot rebuild the document after a failed update");
                return false;
            }
        };
        if loaded.generation != self.generation {
            // Deleted elsewhere meanwhile: the updates in flight belong to the old generation.
            return self
                .start_over(&format!("{DELETED_REASON_PREFIX} on another replica"))
                .await;
        }
        let (ydoc, size) = (loaded.doc, loaded.bytes);
        tracing::warn!("document rebuilt from storage after an update failed halfway");
        // What the sessions had (the tainted document's state vector covers what they were
        // sent): storage may hold more, written by other replicas and not relayed (yet).
        let served = self.awareness.doc().transact().state_vector();
        let states = self.awareness.update().ok();
        let mut awareness = Awareness::with_clock(ydoc, now_millis);
        self.admission = loaded.admission;
        if let Some(states) = states
            && let Err(error) = awareness.apply_update(states)
        {
            tracing::warn!(%error, "awareness states lost in the rebuild");
        }
        self.awareness = awareness;
        self.whole_state = None;
        self.size_estimate = size;
        // Sent to the sessions now, not when they next reconnect. Neither stored (it came from
        // storage) nor relayed (its writers relay it).
        let news = self.awareness.doc().transact().encode_diff_v1(&served);
        if !is_empty_update(&news) {
            self.broadcast(protocol::encode_update_frame(None, &news), "sync_update");
        }
        true
    }

    /// Whether an update of `len` bytes keeps the document within its size limit. The estimate
    /// (bytes stored) only grows; past the limit the real size is measured, and a document
    /// within 1/64 of its limit is full, so measuring happens at most once per 1/64 of it.
    pub(super) fn fits(&mut self, len: usize) -> bool {
        let limit = self.registry.settings.max_document_bytes;
        if limit == 0 || self.size_estimate.saturating_add(len) <= limit {
            return true;
        }
        let doc = self.awareness.doc();
        let exact = heavy(|| {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
                .len()
        });
        self.size_estimate = exact;
        exact.saturating_add(len) <= limit && limit - exact >= limit / 64
    }

    /// Fans an applied update out to every local session and hands it to the writer.
    /// The whole document as one v1 update (off the async worker for a large one).
    pub(super) fn full_state(&self) -> Vec<u8> {
        let doc = self.awareness.doc();
        let encode = || {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
        };
        if self.size_estimate >= HEAVY_DOCUMENT_BYTES {
            heavy(encode)
        } else {
            encode()
        }
    }

    /// The whole-document Step2 frame for session `id`'s address, encoded once per address
    /// until the document changes (`None` if the session is gone or has no framing for it).
    pub(super) fn whole_state_frame(&mut self, id: SubscriberId) -> Option<Outgoing> {
        let head = self.sessions.get(&id)?.subscriber.framing.prefix();
        let body = match &self.whole_state {
            Some(body) => body.clone(),
            None => {
                let message = Message::Sync(SyncMessage::SyncStep2(self.full_state()));
                let body = Bytes::from(protocol::encode_yws(&message)?);
                self.whole_state = Some(body.clone());
                body
            }
        };
        Some(Outgoing { head, body })
    }

    /// `author` (who made it, for the document's activity) is `None` for a peer's update: its
    /// own replica records it.
    pub(super) fn store_and_broadcast(&mut self, bytes: Vec<u8>, author: Option<Arc<str>>) {
        self.whole_state = None;
        self.broadcast(protocol::encode_update_frame(None, &bytes), "sync_update");
        self.enqueued += 1;
        self.size_estimate = self.size_estimate.saturating_add(bytes.len());
        self.registry.metrics.pending_updates.inc();
        self.inflight.push_back((self.enqueued, bytes.clone()));
        let _ = self.writer.send(Box::new((self.enqueued, bytes, author)));
        if self.version_due.is_none()
            && let Some(interval) = self.registry.version_policy().interval
        {
            self.version_due = Some(Instant::now() + interval);
        }
    }

    /// Takes an automatic version: the state now, stored (by one replica per interval, or per
    /// compaction) once it is durable.
    pub(super) fn auto_version(&mut self, why: crate::document::versions::AutoVersion) {
        if why == crate::document::versions::AutoVersion::Interval {
            self.version_due = None;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let state = self.full_state();
        self.acknowledge_when_durable(Ack::State((reply, state, self.generation)), Instant::now());
        let registry = self.registry.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Ok(Ok((state, generation))) = answer.await {
                registry.auto_version(&name, state, generation, why).await;
            }
        });
    }

    /// Acknowledges once everything up to this point is durable.
    pub(super) fn acknowledge_when_durable(&mut self, ack: Ack, started: Instant) {
        if self.durable >= self.enqueued {
            self.registry
                .metrics
                .ack_duration
                .observe(started.elapsed().as_secs_f64());
            self.send_ack(ack);
        } else {
            self.pending_acks.push_back((self.enqueued, ack, started));
        }
    }

    pub(super) fn send_ack(&self, ack: Ack) {
        match ack {
            Ack::Session(id) => {
                if let Some(session) = self.sessions.get(&id) {
                    self.send_to(&session.subscriber, &Message::SyncStatus(true));
                }
            }
            Ack::Api(reply) => {
                let _ = reply.send(Ok(()));
            }
            Ack::State((reply, state, generation)) => {
                let _ = reply.send(Ok((state, generation)));
            }
        }
    }

    pub(super) fn acknowledge(&mut self, through: u64) {
        let metrics = &self.registry.metrics;
        metrics
            .pending_updates
            .sub(through.saturating_sub(self.durable) as i64);
        self.durable = through;
        if self
            .local_change
            .as_ref()
            .is_some_and(|(seq, _)| *seq <= through)
            && let Some((_, hook)) = self.local_change.take()
            && let Some(webhooks) = self.registry.webhooks()
        {
            webhooks.changed(&self.name, hook);
        }
        while self
            .inflight
            .front()
            .is_some_and(|(seq, _)| *seq <= through)
        {
            self.inflight.pop_front();
        }
        while self
            .pending_acks
            .front()
            .is_some_and(|(seq, _, _)| *seq <= through)
        {
            let Some((_, ack, received)) = self.pending_acks.pop_front() else {
                break;
            };
            metrics
                .ack_duration
                .observe(received.elapsed().as_secs_f64());
            self.send_ack(ack);
        }
    }
}

/// What is pending in a document (blocks and deletions waiting for missing dependencies), by
/// content: comparing it before and after an update tells whether that update added to it. Its
/// shape is not enough: a second update that only deletes unseen items leaves a pending delete
/// set behind as the first did, yet carries deletions of its own that must be stored.
fn pending_fingerprint(txn: &yrs::TransactionMut<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    use yrs::updates::encoder::Encode;
    let store = txn.store();
    let update = store
        .pending_update()
        .map(|pending| pending.update.encode_v1());
    let deletions = store.pending_ds().map(|ds| ds.encode_v1());
    if update.is_none() && deletions.is_none() {
        return None;
    }
    Some((update.unwrap_or_default(), deletions.unwrap_or_default()))
}

/// Who an update of a session is attributed to in the document's activity: the token's `sub`,
/// else anonymous.
fn author_of(identity: &crate::document::Identity) -> Arc<str> {
    match identity {
        crate::document::Identity::Subject(subject) => subject.clone(),
        crate::document::Identity::Address(_) => Arc::from(crate::storage::activity::ANONYMOUS),
    }
}
