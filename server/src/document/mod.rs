//! Documents: exactly one owner task ("room") per loaded document.
//!
//! [`Registry::open`] atomically gets or spawns the room of a name; connections then talk to it
//! through its bounded command channel. The room owns the yrs `Doc` and `Awareness`, applies
//! updates, fans frames out to every subscriber's outbox (never blocking on a slow one), writes
//! updates to the store and acknowledges them once durable. It unloads itself after the last
//! subscriber left and everything is stored. The registry's lock is taken only to open and to
//! retire a room, never on the hot path.

mod room;
mod versions;

pub use versions::{AUTO_AUTHOR, VersionPolicy};

use std::collections::HashMap;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use yrs::sync::{AwarenessUpdate, SyncMessage};

use crate::cluster::{Cluster, Inbound, Rooms};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::protocol::{Message, Scope};
use crate::storage::DocumentStore;
use crate::webhook::{HookSession, Webhooks};

/// Commands queued per room before senders wait.
const ROOM_QUEUE: usize = 1024;

/// Identifies one document session (one socket × one address) inside a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriberId(pub u64);

impl SubscriberId {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SubscriberId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// How frames for a subscriber are framed on its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Hocuspocus: every frame carries this address (the raw name or 4.x routing key), and
    /// starts with `prefix`, the address encoded once (a frame is the prefix and then what a
    /// y-websocket frame of the same message holds).
    Hocuspocus { address: Arc<str>, prefix: Bytes },
    /// y-websocket: no address; the room was chosen by the URL.
    YWebsocket,
}

impl Framing {
    pub fn hocuspocus(address: Arc<str>) -> Self {
        let prefix = Bytes::from(crate::protocol::encode_address(&address));
        Framing::Hocuspocus { address, prefix }
    }

    /// What goes before a message's framing-independent body: the encoded address, or nothing.
    pub fn prefix(&self) -> Bytes {
        match self {
            Framing::Hocuspocus { prefix, .. } => prefix.clone(),
            Framing::YWebsocket => Bytes::new(),
        }
    }

    pub fn address(&self) -> Option<&str> {
        match self {
            Framing::Hocuspocus { address, .. } => Some(address),
            Framing::YWebsocket => None,
        }
    }
}

/// Who a session is, for what outlives it: the awareness ids it used stay reserved for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The token's `sub`.
    Subject(Arc<str>),
    /// No subject (no tokens, or tokens without `sub`): the client's address (behind
    /// `COLLAB_SERVER_TRUSTED_PROXIES`, the one forwarded).
    Address(std::net::IpAddr),
}

#[derive(Clone)]
pub struct Subscriber {
    pub id: SubscriberId,
    pub framing: Framing,
    pub scope: Scope,
    pub identity: Identity,
    pub outbox: Outbox,
    /// What webhooks report about this session (only when webhooks are configured).
    pub hook: Option<Arc<HookSession>>,
}

/// Why a session could not join a document.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    /// The stored state could not be loaded; the document is not served (serving it empty
    /// would let a client overwrite real content).
    #[error("document could not be loaded: {0}")]
    Load(String),
    /// The server is shutting down.
    #[error("server is shutting down")]
    ShuttingDown,
}

/// Why a request of the document API failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("malformed update: {0}")]
    Malformed(String),
    #[error("update could not be applied: {0}")]
    Invalid(String),
    #[error("the document would exceed {0} bytes")]
    TooLarge(usize),
    /// The edit refused to run (for example a root of another type); nothing changed.
    #[error("{0}")]
    Refused(String),
    /// Updates in flight did not become durable in time; nothing was deleted.
    #[error("{0}")]
    Unavailable(String),
}

