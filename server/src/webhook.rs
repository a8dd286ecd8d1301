//! Webhooks with the bodies and signature of `@hocuspocus/extension-webhook`, so a receiver
//! written for Hocuspocus works unchanged: `POST {"event": ..., "payload": ...}` with
//! `X-Hocuspocus-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! * `connect`: before a session joins a document; a failure (error, timeout, non-2xx) denies
//!   it, as the extension does, and a JSON object answered becomes the session's `context`.
//! * `create`: when a document is loaded (the extension's `onLoadDocument`); each field of a
//!   JSON object answered seeds that root, as ProseMirror JSON, if the root is empty.
//! * `change`: after a change made on this replica is stored, debounced per document (2 s after
//!   the last change, at most 10 s after the first), with the document in the API's JSON form.
//!   With a Redis relay, one replica per window sends it (a Redis key claims the window); a
//!   replica that loses the claim reports its changes in the next window.
//! * `disconnect`: when a session leaves.
//!
//! `change` and `disconnect` go through a bounded queue to a delivery task (timeout, retries
//! with backoff): a room never waits on a webhook. Deliveries are counted by outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Map as JsonMap, Value, json};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{WebhookConfig, WebhookEvents};
use crate::metrics::Metrics;

/// The extension's defaults.
const DEBOUNCE: Duration = Duration::from_secs(2);
const DEBOUNCE_MAX_WAIT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(200);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Queued deliveries before new ones are dropped (and counted).
const QUEUE: usize = 1024;
const CONCURRENT_DELIVERIES: usize = 8;
/// Attempts per `change`/`disconnect` delivery, with doubling backoff from the first delay.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// What a webhook says about the session behind an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSession {
    /// The `connect` answer (or `{}`).
    pub context: Value,
    /// The upgrade request's headers (lower-case names) and query parameters.
    pub request: Arc<RequestInfo>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    pub headers: JsonMap<String, Value>,
    pub parameters: JsonMap<String, Value>,
}

enum Job {
    Change {
        name: Arc<str>,
        session: Option<Arc<HookSession>>,
    },
    Disconnect {
        name: Arc<str>,
        session: Arc<HookSession>,
    },
    /// `version.created` or `version.restored`.
    Version { event: &'static str, payload: Value },
}

struct PendingChange {
    first: Instant,
    last: Instant,
    session: Option<Arc<HookSession>>,
}

pub struct Webhooks {
    url: reqwest::Url,
    secret: String,
    events: WebhookEvents,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    queue: mpsc::Sender<Job>,
    changes: Mutex<HashMap<Arc<str>, PendingChange>>,
    documents: OnceLock<Weak<dyn Documents>>,
}

/// What the webhooks read of the documents they describe. The document registry implements it
/// (webhooks know nothing of rooms; rooms report to the webhooks).
#[async_trait::async_trait]
pub trait Documents: Send + Sync + 'static {
    /// The whole state of `name` as one v1 update (`None`: it holds nothing).
    async fn state(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// Takes `key` for `ttl` if no replica holds it: `true` for the replica that got it (and
    /// always, without a relay).
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, String>;
}

impl Webhooks {
    /// Starts the delivery task and the debounce clock (both end with `shutdown`, after
    /// sending what is due).
    pub fn start(
        config: &WebhookConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        let webhooks = Arc::new(Self {
            url: config.url.clone(),
            secret: config.secret.clone(),
            events: config.events,
            client,
            metrics,
            queue,
            changes: Mutex::default(),
            documents: OnceLock::new(),
        });
        tokio::spawn(deliver(webhooks.clone(), jobs));
        tokio::spawn(debounce(Arc::downgrade(&webhooks), shutdown));
        webhooks
    }

    /// Gives the webhooks the documents they describe.
    pub fn attach(&self, documents: Weak<dyn Documents>) {
        let _ = self.documents.set(documents);
    }

    pub fn events(&self) -> WebhookEvents {
        self.events
    }

