//! Awareness: who owns which client id, applying and removing states, the sweep.
//!
//! Ownership outlives a session: an id its owner let go (it left, removed its state, or timed
//! out) is reserved for the owner's identity (its token's `sub`, else its address), so a
//! stranger cannot take over the presence of a client whose socket dropped. And no entry may
//! carry a clock that would leave no room for later renewals.

use super::*;

/// Clocks above this are refused: y-protocols clocks grow by one per change, and an entry near
/// `u32::MAX` (yrs's width) would lock every later renewal of that id out.
const MAX_AWARENESS_CLOCK: u32 = 1 << 31;
/// Reservations one document keeps (the same bound as the states it holds).
const MAX_RESERVATIONS: usize = MAX_AWARENESS_PER_DOCUMENT;

/// An awareness id released by its owner.
pub(super) struct Reservation {
    /// The owner's identity; `None` for an id a peer replica released (its owner is known there).
    identity: Option<Identity>,
    at: Instant,
}

impl Reservation {
    /// Whether a local session of `identity` may claim the id now. Its owner may, at once. With
    /// a token subject, nobody else may while the room lives; otherwise (an address, or an id
    /// a peer released) anyone may after the awareness timeout, when y-protocols would have
    /// dropped the state anyway.
    fn admits_session(&self, identity: &Identity, now: Instant) -> bool {
        match &self.identity {
            Some(owner) if owner == identity => true,
            Some(Identity::Subject(_)) => false,
            _ => now.duration_since(self.at) >= AWARENESS_TIMEOUT,
        }
    }

    /// Whether a peer replica may introduce the id now: one it released, at once; one a local
    /// session released, after the awareness timeout (a peer cannot say whose it is).
    fn admits_peer(&self, now: Instant) -> bool {
        self.identity.is_none() || now.duration_since(self.at) >= AWARENESS_TIMEOUT
    }
}

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

    /// Reserves `client` for `identity` (`None`: a peer's id), released by its owner now.
    pub(super) fn reserve_awareness(&mut self, client: ClientID, identity: Option<Identity>) {
        let now = Instant::now();
        if self.awareness_reserved.len() >= MAX_RESERVATIONS
            && !self.awareness_reserved.contains_key(&client)
        {
            // Forget those anyone may claim by now; if none, the oldest.
            self.awareness_reserved.retain(|_, reservation| {
                matches!(reservation.identity, Some(Identity::Subject(_)))
                    || now.duration_since(reservation.at) < AWARENESS_TIMEOUT
            });
            if self.awareness_reserved.len() >= MAX_RESERVATIONS
                && let Some(oldest) = self
                    .awareness_reserved
                    .iter()
                    .min_by_key(|(_, reservation)| reservation.at)
                    .map(|(client, _)| *client)
            {
                self.awareness_reserved.remove(&oldest);
            }
        }
        self.awareness_reserved
            .insert(client, Reservation { identity, at: now });
    }

    /// Keeps the entries of an awareness update that `owner` may apply: client ids it owns, or
    /// new ones (not reserved for someone else) while it and the document are under their caps.
    /// Removals (`null`) of ids that hold no state are dropped too: they would only leave an
    /// entry behind. A session that claims an id whose stored clock is not below its entry's
    /// gets the next clock (its provider adopts it from the broadcast), so a clock someone else
    /// left behind never locks its renewals out.
    pub(super) fn admit_awareness(
        &mut self,
        owner: Option<SubscriberId>,
        update: AwarenessUpdate,
    ) -> AwarenessUpdate {
        let mut admitted = HashMap::with_capacity(update.clients.len().min(8));
        let mut refused = 0u64;
        let now = Instant::now();
        for (client, mut entry) in update.clients {
            let removal = &*entry.json == "null";
            if entry.clock > MAX_AWARENESS_CLOCK {
                refused += 1;
                continue;
            }
            let allowed = match self.awareness_owner.get(&client) {
                Some(existing) => *existing == owner,
                None if removal => false,
                None => {
                    let session = owner.and_then(|id| self.sessions.get(&id));
                    let identity = session.map(|session| &session.subscriber.identity);
                    let per_session = session.map_or(0, |session| session.awareness_clients.len());
                    let reserved = self.awareness_reserved.get(&client);
                    let free = match (reserved, identity) {
                        (None, _) => true,
                        (Some(reservation), Some(identity)) => {
                            reservation.admits_session(identity, now)
                        }
                        (Some(reservation), None) => reservation.admits_peer(now),
                    };
                    if !free {
                        refused += 1;
                        continue;
                    }
                    let fits = self.awareness_owner.len() < MAX_AWARENESS_PER_DOCUMENT
                        && (owner.is_none() || per_session < MAX_AWARENESS_PER_SESSION);
                    if fits {
                        self.awareness_owner.insert(client, owner);
                        self.awareness_reserved.remove(&client);
                        if let Some(session) = owner.and_then(|id| self.sessions.get_mut(&id)) {
                            session.awareness_clients.insert(client);
                            if let Some((stored, _)) = self.awareness.meta(client)
                                && stored >= entry.clock
                            {
                                entry.clock = stored.saturating_add(1);
                            }
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

    /// Awareness ids whose states are gone: no longer owned, reserved for their owner.
    pub(super) fn release_awareness(&mut self, clients: &[ClientID]) {
        for client in clients {
            match self.awareness_owner.remove(client) {
                Some(Some(owner)) => {
                    let identity = self.sessions.get_mut(&owner).map(|session| {
                        session.awareness_clients.remove(client);
                        session.subscriber.identity.clone()
                    });
                    if let Some(identity) = identity {
                        self.reserve_awareness(*client, Some(identity));
                    }
                }
                Some(None) => self.reserve_awareness(*client, None),
                None => {}
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
                self.relay(&Message::Awareness(changes));
            }
            Err(error) => tracing::warn!(%error, "failed to encode awareness changes"),
        }
        self.release_awareness(&summary.removed);
    }

    pub(super) fn broadcast_awareness(&mut self, update: &AwarenessUpdate) {
        let encoded = update.encode_v1();
        self.broadcast(
            protocol::encode_awareness_frame(None, &encoded),
            "awareness",
        );
    }
}
