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
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::{
    Command, Edit, Framing, JoinError, Registry, Request, RequestError, Subscriber, SubscriberId,
};
use crate::cluster::{self, Cluster};
use crate::metrics::Direction;
use crate::protocol::{self, Message, Scope};
use crate::storage::writer::Written;

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
}

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
    sessions: HashMap<SubscriberId, Session>,
    /// Who introduced each awareness client id: a local session, or `None` for a peer replica.
    /// Only its owner may change or remove a state.
    awareness_owner: HashMap<ClientID, Option<SubscriberId>>,
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
    writer: mpsc::UnboundedSender<(u64, Vec<u8>)>,
    /// What the writer reports.
    written: mpsc::UnboundedReceiver<Written>,
    /// The writer task, and those of earlier generations (awaited when the room unloads).
    writers: Vec<JoinHandle<()>>,
    /// The generation of the document this room serves (what its writes and relay messages
    /// carry).
    generation: u64,
    cluster: Option<Arc<Cluster>>,
    /// When this room last asked its peers for updates it lacks.
    last_resync: Option<Instant>,
    /// The last change made here (not relayed) and who made it (`None`: the API), until it
    /// is durable and reported to the webhooks.
    local_change: Option<(u64, Option<Arc<crate::webhook::HookSession>>)>,
    /// The whole document's Step2 frame, per address, for sessions that have nothing (an empty
    /// state vector), while the document is unchanged: a reconnect storm on a large document
    /// then shares one encoding (refcounted) instead of holding one copy per client.
    whole_state_frames: Vec<(Option<Arc<str>>, Bytes)>,
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
    let (_, written) = mpsc::unbounded_channel();
    let mut room = Room {
        name: name.clone(),
        registry: registry.clone(),
        awareness: Awareness::with_clock(loaded.doc, now_millis),
        sessions: HashMap::new(),
        awareness_owner: HashMap::new(),
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
        local_change: None,
        whole_state_frames: Vec::new(),
    };
    room.start_writer(loaded.generation, loaded.log_rows);
    // A room loaded only to carry out a DELETE (the document API's) is no document being
    // created: no `create` webhook, and nothing seeded into what is about to go.
    let first = commands.try_recv().ok();
    let deleting = matches!(first, Some(Command::Request(Request::Delete { .. })));
    if !deleting
        && let Some(webhooks) = registry.webhooks()
        && webhooks.events().create
        && let Some(fields) = webhooks.create(&name).await
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
    let mut resync = tokio::time::interval(cluster::RESYNC_INTERVAL);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.reset();
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
                Written::Superseded => {
                    let reason = format!("{DELETED_REASON_PREFIX} on another replica");
                    broken |= !room.follow(Followup::StartOver { reason }).await;
                }
            },
            _ = sweep.tick() => room.sweep_awareness(),
            _ = resync.tick(), if relayed => room.resync(),
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A document as loaded from storage.
struct Loaded {
    doc: Doc,
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
            Command::Join { subscriber, reply } => self.join(subscriber, reply),
            Command::Leave { id } => self.leave(id),
            Command::Sync { id, message } => self.sync(id, message),
            Command::Awareness { id, update } => self.apply_awareness(id, update),
            Command::Remote {
                message,
                generation,
            } => return self.remote_in(message, generation),
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
            Command::Request(request) => return self.request(request),
        }
        None
    }

    fn request(&mut self, request: Request) -> Option<Followup> {
        match request {
            Request::State { reply } => {
                let _ = reply.send(Ok(self.full_state()));
            }
            Request::Apply { update, reply } => {
                self.apply_update(Origin::Api(reply), update);
            }
            Request::Edit { edit, reply } => self.edit(edit, reply),
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
    fn edit(&mut self, edit: Edit, reply: tokio::sync::oneshot::Sender<Result<(), RequestError>>) {
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
            self.store_and_broadcast(update);
            self.local_change = Some((self.enqueued, None));
        }
        self.acknowledge_when_durable(Ack::Api(reply), started);
    }

    /// The `create` webhook's answer: each field names a root to seed (ProseMirror JSON, or any
    /// shape the API's JSON takes) if that root is empty. Stored like any change.
    fn seed(&mut self, fields: &serde_json::Map<String, serde_json::Value>) {
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
            self.store_and_broadcast(update);
        }
    }

    /// Carries out what a command left to the loop; `false` when storage could not be read
    /// (the loop then closes every session and unloads the room).
    async fn follow(&mut self, followup: Followup) -> bool {
        match followup {
            Followup::Delete { reason, reply } => self.delete(reason, reply).await,
            Followup::StartOver { reason } => self.start_over(&reason).await,
        }
    }

    /// Deletes the document: every session ends (told why), the writes in flight finish, the
    /// store forgets the document and starts its next generation, the peers are told, and the
    /// room serves that generation, empty.
    async fn delete(
        &mut self,
        reason: String,
        reply: tokio::sync::oneshot::Sender<Result<bool, RequestError>>,
    ) -> bool {
        self.deny_all(&reason);
        let drained = tokio::time::timeout(DELETE_DRAIN_TIMEOUT, async {
            while self.durable < self.enqueued {
                match self.written.recv().await {
                    Some(Written::Durable(through)) => self.acknowledge(through),
                    // Deleted elsewhere meanwhile: what is in flight went with it.
                    Some(Written::Superseded) | None => return false,
                }
            }
            true
        })
        .await;
        if !matches!(drained, Ok(true)) {
            tracing::error!("deletion abandoned: updates in flight were not stored");
            let _ = reply.send(Err(RequestError::Unavailable(
                "updates in flight could not be stored; nothing was deleted".into(),
            )));
            // The writer may be gone (superseded): serve what storage holds now.
            return self.start_over(&reason).await;
        }
        let deleted = match self.registry.store().delete(&self.name).await {
            Ok(deleted) => deleted,
            Err(error) => {
                tracing::error!(%error, "failed to delete the stored document");
                let _ = reply.send(Err(RequestError::Unavailable(error.to_string())));
                return true;
            }
        };
        self.reset(Doc::new());
        self.start_writer(deleted.generation, 0);
        // Sent in the new generation: peers still in the old one start over on it.
        self.relay(&Message::Close(Some(reason.clone())));
        tracing::info!(%reason, generation = deleted.generation, "document deleted");
        let _ = reply.send(Ok(deleted.existed));
        true
    }

    /// The document was deleted on another replica (its notice, a message of a newer
    /// generation, or the store refusing our append as superseded): every session ends (told
    /// why), what is in flight is dropped unacknowledged (it can never be stored: its generation
    /// is over), and the room serves what storage holds now. Nothing is deleted here: only the
    /// replica that ran the DELETE touches the store. `false` when storage could not be read.
    async fn start_over(&mut self, reason: &str) -> bool {
        let loaded = match load(&self.name, &self.registry, Vec::new()).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "cannot reload the document after its deletion elsewhere");
                return false;
            }
        };
        if loaded.generation == self.generation {
            // Not deleted after all (a stale notice): nothing changes.
            tracing::debug!(
                reason,
                "deletion notice for the current generation; ignored"
            );
            return true;
        }
        tracing::info!(
            reason,
            generation = loaded.generation,
            "document deleted on another replica; starting over from storage"
        );
        self.deny_all(reason);
        self.reset(loaded.doc);
        self.size_estimate = loaded.bytes;
        self.start_writer(loaded.generation, loaded.log_rows);
        self.resync();
        true
    }

    /// Ends every session of the document with `reason`.
    fn deny_all(&mut self, reason: &str) {
        let ids: Vec<SubscriberId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.deny(id, reason);
        }
    }

    /// `doc` in place of the document of an ended generation: nothing in flight is kept, and
    /// nobody still waiting is told it was stored (API callers get an error).
    fn reset(&mut self, doc: Doc) {
        self.awareness = Awareness::with_clock(doc, now_millis);
        self.whole_state_frames.clear();
        self.awareness_owner.clear();
        self.inflight.clear();
        self.tainted = false;
        self.size_estimate = 0;
        self.local_change = None;
        for (_, ack, _) in self.pending_acks.drain(..) {
            if let Ack::Api(reply) = ack {
                let _ = reply.send(Err(RequestError::Unavailable(
                    "the document was deleted before the update was stored".into(),
                )));
            }
        }
        self.registry
            .metrics
            .pending_updates
            .sub(self.enqueued.saturating_sub(self.durable) as i64);
        self.durable = self.enqueued;
    }

    /// A writer for `generation` in place of the current one (which finishes what it holds,
    /// or drops it if its generation is over, and is awaited when the room unloads).
    fn start_writer(&mut self, generation: u64, log_rows: usize) {
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let (written_tx, written_rx) = mpsc::unbounded_channel();
        self.writers.retain(|writer| !writer.is_finished());
        self.writers.push(tokio::spawn(crate::storage::writer::run(
            self.name.clone(),
            generation,
            self.registry.store().clone(),
            writer_rx,
            written_tx,
            log_rows,
            self.registry.settings.compact_after,
        )));
        self.writer = writer_tx;
        self.written = written_rx;
        self.generation = generation;
    }

    /// Publishes `message` to the peer replicas, in this room's generation.
    fn relay(&self, message: &Message) {
        if let Some(cluster) = &self.cluster {
            cluster.publish(&self.name, self.generation, message);
        }
    }

    /// Asks every peer replica for what this room lacks and for their awareness states, and
    /// offers ours (peers that were not listening when our clients' states changed get them
    /// now, not at the clients' next renewal).
    fn resync(&mut self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let generation = self.generation;
        self.last_resync = Some(Instant::now());
        let sv = self.awareness.doc().transact().state_vector();
        cluster.publish(
            &self.name,
            generation,
            &Message::Sync(SyncMessage::SyncStep1(sv)),
        );
        cluster.publish(&self.name, generation, &Message::QueryAwareness);
        if let Ok(states) = self.awareness.update()
            && !states.clients.is_empty()
        {
            cluster.publish(&self.name, generation, &Message::Awareness(states));
        }
    }

    /// An update arrived whose dependencies this room lacks: a relay message was lost.
    fn resync_missing(&mut self) {
        if self.cluster.is_some()
            && self
                .last_resync
                .is_none_or(|at| at.elapsed() >= MISSING_RESYNC_MIN_INTERVAL)
        {
            tracing::debug!("missing updates; asking the peers");
            self.resync();
        }
    }

    /// A message from a peer replica, by its generation: one of an older generation is dropped
    /// (the document was deleted since), one of a newer generation, or a deletion notice,
    /// starts the room over; a message without a generation (a Node peer) is taken as current.
    fn remote_in(&mut self, message: Message, generation: Option<u64>) -> Option<Followup> {
        let deletion = matches!(&message, Message::Close(Some(reason)) if reason.starts_with(DELETED_REASON_PREFIX));
        match generation {
            Some(generation) if generation < self.generation => {
                self.registry.metrics.relay_stale.inc();
                None
            }
            Some(generation) if generation > self.generation || deletion => {
                // The message itself is not applied: starting over loads that generation from
                // storage and asks the peers for what it lacks.
                let reason = match message {
                    Message::Close(Some(reason)) if deletion => reason,
                    _ => format!("{DELETED_REASON_PREFIX} on another replica"),
                };
                Some(Followup::StartOver { reason })
            }
            // Node servers have no DELETE: a notice without a generation is only a reason to
            // look at storage.
            None if deletion => Some(Followup::StartOver {
                reason: format!("{DELETED_REASON_PREFIX} on another replica"),
            }),
            _ => {
                self.remote(message);
                None
            }
        }
    }

    /// A message from a peer replica (the `@hocuspocus/extension-redis` receiver rules).
    fn remote(&mut self, message: Message) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        match message {
            // A peer asks what it lacks: tell it what we lack, and send what it lacks.
            Message::Sync(SyncMessage::SyncStep1(remote)) => {
                let txn = self.awareness.doc().transact();
                let own = txn.state_vector();
                let diff = txn.encode_diff_v1(&remote);
                drop(txn);
                cluster.publish(
                    &self.name,
                    self.generation,
                    &Message::SyncReply(SyncMessage::SyncStep1(own)),
                );
                if !is_empty_update(&diff) {
                    cluster.publish(
                        &self.name,
                        self.generation,
                        &Message::Sync(SyncMessage::SyncStep2(diff)),
                    );
                }
            }
            // The answer to our Step1: send what it lacks, nothing more.
            Message::SyncReply(SyncMessage::SyncStep1(remote)) => {
                let diff = self.awareness.doc().transact().encode_diff_v1(&remote);
                if !is_empty_update(&diff) {
                    cluster.publish(
                        &self.name,
                        self.generation,
                        &Message::Sync(SyncMessage::SyncStep2(diff)),
                    );
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
                    cluster.publish(&self.name, self.generation, &Message::Awareness(update));
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
    fn apply_remote_update(&mut self, bytes: Vec<u8>) {
        let update = match protocol::bounded::update(&bytes) {
            Ok(update) => update,
            Err(error) => {
                tracing::warn!(%error, "ignored a malformed update from a peer");
                return;
            }
        };
        let (changed, missing) = match self.integrate(update) {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(%error, "ignored an update from a peer that does not apply");
                self.registry
                    .metrics
                    .updates_refused
                    .with_label_values(&["invalid"])
                    .inc();
                return;
            }
        };
        if changed {
            self.store_and_broadcast(bytes);
        }
        if missing {
            self.resync_missing();
        }
    }

    /// Applies an update to the document: (whether anything changed, whether this update
    /// lacks dependencies the document has not seen). Missing dependencies are a property of
    /// the update, not of the document: an update that leaves the pending set as it was (a
    /// repeat, or a Step2 of what is known) changed nothing and misses nothing.
    ///
    /// yrs may fail halfway through an update with some of its blocks already integrated: the
    /// room is then tainted and rebuilt from storage before it serves anything else.
    fn integrate(&mut self, update: Update) -> Result<(bool, bool), String> {
        let mut txn = self.awareness.doc().transact_mut();
        let pending_before = pending_fingerprint(&txn);
        if let Err(error) = protocol::bounded::apply(&mut txn, update) {
            drop(txn);
            self.tainted = true;
            return Err(error);
        }
        let pending_after = pending_fingerprint(&txn);
        let missing = pending_after.is_some() && pending_after != pending_before;
        let changed =
            txn.before_state() != txn.after_state() || !txn.delete_set().is_empty() || missing;
        Ok((changed, missing))
    }

    /// Rebuilds the document from storage plus the updates not yet durable, after an update
    /// failed inside yrs. No other command ran since, so no session saw the partial state.
    /// `false` when storage could not be read.
    async fn rebuild(&mut self) -> bool {
        self.tainted = false;
        let inflight = self
            .inflight
            .iter()
            .map(|(_, bytes)| bytes.clone())
            .collect();
        let loaded = match load(&self.name, &self.registry, inflight).await {
            Ok(loaded) => loaded,
            Err(reason) => {
                tracing::error!(%reason, "cannot rebuild the document after a failed update");
                return false;
            }
        };
        if loaded.generation != self.generation {
            // Deleted elsewhere meanwhile: the updates in flight belong to the old generation.
            return self
                .start_over(&format!("{DELETED_REASON_PREFIX} on another replica"))
                .await;
        }
        let (ydoc, size) = (loaded.doc, loaded.bytes);
        tracing::warn!("document rebuilt from storage after an update failed halfway");
        // What the sessions had (the tainted document's state vector covers what they were
        // sent): storage may hold more, written by other replicas and not relayed (yet).
        let served = self.awareness.doc().transact().state_vector();
        let states = self.awareness.update().ok();
        let mut awareness = Awareness::with_clock(ydoc, now_millis);
        if let Some(states) = states
            && let Err(error) = awareness.apply_update(states)
        {
            tracing::warn!(%error, "awareness states lost in the rebuild");
        }
        self.awareness = awareness;
        self.whole_state_frames.clear();
        self.size_estimate = size;
        // Sent to the sessions now, not when they next reconnect. Neither stored (it came from
        // storage) nor relayed (its writers relay it).
        let news = self.awareness.doc().transact().encode_diff_v1(&served);
        if !is_empty_update(&news) {
            self.broadcast(
                |address| protocol::encode_update_frame(address, &news),
                "sync_update",
            );
        }
        true
    }

    /// Closes every session's socket with a code all providers reconnect on.
    fn close_all(&mut self) {
        for session in self.sessions.values() {
            session.subscriber.outbox.close(
                crate::outbox::close_code::RESTART,
                "document reloading".into(),
            );
        }
    }

    /// Whether an update of `len` bytes keeps the document within its size limit. The estimate
    /// (bytes stored) only grows; past the limit the real size is measured, and a document
    /// within 1/64 of its limit is full, so measuring happens at most once per 1/64 of it.
    fn fits(&mut self, len: usize) -> bool {
        let limit = self.registry.settings.max_document_bytes;
        if limit == 0 || self.size_estimate.saturating_add(len) <= limit {
            return true;
        }
        let doc = self.awareness.doc();
        let exact = heavy(|| {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
                .len()
        });
        self.size_estimate = exact;
        exact.saturating_add(len) <= limit && limit - exact >= limit / 64
    }

    /// Ends one session of this document: it is told why (PermissionDenied for that document;
    /// a y-websocket socket is closed); a Hocuspocus socket and its other documents stay.
    fn deny(&mut self, id: SubscriberId, reason: &str) {
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

    /// Fans an applied update out to every local session and hands it to the writer.
    /// The whole document as one v1 update (off the async worker for a large one).
    fn full_state(&self) -> Vec<u8> {
        let doc = self.awareness.doc();
        let encode = || {
            doc.transact()
                .encode_state_as_update_v1(&StateVector::default())
        };
        if self.size_estimate >= HEAVY_DOCUMENT_BYTES {
            heavy(encode)
        } else {
            encode()
        }
    }

    /// The whole-document Step2 frame for session `id`'s address, encoded once per address
    /// until the document changes (`None` if the session is gone or has no framing for it).
    fn whole_state_frame(&mut self, id: SubscriberId) -> Option<Bytes> {
        let address: Option<Arc<str>> = match &self.sessions.get(&id)?.subscriber.framing {
            Framing::Hocuspocus { address } => Some(address.clone()),
            Framing::YWebsocket => None,
        };
        if let Some((_, frame)) = self.whole_state_frames.iter().find(|(a, _)| *a == address) {
            return Some(frame.clone());
        }
        let message = Message::Sync(SyncMessage::SyncStep2(self.full_state()));
        let frame = Bytes::from(match &address {
            Some(address) => protocol::encode_frame(address, &message),
            None => protocol::encode_yws(&message)?,
        });
        // A handful of addresses at most (the name, and 4.x routing keys); bounded anyway.
        if self.whole_state_frames.len() >= 8 {
            self.whole_state_frames.clear();
        }
        self.whole_state_frames.push((address, frame.clone()));
        Some(frame)
    }

    fn store_and_broadcast(&mut self, bytes: Vec<u8>) {
        self.whole_state_frames.clear();
        let frame_for = |address: Option<&str>| protocol::encode_update_frame(address, &bytes);
        self.broadcast(frame_for, "sync_update");
        self.enqueued += 1;
        self.size_estimate = self.size_estimate.saturating_add(bytes.len());
        self.registry.metrics.pending_updates.inc();
        self.inflight.push_back((self.enqueued, bytes.clone()));
        let _ = self.writer.send((self.enqueued, bytes));
    }

    fn join(
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

    fn leave(&mut self, id: SubscriberId) {
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
        }
        if let Some(removal) = self.remove_awareness(clients)
            && let Some(cluster) = &self.cluster
        {
            cluster.publish(&self.name, self.generation, &Message::Awareness(removal));
        }
    }

    /// Removes awareness states (same clock, state `null`, as Hocuspocus does), broadcasts the
    /// removal to local sessions and returns it.
    fn remove_awareness(&mut self, clients: Vec<ClientID>) -> Option<AwarenessUpdate> {
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

    fn sweep_awareness(&mut self) {
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
    fn admit_awareness(
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
    fn release_awareness(&mut self, clients: &[ClientID]) {
        for client in clients {
            if let Some(Some(owner)) = self.awareness_owner.remove(client)
                && let Some(session) = self.sessions.get_mut(&owner)
            {
                session.awareness_clients.remove(client);
            }
        }
    }

    fn apply_awareness(&mut self, id: SubscriberId, update: AwarenessUpdate) {
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

    fn sync(&mut self, id: SubscriberId, message: SyncMessage) {
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

    fn apply_update(&mut self, origin: Origin, bytes: Vec<u8>) {
        let started = Instant::now();
        let update = match protocol::bounded::update(&bytes) {
            Ok(update) => update,
            Err(error) => {
                origin.refuse(self, RequestError::Malformed(error.to_string()));
                return;
            }
        };
        if !self.fits(bytes.len()) {
            self.registry
                .metrics
                .updates_refused
                .with_label_values(&["document_too_large"])
                .inc();
            let limit = self.registry.settings.max_document_bytes;
            origin.refuse(self, RequestError::TooLarge(limit));
            return;
        }
        let (changed, missing) = match self.integrate(update) {
            Ok(outcome) => outcome,
            Err(error) => {
                self.registry
                    .metrics
                    .updates_refused
                    .with_label_values(&["invalid"])
                    .inc();
                origin.refuse(self, RequestError::Invalid(error));
                return;
            }
        };
        self.registry
            .metrics
            .update_apply_duration
            .observe(started.elapsed().as_secs_f64());
        if changed {
            let hook = match &origin {
                Origin::Session { id, .. } => self
                    .sessions
                    .get(id)
                    .and_then(|s| s.subscriber.hook.clone()),
                Origin::Api(_) => None,
            };
            self.publish_update(&bytes);
            self.store_and_broadcast(bytes);
            self.local_change = Some((self.enqueued, hook));
        }
        if missing {
            // With peers, what this client's update depends on may still be on its way.
            self.resync_missing();
        }
        match origin {
            Origin::Session {
                id,
                hocuspocus: true,
            } => self.acknowledge_when_durable(Ack::Session(id), started),
            Origin::Session { .. } => {}
            Origin::Api(reply) => self.acknowledge_when_durable(Ack::Api(reply), started),
        }
    }

    /// Relays a local update to the peer replicas.
    fn publish_update(&self, bytes: &[u8]) {
        if let Some(cluster) = &self.cluster {
            cluster.publish_frame(
                &self.name,
                self.generation,
                &protocol::encode_update_frame(Some(&self.name), bytes),
            );
        }
    }

    /// Acknowledges once everything up to this point is durable.
    fn acknowledge_when_durable(&mut self, ack: Ack, started: Instant) {
        if self.durable >= self.enqueued {
            self.registry
                .metrics
                .ack_duration
                .observe(started.elapsed().as_secs_f64());
            self.send_ack(ack);
        } else {
            self.pending_acks.push_back((self.enqueued, ack, started));
        }
    }

    fn send_ack(&self, ack: Ack) {
        match ack {
            Ack::Session(id) => {
                if let Some(session) = self.sessions.get(&id) {
                    self.send_to(&session.subscriber, &Message::SyncStatus(true));
                }
            }
            Ack::Api(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn acknowledge(&mut self, through: u64) {
        let metrics = &self.registry.metrics;
        metrics
            .pending_updates
            .sub(through.saturating_sub(self.durable) as i64);
        self.durable = through;
        if self
            .local_change
            .as_ref()
            .is_some_and(|(seq, _)| *seq <= through)
            && let Some((_, hook)) = self.local_change.take()
            && let Some(webhooks) = self.registry.webhooks()
        {
            webhooks.changed(&self.name, hook);
        }
        while self
            .inflight
            .front()
            .is_some_and(|(seq, _)| *seq <= through)
        {
            self.inflight.pop_front();
        }
        while self
            .pending_acks
            .front()
            .is_some_and(|(seq, _, _)| *seq <= through)
        {
            let Some((_, ack, received)) = self.pending_acks.pop_front() else {
                break;
            };
            metrics
                .ack_duration
                .observe(received.elapsed().as_secs_f64());
            self.send_ack(ack);
        }
    }

    /// Malformed input from one session: close that socket only.
    fn close_session(&mut self, id: SubscriberId, reason: String) {
        tracing::warn!(subscriber = id.0, %reason, "closing a session after bad input");
        if let Some(session) = self.sessions.get(&id) {
            session.subscriber.outbox.close_invalid(reason);
        }
    }

    fn send_to(&self, subscriber: &Subscriber, message: &Message) {
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

    fn broadcast_awareness(&mut self, update: &AwarenessUpdate) {
        let encoded = update.encode_v1();
        self.broadcast(
            |address| protocol::encode_awareness_frame(address, &encoded),
            "awareness",
        );
    }

    /// Sends one frame to every session (including the origin), encoded once per address.
    fn broadcast(&self, encode: impl Fn(Option<&str>) -> Vec<u8>, kind: &'static str) {
        let mut encoded: Vec<(Option<&str>, Bytes)> = Vec::with_capacity(2);
        for session in self.sessions.values() {
            let address = session.subscriber.framing.address();
            let frame = match encoded.iter().find(|(a, _)| *a == address) {
                Some((_, frame)) => frame.clone(),
                None => {
                    let frame = Bytes::from(encode(address));
                    encoded.push((address, frame.clone()));
                    frame
                }
            };
            session.subscriber.outbox.send(frame);
        }
        self.registry
            .metrics
            .messages(Direction::Out, kind, self.sessions.len() as u64);
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        let remaining = self.sessions.len() as i64;
        self.registry.metrics.document_sessions.sub(remaining);
        tracing::trace!(document = %self.name, "room dropped");
    }
}

/// What is pending in a document (blocks and deletions waiting for missing dependencies), by
/// content: comparing it before and after an update tells whether that update added to it. Its
/// shape is not enough: a second update that only deletes unseen items leaves a pending delete
/// set behind as the first did, yet carries deletions of its own that must be stored.
fn pending_fingerprint(txn: &yrs::TransactionMut<'_>) -> Option<(Vec<u8>, Vec<u8>)> {
    use yrs::updates::encoder::Encode;
    let store = txn.store();
    let update = store
        .pending_update()
        .map(|pending| pending.update.encode_v1());
    let deletions = store.pending_ds().map(|ds| ds.encode_v1());
    if update.is_none() && deletions.is_none() {
        return None;
    }
    Some((update.unwrap_or_default(), deletions.unwrap_or_default()))
}

/// Whether a v1 update carries nothing: no structs, no deletions (`[0, 0]`).
fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}
