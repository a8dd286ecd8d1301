//! The room task: the single owner of one loaded document.
//!
//! Loop: commands from sessions and from the Redis relay, acknowledgements from the writer, a
//! periodic awareness sweep and relay resync, shutdown. Nothing here waits on a socket, on the
//! database or on Redis: frames go to outboxes with `try_send`, updates go to the writer
//! sub-task, relay messages to the relay's queue, and a client's `SyncStatus` is sent only when
//! the writer reports its update durable.
//!
//! Updates from peer replicas are stored too (every replica holding the document appends what
//! it applied; the log may hold an update twice, which folding ignores). That costs a second
//! small write per peer and buys this: a `SyncStatus` this replica sends covers everything its
//! document holds, even an edit whose origin replica died before storing it.
//!
//! A room serves one **generation** of its document at a time (see `storage`). Its relay
//! messages carry it; a peer's message of an older generation is dropped, one of a newer
//! generation (or the store refusing an append as superseded, or a peer's deletion notice) means
//! the document was deleted elsewhere: the room [starts over](Room::start_over) from storage.
//! Only the replica that runs a DELETE touches the store for it.

mod awareness;
mod generation;
mod relay;
mod requests;
mod sessions;
mod sync;
mod updates;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use yrs::block::ClientID;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{Awareness, AwarenessUpdate, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact};

use super::{
    Command, Edit, Framing, Identity, JoinError, Registry, Request, RequestError, Subscriber,
    SubscriberId,
};
use crate::cluster::{self, Cluster};
use crate::document::versions::AutoVersion;
use crate::metrics::Direction;
use crate::outbox::Outgoing;
use crate::protocol::admission::{Admission, Extent, Offence};
use crate::protocol::bounded::Span;
use crate::protocol::{self, Message, Scope};
use crate::storage::writer::{Queued, Reports, Written};

/// y-protocols drops awareness states not renewed for this long (providers renew every 15 s).
const AWARENESS_TIMEOUT: Duration = Duration::from_secs(30);
const AWARENESS_SWEEP: Duration = Duration::from_secs(5);
/// Awareness client ids one session may introduce (a provider uses one per document), and
/// awareness states one document holds; entries past either are dropped.
const MAX_AWARENESS_PER_SESSION: usize = 8;
const MAX_AWARENESS_PER_DOCUMENT: usize = 10_000;
/// Documents whose stored size estimate passes this have their heavy work (full-state
/// encoding) moved off the async worker.
const HEAVY_DOCUMENT_BYTES: usize = 1024 * 1024;
/// A room asks its peers for missing updates at most this often (besides the periodic resync).
const MISSING_RESYNC_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a deletion waits for the updates in flight to be stored before it gives up.
const DELETE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The reason a room sends its peers (as a relay `Close`) when its document was deleted.
const DELETED_REASON_PREFIX: &str = "collab-server: document deleted";

/// Who waits for an update to be durable.
enum Ack {
    /// A Hocuspocus session: gets `SyncStatus`.
    Session(SubscriberId),
    /// A document API request.
    Api(tokio::sync::oneshot::Sender<Result<(), RequestError>>),
    /// The document's state as it was when asked, once it is durable, and its generation.
    State(DurableState),
}

type DurableState = (
    tokio::sync::oneshot::Sender<Result<(Vec<u8>, u64), RequestError>>,
    Vec<u8>,
    u64,
);

/// Where an update came from, and who hears of its fate.
enum Origin {
    Session { id: SubscriberId, hocuspocus: bool },
    Api(tokio::sync::oneshot::Sender<Result<(), RequestError>>),
}

