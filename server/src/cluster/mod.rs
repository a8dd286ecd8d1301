//! The Redis relay between replicas (`REDIS_URL`): what the clients of one replica change
//! reaches the clients of every other replica that has the document loaded.
//!
//! Channels and payloads are those of `@hocuspocus/extension-redis` (document-channel replies,
//! as Node ≤ 4.6 uses them): channel `<prefix>:<document>`, payload
//! `[u8 length][identifier][Hocuspocus frame]` ([`envelope`]). The flows, all driven by the
//! document's room:
//!
//! * **loaded** (once subscribed): publish `Sync Step1(state vector)` and `QueryAwareness`.
//!   Every peer answers with `SyncReply Step1(its state vector)` and `Sync Step2(what we
//!   lack)`; we answer the SyncReply with `Sync Step2(what it lacks)`.
//! * **local update**: publish `Sync Update(update)`, pushed rather than pulled, so a change
//!   costs one message instead of a state-vector round trip per peer (Node peers apply it like
//!   any update).
//! * **local awareness change**: publish `Awareness(changed clients)`.
//! * **healing**: Redis pub/sub is at-most-once. A room publishes Step1 again when an update
//!   arrives whose dependencies it lacks (a lost message), when the subscription is
//!   re-established after a Redis outage or a lagging reader, and every [`RESYNC_INTERVAL`]
//!   while clients are connected.
//!
//! Our own messages come back from Redis and are dropped by identifier. Nothing here blocks a
//! room: publishes go through a bounded queue (full = dropped and counted; the next resync
//! heals), subscriptions are made by a background task that tells the room when it may sync.

mod batcher;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use fred::prelude::{Builder, Config as RedisConfig, ReconnectPolicy};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use crate::protocol::envelope;
use crate::protocol::{self, Frame, Message};

/// The document name of the readiness probe's channel: one no client can open (document names
/// are printable; a Node peer's names are its clients' room names).
const PROBE_DOCUMENT: &str = "\u{0}collab-server-probe";
/// How often a room with clients asks its peers for anything it missed.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Relay messages queued for publishing before new ones are dropped.
const PUBLISH_QUEUE: usize = 16 * 1024;
/// Relay messages published in one pipeline at most (pipelines are paced by
/// [`batcher::LINGER`]).
const PUBLISH_BATCH: usize = 4096;
/// Messages buffered between the Redis reader and our dispatcher.
const RECEIVE_BUFFER: usize = 16 * 1024;
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// One connection attempt (TCP, TLS and the handshake) before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A subscription that failed while Redis stayed connected is retried this often.
const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the relay hands to this process's documents.
pub enum Inbound {
    /// A peer's message for the document, of the document's generation at the peer (`None`
    /// from a peer that does not say: a Node server).
    Message {
        message: Message,
        generation: Option<u64>,
    },
    /// Ask the peers for anything the document lacks (the subscription is (re)established).
    Resync,
}

/// Where the relay delivers: the loaded documents of this process (the document registry
/// implements it; the relay knows nothing of rooms).
pub trait Rooms: Send + Sync + 'static {
    /// Hands `inbound` to document `name` if it is loaded. Never waits.
    fn deliver(&self, document: &str, inbound: Inbound);
    /// Hands a fresh `inbound` to every loaded document.
    fn deliver_all(&self, inbound: &dyn Fn() -> Inbound);
}

/// The Redis connection as its events last described it: shared with the event listeners.
#[derive(Default)]
struct Link {
    connected: std::sync::atomic::AtomicBool,
    /// The last connection error, with its cause (refused, DNS, TLS, authentication).
    last_error: std::sync::Mutex<Option<String>>,
}

impl Link {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records an error; `true` when its text differs from the last one (worth a log line).
    fn failed(&self, error: String) -> bool {
        self.connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = last.as_deref() != Some(error.as_str());
        *last = Some(error);
        changed
    }

