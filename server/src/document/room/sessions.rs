//! Sessions: joining, leaving, being denied or closed, and sending frames to them.

use super::*;

impl Room {
    pub(super) fn join(
        &mut self,
        subscriber: Subscriber,
        reply: tokio::sync::oneshot::Sender<Result<(), JoinError>>,
    ) {
        if reply.send(Ok(())).is_err() {
            return; // the session gave up waiting
        }
        let metrics = &self.registry.metrics;
        metrics.document_sessions.inc();
        // y-websocket servers open with their Step1; Hocuspocus servers wait for the client's.
        if subscriber.framing == Framing::YWebsocket {
            let sv = self.awareness.doc().transact().state_vector();
            self.send_to(&subscriber, &Message::Sync(SyncMessage::SyncStep1(sv)));
        }
        // Every current awareness state, right away.
        if let Ok(update) = self.awareness.update()
            && !update.clients.is_empty()
        {
            self.send_to(&subscriber, &Message::Awareness(update));
        }
        self.sessions.insert(
            subscriber.id,
            Session {
                subscriber,
                awareness_clients: HashSet::new(),
            },
        );
    }

    pub(super) fn leave(&mut self, id: SubscriberId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        self.registry.metrics.document_sessions.dec();
        if let (Some(webhooks), Some(hook)) = (self.registry.webhooks(), &session.subscriber.hook) {
            webhooks.disconnect(&self.name, hook.clone());
        }
        self.pending_acks
            .retain(|(_, ack, _)| !matches!(ack, Ack::Session(who) if *who == id));
        let clients: Vec<ClientID> = session.awareness_clients.into_iter().collect();
        for client in &clients {
            self.awareness_owner.remove(client);
            self.reserve_awareness(*client, Some(session.subscriber.identity.clone()));
        }
        if let Some(removal) = self.remove_awareness(clients) {
            self.relay(&Message::Awareness(removal));
        }
    }

    /// Ends one session of this document: it is told why (PermissionDenied for that document;
    /// a y-websocket socket is closed); a Hocuspocus socket and its other documents stay.
    pub(super) fn deny(&mut self, id: SubscriberId, reason: &str) {
        let reason = reason.to_owned();
        tracing::info!(subscriber = id.0, %reason, "ending a session");
        if let Some(session) = self.sessions.get(&id) {
            let subscriber = &session.subscriber;
            let message = Message::Auth(protocol::Auth::PermissionDenied {
                reason: reason.clone(),
            });
            self.send_to(subscriber, &message);
            if let Some(address) = subscriber.framing.address() {
                subscriber.outbox.end_session(address);
            }
            if subscriber.framing == Framing::YWebsocket {
                subscriber
                    .outbox
                    .close(crate::outbox::close_code::POLICY, reason);
            }
        }
        self.leave(id);
    }

    /// A user's access was revoked: each of its sessions ends (PermissionDenied), or from now on
    /// has its edits refused (`SyncStatus(false)`, never stored) as a read-only session.
    pub(super) fn revoke(&mut self, subject: &str, mode: crate::revocation::Mode) {
        let affected: Vec<SubscriberId> = self
            .sessions
            .values()
            .filter(|session| {
                matches!(&session.subscriber.identity, Identity::Subject(s) if &**s == subject)
            })
            .map(|session| session.subscriber.id)
            .collect();
        for id in affected {
            match mode {
                crate::revocation::Mode::End => self.deny(id, "permission-denied: access revoked"),
                crate::revocation::Mode::ReadOnly => {
                    if let Some(session) = self.sessions.get_mut(&id) {
                        session.subscriber.scope = Scope::ReadOnly;
                        tracing::info!(subscriber = id.0, "access revoked to read-only");
                    }
                }
            }
        }
    }

    /// Malformed input from one session: close that socket only.
    pub(super) fn close_session(&mut self, id: SubscriberId, reason: String) {
        tracing::warn!(subscriber = id.0, %reason, "closing a session after bad input");
        if let Some(session) = self.sessions.get(&id) {
            session.subscriber.outbox.close_invalid(reason);
        }
    }

    /// Closes every session's socket with a code all providers reconnect on.
    pub(super) fn close_all(&mut self) {
        for session in self.sessions.values() {
            session.subscriber.outbox.close(
                crate::outbox::close_code::RESTART,
                "document reloading".into(),
            );
        }
    }

    pub(super) fn send_to(&self, subscriber: &Subscriber, message: &Message) {
        let frame = match subscriber.framing.address() {
            Some(address) => protocol::encode_frame(address, message),
            None => match protocol::encode_yws(message) {
                Some(frame) => frame,
                None => return,
            },
        };
        self.registry
            .metrics
            .message(Direction::Out, message.kind());
        subscriber.outbox.send(Bytes::from(frame));
    }

    /// Sends one message to every session (including the origin): `body` is its y-websocket
    /// encoding, shared by every socket; Hocuspocus sessions get their address before it.
    pub(super) fn broadcast(&self, body: Vec<u8>, kind: &'static str) {
        let body = Bytes::from(body);
        for session in self.sessions.values() {
            let head = session.subscriber.framing.prefix();
            session.subscriber.outbox.send(Outgoing {
                head,
                body: body.clone(),
            });
        }
        self.registry
            .metrics
            .messages(Direction::Out, kind, self.sessions.len() as u64);
    }
}
