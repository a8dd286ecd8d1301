//! The Redis relay as a room sees it: asking peers for what it lacks, answering theirs, and
//! applying their updates (stored, never published again, never acknowledged here).

use super::*;

impl Room {
    /// Asks every peer replica for what this room lacks and for their awareness states, and
    /// offers ours (peers that were not listening when our clients' states changed get them
    /// now, not at the clients' next renewal).
    pub(super) fn resync(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        self.last_resync = Some(Instant::now());
        let sv = self.awareness.doc().transact().state_vector();
        self.relay(&Message::Sync(SyncMessage::SyncStep1(sv)));
        self.relay(&Message::QueryAwareness);
        if let Ok(states) = self.awareness.update()
            && !states.clients.is_empty()
        {
            self.relay(&Message::Awareness(states));
        }
    }

    /// An update arrived whose dependencies this room lacks: a relay message was lost.
    pub(super) fn resync_missing(&mut self) {
        if self.cluster.is_some()
            && self
                .last_resync
                .is_none_or(|at| at.elapsed() >= MISSING_RESYNC_MIN_INTERVAL)
        {
            tracing::debug!("missing updates; asking the peers");
            self.resync();
        }
    }

    /// A message from a peer replica (the `@hocuspocus/extension-redis` receiver rules).
    pub(super) fn remote(&mut self, message: Message) {
        if self.cluster.is_none() {
            return;
        }
        match message {
            // A peer asks what it lacks: tell it what we lack, and send what it lacks.
            Message::Sync(SyncMessage::SyncStep1(remote)) => {
                let txn = self.awareness.doc().transact();
                let own = txn.state_vector();
                let diff = txn.encode_diff_v1(&remote);
                drop(txn);
                self.relay(&Message::SyncReply(SyncMessage::SyncStep1(own)));
                if !is_empty_update(&diff) {
                    self.relay(&Message::Sync(SyncMessage::SyncStep2(diff)));
                }
            }
            // The answer to our Step1: send what it lacks, nothing more.
            Message::SyncReply(SyncMessage::SyncStep1(remote)) => {
                let diff = self.awareness.doc().transact().encode_diff_v1(&remote);
                if !is_empty_update(&diff) {
                    self.relay(&Message::Sync(SyncMessage::SyncStep2(diff)));
                }
            }
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update))
            | Message::SyncReply(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                self.apply_remote_update(update);
            }
            Message::Awareness(update) => {
                // Applied and shown to local clients, never published again (no echo storms).
                // A peer may not touch the states of this replica's sessions.
                let update = self.admit_awareness(None, update);
                if let Ok(Some(summary)) = self.awareness.apply_update_summary(update) {
                    if let Ok(changes) = self.awareness.update_with_clients(summary.all_changes()) {
                        self.broadcast_awareness(&changes);
                    }
                    self.release_awareness(&summary.removed);
                }
            }
            Message::QueryAwareness => {
                // Node peers expect an answer even when it has no entries.
                if let Ok(update) = self.awareness.update() {
                    self.relay(&Message::Awareness(update));
                }
            }
            Message::Auth(_)
            | Message::Stateless(_)
            | Message::BroadcastStateless(_)
            | Message::Close(_)
            | Message::SyncStatus(_) => {}
        }
    }

    /// Applies a peer's update: shown to local clients and stored, never published again and
    /// never acknowledged to anyone (its origin acknowledges it).
    pub(super) fn apply_remote_update(&mut self, bytes: Vec<u8>) {
        let spans = match protocol::bounded::spans(&bytes) {
            Ok(spans) => spans,
            Err(error) => {
                tracing::warn!(%error, "ignored a malformed update from a peer");
                return;
            }
        };
        let (changed, missing) = match self.integrate(&spans, &bytes) {
            Ok(outcome) => outcome,
            Err((reason, error)) => {
                tracing::warn!(%error, "ignored an update from a peer that does not apply");
                self.registry
                    .metrics
                    .updates_refused
                    .with_label_values(&[reason])
                    .inc();
                return;
            }
        };
        if changed {
            self.store_and_broadcast(bytes, None);
        }
        if missing {
            self.resync_missing();
        }
    }

    /// Relays a local update to the peer replicas.
    pub(super) fn publish_update(&self, bytes: &[u8]) {
        if let Some(cluster) = &self.cluster {
            cluster.publish_frame(
                &self.name,
                self.generation,
                &protocol::encode_update_frame(Some(&self.name), bytes),
            );
        }
    }
}