    fn connected(&self) {
        self.connected
            .store(true, std::sync::atomic::Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// An error of fred's with the causes it wraps (a TLS or I/O error's own text), so a log line
/// says "certificate" or "connection refused", not only "IO Error".
fn describe(error: &fred::error::Error) -> String {
    crate::describe_error(error)
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid REDIS_URL: {0}")]
    Url(#[source] fred::error::Error),
    #[error("failed to set up the Redis client: {0}")]
    Client(#[source] fred::error::Error),
    #[error("Redis is not reachable: {0}")]
    Unreachable(String),
    #[error(
        "Redis refuses this user the relay's channels ({cause}): grant them with `ACL SETUSER <user> &{prefix}:*`; until then replicas do not see each other's edits"
    )]
    ChannelsRefused { prefix: String, cause: String },
}

enum Control {
    Watch(Arc<str>),
    Unwatch(Arc<str>),
}

/// The relay: one publishing and one subscribing connection per process.
pub struct Cluster {
    identifier: Arc<str>,
    prefix: String,
    publisher: Client,
    subscriber: SubscriberClient,
    outgoing: mpsc::Sender<(String, Bytes)>,
    control: mpsc::UnboundedSender<Control>,
    /// Taken by [`Cluster::attach`].
    pending: std::sync::Mutex<Option<Pending>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    link: Arc<Link>,
}

struct Pending {
    outgoing: mpsc::Receiver<(String, Bytes)>,
    control: mpsc::UnboundedReceiver<Control>,
}

impl Cluster {
    /// Creates the clients and starts connecting in the background: the server starts (and
    /// `/ready` says 503) while Redis is unreachable, and reconnects for as long as it runs.
    pub fn connect(
        config: &ClusterConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let mut redis = RedisConfig::from_url(&config.url).map_err(ClusterError::Url)?;
        redis.fail_fast = false;
        let mut builder = Builder::from_config(redis);
        builder
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .with_performance_config(|performance| {
                performance.broadcast_channel_capacity = RECEIVE_BUFFER;
            })
            .with_connection_config(|connection| {
                // A TLS handshake against a plain-text port (rediss:// to redis://) hangs
                // rather than fails: give up on it soon and say so.
                connection.connection_timeout = CONNECT_TIMEOUT;
            });
        let publisher = builder.build().map_err(ClusterError::Client)?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(ClusterError::Client)?;
        let link = Arc::new(Link::default());
        let relay_up = metrics.dependency_up.with_label_values(&["relay"]);
        relay_up.set(0);
        {
            let (link, relay_up) = (link.clone(), relay_up.clone());
            let tls = config.url.starts_with("rediss://");
            publisher.on_error(move |(error, server)| {
                let mut cause = describe(&error);
                if tls && *error.kind() == fred::error::ErrorKind::Timeout {
                    cause.push_str(
                        " (REDIS_URL is rediss://: a TLS handshake that gets no answer usually means the server speaks plain text; use redis:// for it)",
                    );
                }
                relay_up.set(0);
                if link.failed(cause.clone()) {
                    let server = server.map(|server| server.to_string()).unwrap_or_default();
                    tracing::warn!(%server, error = %cause, "Redis relay: connection failed; replicas do not see each other's edits until it connects");
                }
                std::future::ready(Ok(()))
            });
        }
        {
            let (link, relay_up) = (link.clone(), relay_up.clone());
            publisher.on_reconnect(move |server| {
                relay_up.set(1);
                link.connected();
                tracing::info!(%server, "Redis relay connected");
                std::future::ready(Ok(()))
            });
        }
        publisher.connect();
        subscriber.connect();
        let (outgoing, outgoing_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            identifier: Arc::from(config.identifier.as_str()),
            prefix: config.prefix.clone(),
            publisher,
            subscriber,
            outgoing,
            control,
            pending: std::sync::Mutex::new(Some(Pending {
                outgoing: outgoing_rx,
                control: control_rx,
            })),
            metrics,
            shutdown,
            link,
        }))
    }

    /// Waits up to `timeout` for the first connection to Redis, so the start-up log says
    /// whether the relay works and, if not, why (refused, DNS, TLS, authentication). The server
    /// starts either way: it keeps serving its own clients and reconnects in the background.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ClusterError> {
        match tokio::time::timeout(timeout, self.publisher.wait_for_connect()).await {
            Ok(Ok(())) => {
                self.link.connected();
                self.metrics
                    .dependency_up
                    .with_label_values(&["relay"])
                    .set(1);
                // Connected is not enough: the user may not use the channels.
                self.ping().await
            }
            Ok(Err(error)) => Err(ClusterError::Unreachable(describe(&error))),
            Err(_) => Err(ClusterError::Unreachable(match self.link.last_error() {
                Some(cause) => format!("not connected after {} s: {cause}", timeout.as_secs()),
                None => format!("not connected after {} s (no answer)", timeout.as_secs()),
            })),
        }
    }