    /// `sha256=<hex>` of the body, as `createSignature` in the extension.
    pub fn signature(secret: &str, body: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    /// Sends one event and returns the answer's JSON (or `Value::Null` for another body).
    async fn send(&self, event: &'static str, payload: Value) -> Result<Value, String> {
        let body = serde_json::to_vec(&json!({"event": event, "payload": payload}))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "application/json")
            .header(
                "X-Hocuspocus-Signature-256",
                Self::signature(&self.secret, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the receiver answered {status}"));
        }
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(if json && !text.is_empty() {
            serde_json::from_str(&text).map_err(|e| format!("the receiver's JSON: {e}"))?
        } else {
            Value::Null
        })
    }

    fn count(&self, event: &'static str, outcome: &'static str) {
        self.metrics
            .webhooks
            .with_label_values(&[event, outcome])
            .inc();
    }

    /// The `connect` event: `Ok(context)` admits the session, `Err` denies it.
    pub async fn connect(&self, name: &str, request: &RequestInfo) -> Result<Value, String> {
        let payload = json!({
            "documentName": name,
            "requestHeaders": request.headers,
            "requestParameters": request.parameters,
        });
        match self.send("connect", payload).await {
            Ok(answer) => {
                self.count("connect", "sent");
                Ok(if answer.is_object() {
                    answer
                } else {
                    json!({})
                })
            }
            Err(error) => {
                self.count("connect", "failed");
                tracing::warn!(document = name, %error, "connect webhook failed; denying");
                Err(format!(
                    "permission-denied: connect webhook failed: {error}"
                ))
            }
        }
    }

    /// The `create` event (each load): the fields to seed, if the receiver named any.
    pub async fn create(&self, name: &str) -> Option<JsonMap<String, Value>> {
        let payload = json!({
            "documentName": name,
            "requestHeaders": {},
            "requestParameters": {},
        });
        match self.send("create", payload).await {
            Ok(Value::Object(fields)) => {
                self.count("create", "sent");
                Some(fields)
            }
            Ok(_) => {
                self.count("create", "sent");
                None
            }
            Err(error) => {
                self.count("create", "failed");
                tracing::warn!(document = name, %error, "create webhook failed");
                None
            }
        }
    }

    /// A session left its document.
    pub fn disconnect(&self, name: &Arc<str>, session: Arc<HookSession>) {
        if self.events.disconnect {
            self.enqueue(
                "disconnect",
                Job::Disconnect {
                    name: name.clone(),
                    session,
                },
            );
        }
    }

    /// A change made here (by `session`, or the API) is stored.
    pub fn changed(&self, name: &Arc<str>, session: Option<Arc<HookSession>>) {
        if !self.events.change {
            return;
        }
        let now = Instant::now();
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = changes.entry(name.clone()).or_insert(PendingChange {
            first: now,
            last: now,
            session: None,
        });
        pending.last = now;
        if session.is_some() {
            pending.session = session;
        }
    }

    /// A version was made (`version.created`) or restored (`version.restored`, with who did it).
    pub fn version_event(
        &self,
        event: &'static str,
        name: &str,
        version: &crate::storage::VersionInfo,
        restored_by: Option<&str>,
    ) {
        let wanted = match event {
            "version.created" => self.events.version_created,
            _ => self.events.version_restored,
        };
        if !wanted {
            return;
        }
        let mut payload = json!({"documentName": name, "version": version});
        if let Some(author) = restored_by {
            payload["restoredBy"] = Value::from(author);
        }
        self.enqueue(event, Job::Version { event, payload });
    }

    fn enqueue(&self, event: &'static str, job: Job) {
        if self.queue.try_send(job).is_err() {
            self.count(event, "dropped");
        }
    }

    /// Changes whose window closed.
    fn due(&self, now: Instant, all: bool) -> Vec<(Arc<str>, Option<Arc<HookSession>>)> {
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let due: Vec<Arc<str>> = changes
            .iter()
            .filter(|(_, p)| all || now >= p.last + DEBOUNCE || now >= p.first + DEBOUNCE_MAX_WAIT)
            .map(|(name, _)| name.clone())
            .collect();
        due.into_iter()
            .filter_map(|name| changes.remove(&name).map(|p| (name, p.session)))
            .collect()
    }

    async fn deliver_change(&self, name: Arc<str>, session: Option<Arc<HookSession>>) {
        let Some(documents) = self.documents.get().and_then(Weak::upgrade) else {
            return;
        };
        match documents
            .claim(&format!("webhook:change:{name}"), DEBOUNCE)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                // Another replica sends this window's change; ours go in the next one.
                self.changed(&name, session);
                return;
            }
            Err(error) => tracing::debug!(%error, "could not claim the change window"),
        }
        let document = match documents.state(&name).await {
            Ok(Some(state)) => match crate::api::json::document_of_state(&state) {
                Ok(document) => document,
                Err(error) => {
                    tracing::warn!(document = %name, %error, "change webhook: unreadable state");
                    return;
                }
            },
            Ok(None) => JsonMap::new(),
            Err(error) => {
                tracing::warn!(document = %name, %error, "change webhook: document not readable");
                self.count("change", "failed");
                return;
            }
        };
        let session = session.unwrap_or_default();
        let payload = json!({
            "document": document,
            "documentName": &*name,
            "context": if session.context.is_null() { json!({}) } else { session.context.clone() },
            "requestHeaders": session.request.headers,
            "requestParameters": session.request.parameters,
        });
        self.with_retries("change", payload).await;
    }

    async fn with_retries(&self, event: &'static str, payload: Value) {
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            match self.send(event, payload.clone()).await {
                Ok(_) => {
                    self.count(event, "sent");
                    return;
                }
                Err(error) if attempt == ATTEMPTS => {
                    tracing::warn!(event, %error, attempts = ATTEMPTS, "webhook not delivered");
                }
                Err(error) => {
                    tracing::debug!(event, %error, attempt, "webhook failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        self.count(event, "failed");
    }
}

async fn deliver(webhooks: Arc<Webhooks>, mut jobs: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(job) = jobs.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let webhooks = webhooks.clone();
        tokio::spawn(async move {
            match job {
                Job::Change { name, session } => webhooks.deliver_change(name, session).await,
                Job::Disconnect { name, session } => {
                    let payload = json!({
                        "documentName": &*name,
                        "requestHeaders": session.request.headers,
                        "requestParameters": session.request.parameters,
                        "context": session.context,
                    });
                    webhooks.with_retries("disconnect", payload).await;
                }
                Job::Version { event, payload } => webhooks.with_retries(event, payload).await,
            }
            drop(slot);
        });
    }
}

/// Moves changes whose window closed to the delivery queue; at shutdown, all of them.
async fn debounce(webhooks: Weak<Webhooks>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        let Some(hooks) = webhooks.upgrade() else {
            return;
        };
        for (name, session) in hooks.due(Instant::now(), last) {
            hooks.enqueue("change", Job::Change { name, session });
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension's `createSignature` (Node's createHmac('sha256', secret)): a known vector.
    #[test]
    fn signature_is_the_extensions() {
        assert_eq!(
            Webhooks::signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
