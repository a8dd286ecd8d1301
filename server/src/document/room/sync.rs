//! The y-sync protocol with one session: Step1, Step2 and updates, read-only rules.

use super::*;

impl Room {
    pub(super) fn sync(&mut self, id: SubscriberId, message: SyncMessage) {
        let Some(session) = self.sessions.get(&id) else {
            return;
        };
        let hocuspocus = matches!(session.subscriber.framing, Framing::Hocuspocus { .. });
        let scope = session.subscriber.scope;
        match message {
            SyncMessage::SyncStep1(remote) if remote == StateVector::default() => {
                let own = self.awareness.doc().transact().state_vector();
                let frame = self.whole_state_frame(id);
                let subscriber = &self.sessions[&id].subscriber;
                if hocuspocus {
                    self.send_to(subscriber, &Message::Sync(SyncMessage::SyncStep1(own)));
                }
                if let Some(frame) = frame {
                    self.registry.metrics.message(Direction::Out, "sync_step2");
                    subscriber.outbox.send(frame);
                }
            }
            SyncMessage::SyncStep1(remote) => {
                let doc = self.awareness.doc();
                let encode = || {
                    let txn = doc.transact();
                    (txn.encode_diff_v1(&remote), txn.state_vector())
                };
                let (diff, own) = if self.size_estimate >= HEAVY_DOCUMENT_BYTES {
                    heavy(encode)
                } else {
                    encode()
                };
                let subscriber = &self.sessions[&id].subscriber;
                if hocuspocus {
                    self.send_to(subscriber, &Message::Sync(SyncMessage::SyncStep1(own)));
                }
                self.send_to(subscriber, &Message::Sync(SyncMessage::SyncStep2(diff)));
            }
            SyncMessage::SyncStep2(update) if scope == Scope::ReadOnly => {
                // Never applied, never forwarded. As Hocuspocus (`Y.snapshotContainsUpdate`):
                // a Step2 that brings nothing new, deletions included, is "in sync" — a
                // reconnecting read-only provider's Step2 carries the document's whole delete
                // set, and answering it 0 would leave it with unsynced changes forever.
                let contained = protocol::bounded::update(&update).is_ok_and(|u| {
                    let snapshot = self.awareness.doc().transact().snapshot();
                    let mut deletes = u.delete_set().clone();
                    deletes.diff_with(&snapshot.delete_set);
                    u.state_vector() <= snapshot.state_map && deletes.is_empty()
                });
                if hocuspocus {
                    let subscriber = &self.sessions[&id].subscriber;
                    self.send_to(subscriber, &Message::SyncStatus(contained));
                }
            }
            SyncMessage::Update(_) if scope == Scope::ReadOnly => {
                // A read-only session's edit is never saved, and never reported as saved.
                if hocuspocus {
                    let subscriber = &self.sessions[&id].subscriber;
                    self.send_to(subscriber, &Message::SyncStatus(false));
                }
            }
            SyncMessage::SyncStep2(update) | SyncMessage::Update(update) => {
                self.apply_update(Origin::Session { id, hocuspocus }, update);
            }
        }
    }
}
