//! Awareness: who owns which client id, applying and removing states, the sweep.

use super::*;

impl Room {
    /// Removes awareness states (same clock, state `null`, as Hocuspocus does), broadcasts the
    /// removal to local sessions and returns it.
    pub(super) fn remove_awareness(&mut self, clients: Vec<ClientID>) -> Option<AwarenessUpdate> {
        let mut removal = HashMap::new();
        for client in clients {
            if let Some((clock, _)) = self.awareness.meta(client)
                && self.awareness.state::<serde_json::Value>(client).is_some()
            {
                removal.insert(
                    client,
                    AwarenessUpdateEntry {
                        clock,
                        json: Arc::from("null"),
                    },
                );
            }
        }
        if removal.is_empty() {
            return None;
        }
        let update = AwarenessUpdate { clients: removal };
        if let Err(error) = self.awareness.apply_update(update.clone()) {
            tracing::warn!(%error, "failed to remove awareness states");
            return None;
        }
        self.broadcast_awareness(&update);
        Some(update)
    }

    pub(super) fn sweep_awareness(&mut self) {
        let now = now_millis();
        let timeout = AWARENESS_TIMEOUT.as_millis() as u64;
        let stale: Vec<ClientID> = self
            .awareness
            .iter()
            .filter(|(_, state)| {
                state.data.is_some() && now.saturating_sub(state.last_updated) > timeout
            })
            .map(|(client, _)| client)
            .collect();
        if !stale.is_empty() {
            self.release_awareness(&stale);
            // Every replica times states out on its own; nothing to publish.
            self.remove_awareness(stale);
        }
        // yrs keeps an entry (the clock) for every client that ever had a state; once removed
        // entries outnumber live ones, start a fresh awareness with the live states only.
        let (all, live) = self
            .awareness
            .iter()
            .fold((0usize, 0usize), |(all, live), (_, s)| {
                (all + 1, live + usize::from(s.data.is_some()))
            });
        if all > 2 * live + 64 {
            let states = self.awareness.update().ok();
            let mut fresh = Awareness::with_clock(self.awareness.doc().clone(), now_millis);
            if let Some(states) = states
                && let Err(error) = fresh.apply_update(states)
            {
                tracing::warn!(%error, "failed to carry awareness states over");
                return;
            }
            self.awareness = fresh;
        }
    }

    /// Keeps the entries of an awareness update that `owner` may apply: client ids it owns, or
    /// new ones while it and the document are under their caps. Removals (`null`) of ids that
    /// hold no state are dropped too: they would only leave an entry behind.
    pub(super) fn admit_awareness(
        &mut self,
        owner: Option<SubscriberId>,
        update: AwarenessUpdate,
    ) -> AwarenessUpdate {
        let mut admitted = HashMap::with_capacity(update.clients.len().min(8));
        let mut refused = 0u64;
        for (client, entry) in update.clients {
            let removal = &*entry.json == "null";
            let allowed = match self.awareness_owner.get(&client) {
                Some(existing) => *existing == owner,
                None if removal => false,
                None => {
                    let per_session = match owner.and_then(|id| self.sessions.get(&id)) {
                        Some(session) => session.awareness_clients.len(),
                        None => 0,
                    };
                    let fits = self.awareness_owner.len() < MAX_AWARENESS_PER_DOCUMENT
                        && (owner.is_none() || per_session < MAX_AWARENESS_PER_SESSION);
                    if fits {
                        self.awareness_owner.insert(client, owner);
                        if let Some(session) = owner.and_then(|id| self.sessions.get_mut(&id)) {
                            session.awareness_clients.insert(client);
                        }
                    }
                    fits
                }
            };
            if allowed {
                admitted.insert(client, entry);
            } else if !removal || self.awareness_owner.contains_key(&client) {
                refused += 1;
            }
        }
        if refused > 0 {
            self.registry.metrics.awareness_refused.inc_by(refused);
        }
        AwarenessUpdate { clients: admitted }
    }

    /// Forgets who owned awareness ids whose states are gone.
    pub(super) fn release_awareness(&mut self, clients: &[ClientID]) {
        for client in clients {
            if let Some(Some(owner)) = self.awareness_owner.remove(client)
                && let Some(session) = self.sessions.get_mut(&owner)
            {
                session.awareness_clients.remove(client);
            }
        }
    }

    pub(super) fn apply_awareness(&mut self, id: SubscriberId, update: AwarenessUpdate) {
        if !self.sessions.contains_key(&id) {
            return;
        }
        let update = self.admit_awareness(Some(id), update);
        if update.clients.is_empty() {
            return;
        }
        let summary = match self.awareness.apply_update_summary(update) {
            Ok(Some(summary)) => summary,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "ignored awareness update");
                return;
            }
        };
        match self.awareness.update_with_clients(summary.all_changes()) {
            Ok(changes) => {
                self.broadcast_awareness(&changes);
                if let Some(cluster) = &self.cluster {
                    cluster.publish(&self.name, self.generation, &Message::Awareness(changes));
                }
            }
            Err(error) => tracing::warn!(%error, "failed to encode awareness changes"),
        }
        self.release_awareness(&summary.removed);
    }

    pub(super) fn broadcast_awareness(&mut self, update: &AwarenessUpdate) {
        let encoded = update.encode_v1();
        self.broadcast(
            |address| protocol::encode_awareness_frame(address, &encoded),
            "awareness",
        );
    }
}