    /// Starts the relay's tasks; rooms are reached through `registry`. Call once.
    pub fn attach(self: &Arc<Self>, registry: Arc<dyn Rooms>) {
        let Some(pending) = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let span = tracing::info_span!("cluster", identifier = %self.identifier);
        tokio::spawn(
            self.clone()
                .publish_loop(pending.outgoing)
                .instrument(span.clone()),
        );
        tokio::spawn(
            self.clone()
                .subscription_loop(pending.control, registry.clone())
                .instrument(span.clone()),
        );
        tokio::spawn(self.clone().receive_loop(registry).instrument(span));
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    fn channel(&self, document: &str) -> String {
        format!("{}:{document}", self.prefix)
    }

    /// Queues `message` for every peer of `document`. Never waits.
    /// Takes `key` (under this relay's prefix) for `ttl` if no replica holds it: `true` for the
    /// replica that got it.
    pub async fn claim(&self, key: &str, ttl: std::time::Duration) -> Result<bool, ClusterError> {
        use fred::interfaces::KeysInterface;
        use fred::types::{Expiration, SetOptions};
        let claimed: Option<String> = self
            .publisher
            .set(
                format!("{}:{key}", self.prefix),
                self.identifier.to_string(),
                Some(Expiration::PX(ttl.as_millis().max(1) as i64)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(ClusterError::Client)?;
        Ok(claimed.is_some())
    }

    pub fn publish(&self, document: &str, generation: u64, message: &Message) {
        self.publish_frame(
            document,
            generation,
            &protocol::encode_frame(document, message),
        );
    }

    /// Queues an already encoded Hocuspocus frame (addressed to the plain document name) of
    /// the document's `generation`.
    pub fn publish_frame(&self, document: &str, generation: u64, frame: &[u8]) {
        let payload = Bytes::from(envelope::encode_generation(
            &self.identifier,
            generation,
            frame,
        ));
        match self.outgoing.try_send((self.channel(document), payload)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.metrics.relay_dropped.inc(),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Subscribes to `document`'s channel in the background; its room gets
    /// [`Inbound::Resync`] once the subscription stands.
    pub fn watch(&self, document: Arc<str>) {
        let _ = self.control.send(Control::Watch(document));
    }

    /// Drops one interest in `document`'s channel (unsubscribed when none is left).
    pub fn unwatch(&self, document: Arc<str>) {
        let _ = self.control.send(Control::Unwatch(document));
    }

    /// Whether Redis answers and lets this user use the relay's channels (for `/ready`): a
    /// `PUBLISH` on a channel under the prefix that no document has. Redis applies one channel
    /// ACL to PUBLISH and SUBSCRIBE, and a refused SUBSCRIBE is not reported by the client
    /// library (fred 10 takes it for a success), so this is where a user without channel
    /// permissions (Redis 7's default for a new ACL user) is found out.
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let ping = async {
            let published: Result<i64, _> = self
                .publisher
                .publish(format!("{}:{PROBE_DOCUMENT}", self.prefix), "")
                .await;
            match published {
                Ok(_) => Ok(()),
                Err(error) if describe(&error).contains("NOPERM") => {
                    self.metrics
                        .dependency_up
                        .with_label_values(&["relay"])
                        .set(0);
                    Err(ClusterError::ChannelsRefused {
                        prefix: self.prefix.clone(),
                        cause: describe(&error),
                    })
                }
                Err(error) => Err(ClusterError::Unreachable(describe(&error))),
            }
        };
        tokio::time::timeout(PING_TIMEOUT, ping)
            .await
            .map_err(|_| {
                ClusterError::Unreachable(match self.link.last_error() {
                    Some(cause) => format!(
                        "no answer within {} s; the last connection attempt failed: {cause}",
                        PING_TIMEOUT.as_secs()
                    ),
                    None => format!("no answer within {} s", PING_TIMEOUT.as_secs()),
                })
            })?
    }

    async fn publish_loop(self: Arc<Self>, outgoing: mpsc::Receiver<(String, Bytes)>) {
        let mut batches = batcher::Batcher::new(outgoing, batcher::LINGER, PUBLISH_BATCH);
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        loop {
            let received = tokio::select! {
                received = batches.next(&mut batch) => received,
                _ = self.shutdown.cancelled() => break,
            };
            if received == 0 {
                break;
            }
            // Every PUBLISH of the batch is queued with the client before it writes any, so it
            // writes them all and flushes once (fred's `pipeline()` flushes after each command
            // of a pipeline: a system call and a round of Redis' event loop per message).
            let results =
                futures_util::future::join_all(batch.drain(..).map(|(channel, payload)| {
                    self.publisher.publish::<i64, _, _>(channel, payload)
                }))
                .await;
            let failed = results.iter().filter(|r| r.is_err()).count();
            self.metrics
                .relay_messages_out
                .inc_by((results.len() - failed) as u64);
            if failed > 0 {
                self.metrics.relay_errors.inc_by(failed as u64);
                if let Some(Err(error)) = results.iter().find(|r| r.is_err()) {
                    tracing::warn!(%error, failed, "failed to publish to Redis; peers resync later");
                }
            }
        }
        let _ = self.publisher.quit().await;
    }

    /// Keeps our subscriptions: one per document with a room, counted so that a room reopened
    /// before the old one unsubscribed keeps its channel. Re-subscribes after a reconnect.
    async fn subscription_loop(
        self: Arc<Self>,
        mut control: mpsc::UnboundedReceiver<Control>,
        registry: Arc<dyn Rooms>,
    ) {
        let mut watched: HashMap<Arc<str>, usize> = HashMap::new();
        // Documents whose subscription failed while Redis stayed connected: retried on a timer,
        // so a replica never silently stops receiving a document's relay.
        let mut failed: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
        let mut retry = tokio::time::interval(SUBSCRIBE_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reconnects = self.subscriber.reconnect_rx();
        let mut connected_once = false;
        loop {
            tokio::select! {
                _ = retry.tick(), if !failed.is_empty() => {
                    for document in std::mem::take(&mut failed) {
                        if !watched.contains_key(&document) {
                            continue;
                        }
                        match self.subscribe(&document).await {
                            Ok(()) => registry.deliver(&document, Inbound::Resync),
                            Err(error) => {
                                self.metrics.relay_errors.inc();
                                tracing::debug!(%document, %error, "subscribe retry failed");
                                failed.insert(document);
                            }
                        }
                    }
                }
                command = control.recv() => match command {
                    Some(Control::Watch(document)) => {
                        let count = watched.entry(document.clone()).or_default();
                        *count += 1;
                        if *count == 1 {
                            match self.subscribe(&document).await {
                                Ok(()) => {}
                                Err(error) => {
                                    self.metrics.relay_errors.inc();
                                    tracing::warn!(%document, %error, "failed to subscribe; retrying");
                                    failed.insert(document);
                                    continue;
                                }
                            }
                        }
                        registry.deliver(&document, Inbound::Resync);
                    }
                    Some(Control::Unwatch(document)) => {
                        if let Some(count) = watched.get_mut(&document) {
                            *count -= 1;
                            if *count == 0 {
                                watched.remove(&document);
                                failed.remove(&document);
                                if let Err(error) = self.subscriber.unsubscribe(self.channel(&document)).await {
                                    tracing::debug!(%document, %error, "failed to unsubscribe");
                                }
                            }
                        }
                    }
                    None => break,
                },
                reconnected = reconnects.recv() => {
                    match reconnected {
                        Ok(server) => {
                            // The first connection is not a reconnect worth a log line.
                            if connected_once {
                                tracing::info!(%server, documents = watched.len(), "reconnected to Redis; resubscribing");
                            }
                            connected_once = true;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    for document in watched.keys() {
                        if let Err(error) = self.subscribe(document).await {
                            self.metrics.relay_errors.inc();
                            tracing::warn!(%document, %error, "failed to resubscribe; retrying");
                            failed.insert(document.clone());
                            continue;
                        }
                        registry.deliver(document, Inbound::Resync);
                    }
                }
                _ = self.shutdown.cancelled() => break,
            }
        }
        let _ = self.subscriber.quit().await;
    }

    /// Subscribes to a document's channel, within [`SUBSCRIBE_TIMEOUT`]: a refused SUBSCRIBE
    /// may never be answered the way the client waits for, and the subscription loop must not
    /// hang on it.
    async fn subscribe(&self, document: &str) -> Result<(), String> {
        match tokio::time::timeout(
            SUBSCRIBE_TIMEOUT,
            self.subscriber.subscribe(self.channel(document)),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer within {} s",
                SUBSCRIBE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Routes every relay message to the room of its document.
    async fn receive_loop(self: Arc<Self>, registry: Arc<dyn Rooms>) {
        let mut messages = self.subscriber.message_rx();
        let prefix = format!("{}:", self.prefix);
        loop {
            let message = tokio::select! {
                message = messages.recv() => message,
                _ = self.shutdown.cancelled() => break,
            };
            let message = match message {
                Ok(message) => message,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    self.metrics.relay_dropped.inc_by(missed);
                    tracing::warn!(
                        missed,
                        "fell behind the Redis relay; resyncing every document"
                    );
                    registry.deliver_all(&|| Inbound::Resync);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let Some(document) = message.channel.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let Some(payload) = message.value.as_bytes() else {
                continue;
            };
            match decode(&self.identifier, payload) {
                Ok(Some((message, generation))) => {
                    self.metrics.relay_messages_in.inc();
                    registry.deliver(
                        document,
                        Inbound::Message {
                            message,
                            generation,
                        },
                    );
                }
                Ok(None) => {}
                Err(reason) => {
                    self.metrics.relay_errors.inc();
                    tracing::debug!(document, %reason, "ignored a malformed relay message");
                }
            }
        }
    }
}

/// A relay message for a room, with the generation it was sent in: `None` for our own, an
/// error for anything malformed.
fn decode(own_identifier: &str, payload: &[u8]) -> Result<Option<(Message, Option<u64>)>, String> {
    let envelope = envelope::open(payload).map_err(|e| e.to_string())?;
    if envelope.sender == own_identifier {
        return Ok(None);
    }
    match protocol::decode_frame(envelope.frame).map_err(|e| e.to_string())? {
        Frame::Document { message, .. } => Ok(Some((message, envelope.generation))),
        Frame::Ping | Frame::Pong => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use yrs::StateVector;
    use yrs::sync::SyncMessage;

    use super::*;

    #[test]
    fn own_messages_are_dropped_and_others_decoded() {
        let frame = protocol::encode_frame(
            "doc",
            &Message::Sync(SyncMessage::SyncStep1(StateVector::default())),
        );
        let step1 = Message::Sync(SyncMessage::SyncStep1(StateVector::default()));
        assert_eq!(
            decode("me", &envelope::encode_generation("me", 3, &frame)),
            Ok(None)
        );
        // A Node peer's (no generation) and another replica of ours (its generation).
        let theirs = envelope::encode("node-31001", &frame);
        assert_eq!(decode("me", &theirs), Ok(Some((step1.clone(), None))));
        let peer = envelope::encode_generation("other", 4, &frame);
        assert_eq!(decode("me", &peer), Ok(Some((step1, Some(4)))));
        assert!(decode("me", &envelope::encode("x", b"\x03doc\x63")).is_err());
    }

    #[test]
    fn default_identifiers_differ_and_fit_the_envelope() {
        use crate::config::default_identifier;
        let (a, b) = (default_identifier(), default_identifier());
        assert_ne!(a, b);
        assert!(a.len() <= envelope::MAX_IDENTIFIER_BYTES);
    }
}