/// A change computed inside the room, on the live document, in one transaction. `Err` leaves
/// the document untouched: an edit checks before it writes.
pub type Edit = Box<dyn FnOnce(&mut yrs::TransactionMut<'_>) -> Result<(), String> + Send>;

/// What the document API asks of a room. Every reply comes once the request's effect is durable.
pub enum Request {
    /// The whole document as one Yjs v1 update.
    State {
        reply: oneshot::Sender<Result<Vec<u8>, RequestError>>,
    },
    /// Applies an update as if a client had sent it (fanned out, relayed, stored).
    Apply {
        update: Vec<u8>,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    /// Runs an edit; its transaction's update is then treated like [`Request::Apply`]'s.
    Edit {
        edit: Edit,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    /// The whole document as one Yjs v1 update once everything applied before this request is
    /// durable, with the generation it belongs to (what a version of it must name).
    Durable {
        reply: oneshot::Sender<Result<(Vec<u8>, u64), RequestError>>,
    },
    /// Ends every session of the document with `reason`, tells the peer replicas, deletes the
    /// stored document (after the writes in flight) and starts the room over empty.
    /// `true` if anything was stored.
    Delete {
        reason: String,
        reply: oneshot::Sender<Result<bool, RequestError>>,
    },
}

impl Request {
    fn fail(self, error: JoinError) {
        let error = RequestError::Join(error);
        match self {
            Request::State { reply } => drop(reply.send(Err(error))),
            Request::Apply { reply, .. } | Request::Edit { reply, .. } => {
                drop(reply.send(Err(error)))
            }
            Request::Delete { reply, .. } => drop(reply.send(Err(error))),
            Request::Durable { reply } => drop(reply.send(Err(error))),
        }
    }
}

/// What a room's task is asked to do.
///
/// Large payloads are boxed: a room's command channel allocates its slots 32 at a time, each
/// the size of the largest variant, and every loaded document has one.
pub enum Command {
    Join {
        subscriber: Box<Subscriber>,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Leave {
        id: SubscriberId,
    },
    Sync {
        id: SubscriberId,
        message: Box<SyncMessage>,
    },
    Awareness {
        id: SubscriberId,
        update: Box<AwarenessUpdate>,
    },
    /// From a peer replica, through the Redis relay, sent in the document's `generation` there
    /// (`None`: a peer that does not say).
    Remote {
        message: Box<Message>,
        generation: Option<u64>,
    },
    /// Ask the peers for anything this room lacks (the relay subscription is (re)established).
    Resync,
    /// Ask one session's provider for anything this room lacks (its token was renewed: what
    /// it typed meanwhile may not have arrived): the room's Step1 to it.
    RequestSync {
        id: SubscriberId,
    },
    /// From the document API.
    Request(Box<Request>),
    /// A user's access was revoked: its sessions end, or become read-only.
    Revoke {
        subject: Arc<str>,
        mode: crate::revocation::Mode,
    },
}

/// A cheap handle to a room's command channel.
#[derive(Clone)]
pub struct RoomHandle {
    room_id: u64,
    tx: mpsc::Sender<Command>,
}

impl RoomHandle {
    /// Sends a command, waiting while the room's queue is full. `false` if the room is gone.
    pub async fn send(&self, command: Command) -> bool {
        self.tx.send(command).await.is_ok()
    }
}

/// Settings rooms need.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Log rows appended before the room folds them into the snapshot.
    pub compact_after: usize,
    /// How long an empty room stays loaded, absorbing quick reconnects.
    pub linger: Duration,
    /// Largest document in bytes of its stored updates; 0 = no limit.
    pub max_document_bytes: usize,
}

/// All loaded documents of this process.
pub struct Registry {
    rooms: Mutex<HashMap<Arc<str>, RoomHandle>>,
    store: Arc<dyn DocumentStore>,
    metrics: Arc<Metrics>,
    settings: RoomSettings,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    next_room_id: AtomicU64,
    /// The Redis relay to peer replicas, when configured.
    cluster: Option<Arc<Cluster>>,
    webhooks: std::sync::OnceLock<Arc<Webhooks>>,
    version_policy: std::sync::OnceLock<VersionPolicy>,
    /// The revocations in force (the authenticator consults the same set).
    revocations: Arc<crate::revocation::Revocations>,
}

impl Registry {
    pub fn new(
        store: Arc<dyn DocumentStore>,
        metrics: Arc<Metrics>,
        settings: RoomSettings,
        shutdown: CancellationToken,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::default(),
            store,
            metrics,
            settings,
            shutdown,
            tracker: TaskTracker::new(),
            next_room_id: AtomicU64::new(1),
            cluster,
            webhooks: std::sync::OnceLock::new(),
            version_policy: std::sync::OnceLock::new(),
            revocations: Arc::default(),
        })
    }

    pub fn revocations(&self) -> &Arc<crate::revocation::Revocations> {
        &self.revocations
    }

    /// Takes `revocation` into force here: remembered for token checks, and applied to the
    /// live sessions of every loaded document it covers. `false` if it was known already.
    pub async fn revoke(&self, revocation: &crate::revocation::Revocation) -> bool {
        if !self.revocations.add(revocation.clone()) {
            return false;
        }
        let handles: Vec<RoomHandle> = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(name, _)| revocation.covers(name))
            .map(|(_, handle)| handle.clone())
            .collect();
        let subject: Arc<str> = Arc::from(revocation.subject.as_str());
        for handle in handles {
            // Waits for room (not dropped when its queue is full): a revocation must arrive.
            handle
                .send(Command::Revoke {
                    subject: subject.clone(),
                    mode: revocation.mode,
                })
                .await;
        }
        true
    }

    /// Rooms report changes, loads and departures to these from now on.
    pub fn set_webhooks(self: &Arc<Self>, webhooks: Arc<Webhooks>) {
        let registry: std::sync::Weak<Self> = Arc::downgrade(self);
        let documents: std::sync::Weak<dyn crate::webhook::Documents> = registry;
        webhooks.attach(documents);
        let _ = self.webhooks.set(webhooks);
    }

    pub fn webhooks(&self) -> Option<&Arc<Webhooks>> {
        self.webhooks.get()
    }

    /// The whole state of `name` as one v1 update: live if loaded here, else folded from
    /// storage without loading it. `None` if it holds nothing.
    pub async fn state(&self, name: &str) -> Result<Option<Vec<u8>>, RequestError> {
        if let Some(state) = self.loaded_state(name).await {
            let state = state?;
            return Ok((state.as_slice() != [0, 0]).then_some(state));
        }
        let unavailable = |e: String| RequestError::Unavailable(e);
        let stored = self
            .store
            .load(name)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if stored.is_empty() {
            return Ok(None);
        }
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let log: Vec<&[u8]> = stored.log.iter().map(Vec::as_slice).collect();
            crate::storage::integrate_all(&name, stored.snapshot.as_deref(), &log).map(|folded| {
                use yrs::{ReadTxn, StateVector, Transact};
                folded
                    .doc
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default())
            })
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map(Some)
        .map_err(|e| unavailable(e.to_string()))
    }

    /// Hands a command to the room of `name` if it is loaded. Never waits: a full room queue
    /// drops the command (for relay traffic the room's next resync heals it).
    pub fn deliver(&self, name: &str, command: Command) {
        let handle = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some(handle) = handle
            && let Err(mpsc::error::TrySendError::Full(_)) = handle.tx.try_send(command)
        {
            self.metrics.relay_dropped.inc();
        }
    }

    /// Hands a command to every loaded room.
    pub fn deliver_all(&self, command: impl Fn() -> Command) {
        let handles: Vec<RoomHandle> = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for handle in handles {
            if let Err(mpsc::error::TrySendError::Full(_)) = handle.tx.try_send(command()) {
                self.metrics.relay_dropped.inc();
            }
        }
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Joins `subscriber` to the document `name`, loading it if needed.
    ///
    /// A room that is retiring refuses new commands, or drops a join that reached its queue
    /// after it decided to retire: the join then goes to a fresh room. Only shutdown and a
    /// failed load are errors.
    pub async fn join(
        self: &Arc<Self>,
        name: &str,
        subscriber: Subscriber,
    ) -> Result<RoomHandle, JoinError> {
        loop {
            if self.shutdown.is_cancelled() {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.open(name);
            let (reply, answer) = oneshot::channel();
            let join = Command::Join {
                subscriber: Box::new(subscriber.clone()),
                reply,
            };
            if handle.tx.send(join).await.is_err() {
                tokio::task::yield_now().await;
                continue;
            }
            match answer.await {
                Ok(Ok(())) => return Ok(handle),
                Ok(Err(error)) => return Err(error),
                // Dropped unanswered by a retiring room.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }

    /// Sends a request to the room of `name`, loading the document if needed, and waits for
    /// the answer. `build` makes the request again when a retiring room dropped it unanswered.
    pub async fn request<T>(
        self: &Arc<Self>,
        name: &str,
        mut build: impl FnMut(oneshot::Sender<Result<T, RequestError>>) -> Request,
    ) -> Result<T, RequestError> {
        loop {
            if self.shutdown.is_cancelled() {
                return Err(JoinError::ShuttingDown.into());
            }
            let handle = self.open(name);
            let (reply, answer) = oneshot::channel();
            if handle
                .tx
                .send(Command::Request(Box::new(build(reply))))
                .await
                .is_err()
            {
                tokio::task::yield_now().await;
                continue;
            }
            match answer.await {
                Ok(result) => return result,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }

    /// The live state of `name` if it is loaded here (`None` otherwise: read it from storage).
    pub async fn loaded_state(&self, name: &str) -> Option<Result<Vec<u8>, RequestError>> {
        let handle = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()?;
        let (reply, answer) = oneshot::channel();
        if !handle
            .send(Command::Request(Box::new(Request::State { reply })))
            .await
        {
            return None;
        }
        answer.await.ok()
    }

    /// Gets the room of `name`, spawning it if it is not loaded.
    fn open(self: &Arc<Self>, name: &str) -> RoomHandle {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = rooms.get(name)
            && !handle.tx.is_closed()
        {
            return handle.clone();
        }
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let room_id = self.next_room_id.fetch_add(1, Ordering::Relaxed);
        let handle = RoomHandle { room_id, tx };
        let name: Arc<str> = Arc::from(name);
        rooms.insert(name.clone(), handle.clone());
        drop(rooms);
        self.metrics.documents_loaded.inc();
        let registry = Arc::clone(self);
        let span = tracing::info_span!("room", document = %name);
        self.tracker.spawn(
            async move {
                room::run(name.clone(), room_id, rx, registry.clone()).await;
                registry.metrics.documents_loaded.dec();
            }
            .instrument(span),
        );
        handle
    }

    /// Removes a room from the map if it is still the registered one and `idle()` holds while
    /// the lock is held (no command arrived meanwhile). Returns whether it was removed.
    fn retire(&self, name: &str, room_id: u64, idle: impl FnOnce() -> bool) -> bool {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        match rooms.get(name) {
            Some(handle) if handle.room_id == room_id => {
                if idle() {
                    rooms.remove(name);
                    true
                } else {
                    false
                }
            }
            // Already replaced (should not happen while we are alive): nothing to remove.
            _ => idle(),
        }
    }

    pub fn loaded(&self) -> usize {
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Waits until every room has stored its state and exited.
    pub async fn drain(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }

    pub fn store(&self) -> &Arc<dyn DocumentStore> {
        &self.store
    }
}

/// The relay's way in: a document nobody here has open needs nothing from its peers.
impl Rooms for Registry {
    fn deliver(&self, document: &str, inbound: Inbound) {
        Registry::deliver(self, document, command_for(inbound));
    }

    fn deliver_all(&self, inbound: &dyn Fn() -> Inbound) {
        Registry::deliver_all(self, || command_for(inbound()));
    }
}

/// What the webhooks read: the documents' state, and the relay's claims.
#[async_trait::async_trait]
impl crate::webhook::Documents for Registry {
    async fn state(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        Registry::state(self, name).await.map_err(|e| e.to_string())
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, String> {
        match &self.cluster {
            Some(cluster) => cluster.claim(key, ttl).await.map_err(|e| e.to_string()),
            None => Ok(true),
        }
    }
}

fn command_for(inbound: Inbound) -> Command {
    match inbound {
        Inbound::Message {
            message,
            generation,
        } => Command::Remote {
            message: Box::new(message),
            generation,
        },
        Inbound::Resync => Command::Resync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutboxLimits;
    use crate::storage::MemoryStore;
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, ReadTxn, Text, Transact};

    /// A registry on a memory store; rooms stay loaded `linger` after their last session.
    fn registry(metrics: &Arc<Metrics>, linger: Duration) -> Arc<Registry> {
        Registry::new(
            Arc::new(MemoryStore::default()),
            metrics.clone(),
            RoomSettings {
                compact_after: 500,
                linger,
                max_document_bytes: 0,
            },
            CancellationToken::new(),
            None,
        )
    }

    /// Joins racing rooms that retire the moment they are empty (no linger) always land in a
    /// live room: no join is denied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joins_racing_retiring_rooms_are_never_denied() {
        let metrics = Arc::new(Metrics::new());
        let registry = registry(&metrics, Duration::ZERO);
        let (joiners, cycles) = (8, 12_500);
        let mut tasks = Vec::new();
        for _ in 0..joiners {
            let registry = registry.clone();
            let metrics = metrics.clone();
            tasks.push(tokio::spawn(async move {
                let mut denied = 0;
                for _ in 0..cycles {
                    let id = SubscriberId::next();
                    let subscriber = Subscriber {
                        id,
                        framing: Framing::YWebsocket,
                        scope: Scope::ReadWrite,
                        identity: Identity::Address(std::net::Ipv4Addr::LOCALHOST.into()),
                        outbox: Outbox::new(OutboxLimits::frames(16), metrics.clone()),
                        hook: None,
                    };
                    match registry.join("racy", subscriber).await {
                        Ok(room) => {
                            room.send(Command::Leave { id }).await;
                        }
                        Err(_) => denied += 1,
                    }
                }
                denied
            }));
        }
        let mut denied = 0;
        for task in tasks {
            denied += task.await.expect("task");
        }
        assert_eq!(denied, 0, "joins denied in {} cycles", joiners * cycles);
    }

    /// Issue 22, goal 2: newcomers on one document, each under its own address (4.x providers
    /// with `sessionAwareness`), get the whole state from one shared encoding: only the address
    /// before it differs. (Before, an encoding per address, and the cache of them cleared past
    /// eight addresses: a storm of 4.x providers held one copy of the document per socket.)
    #[tokio::test]
    async fn newcomers_under_distinct_addresses_share_one_encoding_of_the_whole_state() {
        let metrics = Arc::new(Metrics::new());
        let registry = registry(&metrics, Duration::from_secs(60));
        let join = |address: String| {
            let registry = registry.clone();
            let metrics = metrics.clone();
            async move {
                let id = SubscriberId::next();
                let outbox = Outbox::new(OutboxLimits::frames(64), metrics);
                let subscriber = Subscriber {
                    id,
                    framing: Framing::hocuspocus(Arc::from(address.as_str())),
                    scope: Scope::ReadWrite,
                    identity: Identity::Address(std::net::Ipv4Addr::LOCALHOST.into()),
                    outbox: outbox.clone(),
                    hook: None,
                };
                let room = registry.join("big", subscriber).await.expect("joins");
                (id, room, outbox)
            }
        };
        let (writer, room, _) = join("big".into()).await;
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, &"x".repeat(100_000));
        let update = doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        room.send(Command::Sync {
            id: writer,
            message: Box::new(SyncMessage::Update(update)),
        })
        .await;
        let mut bodies = Vec::new();
        for i in 0..20 {
            let address = format!("big\0session-{i}");
            let (id, room, outbox) = join(address.clone()).await;
            room.send(Command::Sync {
                id,
                message: Box::new(SyncMessage::SyncStep1(yrs::StateVector::default())),
            })
            .await;
            let step2 = loop {
                let Some(frame) = outbox.pop() else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let whole = [frame.head.as_ref(), frame.body.as_ref()].concat();
                let decoded = crate::protocol::decode_frame(&whole).expect("a frame");
                let crate::protocol::Frame::Document {
                    address: to,
                    message,
                } = decoded
                else {
                    continue;
                };
                assert_eq!(to, address, "each newcomer gets its own address");
                if let Message::Sync(SyncMessage::SyncStep2(state)) = message {
                    let copy = yrs::Doc::new();
                    let update = yrs::Update::decode_v1(&state).expect("an update");
                    copy.transact_mut().apply_update(update).expect("applies");
                    let text = copy.get_or_insert_text("t");
                    assert_eq!(text.get_string(&copy.transact()).len(), 100_000);
                    break frame.body;
                }
            };
            bodies.push(step2);
        }
        assert!(
            bodies
                .iter()
                .all(|body| body.as_ptr() == bodies[0].as_ptr()),
            "every newcomer's whole state is the same allocation"
        );
    }
}
