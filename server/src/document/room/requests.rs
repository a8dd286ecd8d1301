//! The document API's requests, and the `create` webhook's seed.

use super::*;

impl Room {
    pub(super) fn request(&mut self, request: Request) -> Option<Followup> {
        match request {
            Request::State { reply } => {
                let _ = reply.send(Ok(self.full_state()));
            }
            Request::Apply { update, reply } => {
                self.apply_update(Origin::Api(reply), update);
            }
            Request::Edit { edit, reply } => self.edit(edit, reply),
            Request::Durable { reply } => {
                let state = self.full_state();
                let ack = Ack::State((reply, state, self.generation));
                self.acknowledge_when_durable(ack, Instant::now());
            }
            Request::Delete { reason, reply } => {
                return Some(Followup::Delete {
                    reason: format!("{DELETED_REASON_PREFIX}: {reason}"),
                    reply,
                });
            }
        }
        None
    }

    /// Runs an API edit on the live document; its update then goes the way of a client's.
    pub(super) fn edit(
        &mut self,
        edit: Edit,
        reply: tokio::sync::oneshot::Sender<Result<(), RequestError>>,
    ) {
        let started = Instant::now();
        let outcome = {
            let mut txn = self.awareness.doc().transact_mut();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| edit(&mut txn)));
            match ran {
                Ok(Ok(())) => Ok(txn.encode_update_v1()),
                // An edit checks before it writes; if one wrote part of itself anyway, that part
                // is not stored, so the document is rebuilt without it.
                Ok(Err(reason)) => {
                    let partial = !is_empty_update(&txn.encode_update_v1());
                    Err((RequestError::Refused(reason), partial))
                }
                Err(_) => Err((
                    RequestError::Invalid("the edit failed inside yrs".into()),
                    true,
                )),
            }
        };
        let update = match outcome {
            Ok(update) => update,
            Err((error, partial)) => {
                // A refused edit wrote nothing; one that panicked may have written part.
                self.tainted |= partial;
                let _ = reply.send(Err(error));
                return;
            }
        };
        self.registry
            .metrics
            .update_apply_duration
            .observe(started.elapsed().as_secs_f64());
        if !is_empty_update(&update) {
            self.publish_update(&update);
            let author = Arc::from(crate::storage::activity::API_AUTHOR);
            self.store_and_broadcast(update, Some(author));
            self.local_change = Some((self.enqueued, None));
        }
        self.acknowledge_when_durable(Ack::Api(reply), started);
    }

    /// The `create` webhook's answer: each field names a root to seed (ProseMirror JSON, or any
    /// shape the API's JSON takes) if that root is empty. Stored like any change.
    pub(super) fn seed(&mut self, fields: &serde_json::Map<String, serde_json::Value>) {
        let update = {
            let mut txn = self.awareness.doc().transact_mut();
            for (field, value) in fields {
                let empty =
                    crate::api::json::root(&txn, field).is_none_or(|current| current.is_null());
                if !empty {
                    continue;
                }
                let seeded = crate::api::json::Content::parse(field, value).and_then(|content| {
                    crate::api::json::replace(&mut txn, &[(field.clone(), content)])
                });
                if let Err(error) = seeded {
                    tracing::warn!(field, %error, "create webhook: field not seeded");
                }
            }
            txn.encode_update_v1()
        };
        if !is_empty_update(&update) {
            self.publish_update(&update);
            let author = Arc::from(crate::storage::activity::WEBHOOK_AUTHOR);
            self.store_and_broadcast(update, Some(author));
        }
    }
}