impl Origin {
    /// The update was refused: a session is closed (bad input) or denied the document (too
    /// large); an API caller gets the error.
    fn refuse(self, room: &mut Room, error: RequestError) {
        match self {
            Origin::Session { id, .. } => match error {
                RequestError::TooLarge(limit) => room.deny(
                    id,
                    &format!("permission-denied: document would exceed {limit} bytes"),
                ),
                error => room.close_session(id, error.to_string()),
            },
            Origin::Api(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// Work the room loop carries out after a command, since it waits on the writer or the store.
enum Followup {
    /// The document API's DELETE.
    Delete {
        reason: String,
        reply: tokio::sync::oneshot::Sender<Result<bool, RequestError>>,
    },
    /// The document was deleted elsewhere: start over from storage.
    StartOver { reason: String },
}

struct Session {
    subscriber: Subscriber,
    /// Awareness client ids this session introduced; removed when it leaves.
    awareness_clients: HashSet<ClientID>,
}

struct Room {
    name: Arc<str>,
    registry: Arc<Registry>,
    awareness: Awareness,
    /// What the document admits next (see [`protocol::admission`]); replaced with the document.
    admission: Admission,
    sessions: HashMap<SubscriberId, Session>,
    /// Who introduced each awareness client id: a local session, or `None` for a peer replica.
    /// Only its owner may change or remove a state.
    awareness_owner: HashMap<ClientID, Option<SubscriberId>>,
    /// Awareness ids whose owner let them go, kept for that owner's identity (see
    /// [`awareness::Reservation`]).
    awareness_reserved: HashMap<ClientID, awareness::Reservation>,
    /// Updates handed to the writer and not yet durable, kept so that the document can be
    /// rebuilt from storage plus these if an update fails halfway into it.
    inflight: VecDeque<(u64, Vec<u8>)>,
    /// Set when an update failed inside yrs: the document may hold part of it, which storage
    /// does not, so it is rebuilt before the next command.
    tainted: bool,
    /// Bytes of stored updates, an upper bound of the document's size (exact after a check).
    size_estimate: usize,
    /// Sequence number of the last update handed to the writer.
    enqueued: u64,
    /// Sequence number of the last update the writer made durable.
    durable: u64,
    /// Acknowledgements waiting for durability: (sequence, session, received at).
    pending_acks: VecDeque<(u64, Ack, Instant)>,
    writer: mpsc::UnboundedSender<Queued>,
    /// What the writer reports.
    written: Arc<Reports>,
    /// The writer task, and those of earlier generations (awaited when the room unloads).
    writers: Vec<JoinHandle<()>>,
    /// The generation of the document this room serves (what its writes and relay messages
    /// carry).
    generation: u64,
    cluster: Option<Arc<Cluster>>,
    /// When this room last asked its peers for updates it lacks.
    last_resync: Option<Instant>,
    /// When this room last told a peer of an older generation that the document was deleted.
    last_stale_notice: Option<Instant>,
    /// The last change made here (not relayed) and who made it (`None`: the API), until it
    /// is durable and reported to the webhooks.
    local_change: Option<(u64, Option<Arc<crate::webhook::HookSession>>)>,
    /// The whole document's Step2 message (without an address), for sessions that have nothing
    /// (an empty state vector), while the document is unchanged: a reconnect storm on a large
    /// document then shares one encoding, written to every socket from the same allocation,
    /// whatever address each session uses.
    whole_state: Option<Bytes>,
    /// When an automatic version is due (set by the first change after the last one, when
    /// automatic versions are on).
    version_due: Option<Instant>,
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(super) async fn run(
    name: Arc<str>,
    room_id: u64,
    mut commands: mpsc::Receiver<Command>,
    registry: Arc<Registry>,
) {
    let started = Instant::now();
    let loaded = load(&name, &registry, Vec::new()).await;
    registry
        .metrics
        .document_load_duration
        .observe(started.elapsed().as_secs_f64());
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(reason) => {
            tracing::error!(%reason, "failed to load document; denying its clients");
            refuse_all(
                &name,
                room_id,
                &mut commands,
                &registry,
                JoinError::Load(reason),
            )
            .await;
            return;
        }
    };
    tracing::debug!(
        log_rows = loaded.log_rows,
        generation = loaded.generation,
        "document loaded"
    );

    // Replaced by `start_writer` below.
    let (writer, _) = mpsc::unbounded_channel();
    let written = Arc::new(Reports::default());
    let mut room = Room {
        name: name.clone(),
        registry: registry.clone(),
        awareness: Awareness::with_clock(loaded.doc, now_millis),
        admission: loaded.admission,
        sessions: HashMap::new(),
        awareness_owner: HashMap::new(),
        awareness_reserved: HashMap::new(),
        inflight: VecDeque::new(),
        tainted: false,
        size_estimate: loaded.bytes,
        enqueued: 0,
        durable: 0,
        pending_acks: VecDeque::new(),
        writer,
        written,
        writers: Vec::new(),
        generation: loaded.generation,
        cluster: registry.cluster().cloned(),
        last_resync: None,
        last_stale_notice: None,
        local_change: None,
        whole_state: None,
        version_due: None,
    };
    room.start_writer(loaded.generation, loaded.log_rows);
    // A room loaded only to carry out a DELETE (the document API's) is no document being
    // created: no `create` webhook, and nothing seeded into what is about to go.
    let first = commands.try_recv().ok();
    let deleting = matches!(&first, Some(Command::Request(request)) if matches!(**request, Request::Delete { .. }));
    // Boxed: the webhook's HTTP future would otherwise size every loaded document's task.
    if !deleting
        && let Some(webhooks) = registry.webhooks()
        && webhooks.events().create
        && let Some(fields) = Box::pin(webhooks.create(&name)).await
    {
        room.seed(&fields);
    }
    // Subscribes in the background; the relay sends `Resync` once it may sync with peers.
    if let Some(cluster) = &room.cluster {
        cluster.watch(name.clone());
    }

    let mut broken = false;
    if let Some(command) = first
        && let Some(followup) = room.handle(command)
    {
        broken = !room.follow(followup).await;
    }

    let mut sweep = tokio::time::interval(AWARENESS_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Only with a relay (a timer costs every loaded document a little memory).
    let mut resync = room.cluster.is_some().then(|| {
        let mut resync = tokio::time::interval(cluster::RESYNC_INTERVAL);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.reset();
        resync
    });
    let shutdown = registry.shutdown.clone();
    let mut empty_since: Option<Instant> = None;
    loop {
        let linger = registry.settings.linger;
        let can_retire = room.sessions.is_empty() && room.durable == room.enqueued;
        let retire_at = empty_since.map(|t| t + linger);
        let relayed = room.cluster.is_some() && !room.sessions.is_empty();
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => {
                    if let Some(followup) = room.handle(command) {
                        broken |= !room.follow(followup).await;
                    }
                }
                None => break,
            },
            Some(written) = room.written.recv() => match written {
                Written::Durable(through) => room.acknowledge(through),
                Written::Compacted => {
                    if registry.version_policy().on_compaction {
                        room.auto_version(AutoVersion::Compaction);
                    }
                }
                Written::Superseded => {
                    let reason = format!("{DELETED_REASON_PREFIX} on another replica");
                    broken |= !room.follow(Followup::StartOver { reason }).await;
                }
            },
            _ = sweep.tick() => room.sweep_awareness(),
            _ = sleep_until(room.version_due), if room.version_due.is_some() => {
                room.auto_version(AutoVersion::Interval);
            }
            _ = tick(&mut resync), if relayed => room.resync(),
            _ = shutdown.cancelled(), if can_retire => {
                if registry.retire(&name, room_id, || commands.is_empty()) { break; }
            }
            _ = sleep_until(retire_at), if can_retire => {
                if registry.retire(&name, room_id, || commands.is_empty()) { break; }
                empty_since = Some(Instant::now());
            }
        }
        broken |= room.tainted && !room.rebuild().await;
        if broken {
            // Storage could not be read: nobody may be served a document that holds what
            // storage does not. Every session reconnects to a fresh load.
            broken = false;
            room.close_all();
            if registry.retire(&name, room_id, || true) {
                break;
            }
        }
        if room.sessions.is_empty() {
            empty_since.get_or_insert_with(Instant::now);
        } else {
            empty_since = None;
        }
    }
    // Retired: refuse stragglers (they retry against a fresh room), then let the writer finish
    // (it folds the log into the snapshot on its way out).
    commands.close();
    while let Ok(command) = commands.try_recv() {
        if let Command::Join { reply, .. } = command {
            drop(reply);
        }
    }
    if let Some(cluster) = &room.cluster {
        cluster.unwatch(name.clone());
    }
    let writers = std::mem::take(&mut room.writers);
    drop(room);
    for writer in writers {
        if let Err(error) = writer.await {
            tracing::error!(%error, "document writer failed");
        }
    }
    tracing::debug!("document unloaded");
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A document as loaded from storage.
struct Loaded {
    doc: Doc,
    admission: Admission,
    generation: u64,
    /// Log rows read.
    log_rows: usize,
    /// Bytes read (snapshot, log and the updates in flight).
    bytes: usize,
}

/// Loads a document: the stored snapshot and log, then `inflight` (updates not yet durable),
/// folded off the async workers. Updates that cannot be integrated are quarantined (see
/// [`crate::storage::integrate_all`]) and counted.
async fn load(
    name: &Arc<str>,
    registry: &Registry,
    inflight: Vec<Vec<u8>>,
) -> Result<Loaded, String> {
    let stored = registry
        .store()
        .load(name)
        .await
        .map_err(|e| e.to_string())?;
    let generation = stored.generation;
    let name = name.clone();
    let folded = tokio::task::spawn_blocking(move || {
        let bytes = stored.updates().map(<[u8]>::len).sum::<usize>()
            + inflight.iter().map(Vec::len).sum::<usize>();
        let log: Vec<&[u8]> = stored
            .log
            .iter()
            .chain(inflight.iter())
            .map(Vec::as_slice)
            .collect();
        crate::storage::integrate_all(&name, stored.snapshot.as_deref(), &log)
            .map(|folded| (folded, stored.log.len(), bytes))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("loading task failed: {e}"))??;
    let (folded, log_rows, bytes) = folded;
    registry
        .metrics
        .updates_quarantined
        .inc_by(folded.quarantined.len() as u64);
    Ok(Loaded {
        doc: folded.doc,
        admission: folded.admission,
        generation,
        log_rows,
        bytes,
    })
}

/// Runs CPU-heavy document work where it cannot stall other tasks' worker: `block_in_place`
/// on the multi-threaded runtime (other tasks move to another worker meanwhile).
fn heavy<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Answers every queued join with `error` and retires the room.
async fn refuse_all(
    name: &str,
    room_id: u64,
    commands: &mut mpsc::Receiver<Command>,
    registry: &Registry,
    error: JoinError,
) {
    let refuse = |command: Command| match command {
        Command::Join { reply, .. } => drop(reply.send(Err(error.clone()))),
        Command::Request(request) => request.fail(error.clone()),
        _ => {}
    };
    loop {
        while let Ok(command) = commands.try_recv() {
            refuse(command);
        }
        if registry.retire(name, room_id, || commands.is_empty()) {
            break;
        }
    }
    commands.close();
    while let Ok(command) = commands.try_recv() {
        refuse(command);
    }
}

impl Room {
    /// Handles one command; work that waits is returned for the room loop to carry out.
    fn handle(&mut self, command: Command) -> Option<Followup> {
        match command {
            Command::Join { subscriber, reply } => self.join(*subscriber, reply),
            Command::Leave { id } => self.leave(id),
            Command::Sync { id, message } => self.sync(id, *message),
            Command::Awareness { id, update } => self.apply_awareness(id, *update),
            Command::Remote {
                message,
                generation,
            } => return self.remote_in(*message, generation),
            Command::Resync => self.resync(),
            Command::RequestSync { id } => {
                if let Some(session) = self.sessions.get(&id) {
                    let sv = self.awareness.doc().transact().state_vector();
                    self.send_to(
                        &session.subscriber,
                        &Message::Sync(SyncMessage::SyncStep1(sv)),
                    );
                }
            }
            Command::Request(request) => return self.request(*request),
            Command::Revoke { subject, mode } => self.revoke(&subject, mode),
        }
        None
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let remaining = self.sessions.len() as i64;
        self.registry.metrics.document_sessions.sub(remaining);
        tracing::trace!(document = %self.name, "room dropped");
    }
}

/// Whether a v1 update carries nothing: no structs, no deletions (`[0, 0]`).
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}
