//! What a document admits from a sequence of updates, before yrs sees any of them.
//!
//! [`bounded`](super::bounded) checks one update at a time. yrs 0.28 also keeps state across
//! updates: blocks whose dependencies are missing wait in a pending update that later updates
//! are merged into (`Update::merge_updates`), and blocks that arrive ahead of their client's
//! earlier clocks are integrated behind a skip. Two updates that each pass the walk can then
//! name one id with two different contents, and yrs does not survive that: fuzzing found a
//! heap use-after-free (`docs/security.md`, `fuzz/regressions/update_sequence/`).
//!
//! Two rules close the classes the fuzzing found:
//!
//! * **An id names one content forever**, as in Yjs. An update is admitted only where every id
//!   it shares with what the document holds — integrated or pending — carries the same
//!   content, tick by tick (the same origins, parent and value; garbage-collected ids match
//!   anything, as either side may have collected them).
//! * **yrs integrates only what it can integrate whole, in order.** yrs' pending updates and
//!   its skips (blocks integrated ahead of their client's earlier clocks) are where every
//!   use-after-free and stuck update the campaign found lives. An update whose blocks need ids
//!   the document does not have yet (an origin, a parent, or the client's earlier clocks) is
//!   *held* here, as bytes, and handed to yrs once everything it needs has arrived; so yrs
//!   never keeps a pending update or a skip of its own. What is held is bounded
//!   ([`MAX_PENDING_BYTES`], [`MAX_HELD`]); past it an update that cannot be integrated whole
//!   is refused, while one that can is always admitted (and may release what is held).
//!
//! The common case costs a lookup per client: [`Admission`] remembers the highest clock handed
//! to yrs per client, and an update that starts at or above it shares no id with anything.
//! Only an overlap reads the document's blocks of the clients concerned (an encoding of them,
//! about what answering a sync step 1 costs).

use std::collections::{HashMap, HashSet};

use yrs::block::ClientID;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, TransactionMut};

use super::bounded::{self, Block, BoundError, Shape, Span};

/// Pending state (blocks and deletions waiting for missing dependencies, encoded) past which
/// only updates that bring a missing client are admitted.
pub const MAX_PENDING_BYTES: usize = 1 << 20;

/// Clients the pending state may wait for at once.
pub const MAX_PENDING_CLIENTS: usize = 256;

/// Updates held at once (each waiting for ids the document does not have yet).
pub const MAX_HELD: usize = 256;

/// Why an offered update was not integrated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Offence {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// yrs failed on the update with this tag (the offered one or a held one it released):
    /// the document may hold part of it.
    #[error("{error}")]
    Failed { tag: u64, error: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the update gives id {client}:{clock} a content other than the {with} one")]
    Conflict {
        client: u64,
        clock: u32,
        with: &'static str,
    },
    #[error(
        "{bytes} bytes wait for missing updates (limit {MAX_PENDING_BYTES}, {clients} clients); \
         this update brings none of them"
    )]
    PendingFull { bytes: usize, clients: usize },
    #[error(
        "{held} updates ({bytes} bytes) already wait for missing ids (limits {MAX_HELD}, \
         {MAX_PENDING_BYTES} bytes); this one cannot be integrated either"
    )]
    HeldFull { held: usize, bytes: usize },
    #[error("reading the document's blocks: {0}")]
    Unreadable(#[from] BoundError),
}

impl Refusal {
    /// The `reason` label of `collab_server_updates_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Conflict { .. } => "conflicting_ids",
            Refusal::PendingFull { .. } | Refusal::HeldFull { .. } => "pending_full",
            Refusal::Unreadable(_) => "invalid",
        }
    }
}

/// The admission state of one document: the end of the clocks handed to yrs per client, and
/// the updates held until what they need arrives.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    ends: HashMap<ClientID, u32>,
    held: std::collections::VecDeque<Held>,
    held_bytes: usize,
}

/// An update waiting for ids the document does not have yet, with the caller's tag for it.
#[derive(Debug, Clone)]
struct Held {
    tag: u64,
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// What became of an offered update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offered {
    /// It is held (it needs ids the document does not have yet), not integrated.
    pub held: bool,
    /// The tags of held updates it released (integrated after it, in this order).
    pub released: Vec<u64>,
}

/// How much of the document an update is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Every shared id (a live room).
    Everything,
    /// Ids above the document's state vector only: a fold of stored rows, which a room
    /// admitted when they were written and which hold many copies of one update (every
    /// replica stores what it relays). yrs drops a client's blocks below its state vector
    /// whole, without splitting them.
    AboveStateVector,
}

impl Admission {
    /// Checks an update (`bytes`, already walked into `spans`) against what `txn`'s document
    /// holds. Nothing is changed: call [`Admission::admitted`] once yrs applied it.
    pub fn check(
        &self,
        txn: &TransactionMut<'_>,
        spans: &[Span],
        bytes: &[u8],
        extent: Extent,
    ) -> Result<(), Refusal> {
        self.check_pending(txn, spans, bytes)?;
        self.check_held(spans, bytes)?;
        // What yrs holds of a client ends at most where the updates handed to it ended, or
        // for the document's own client id (edits made here: the document API's) at its
        // local clock; the state vector is read only when an update reaches into that.
        let own = txn.doc().client_id();
        let end_of = |client: &ClientID| {
            let end = self.ends.get(client).copied().unwrap_or(0);
            if *client == own {
                end.max(txn.store().get_local_state())
            } else {
                end
            }
        };
        let candidates: Vec<&Span> = spans
            .iter()
            .filter(|span| span.start < end_of(&span.client))
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let sv = txn.state_vector();
        let overlapping: HashSet<ClientID> = candidates
            .into_iter()
            .filter(|span| {
                !(extent == Extent::AboveStateVector && span.end <= sv.get(&span.client))
            })
            .map(|span| span.client)
            .collect();
        if overlapping.is_empty() {
            return Ok(());
        }
        // The document's blocks of those clients, from their first clock (skips included):
        // a state vector without them makes yrs encode them whole, and nothing else.
        let mut without = StateVector::default();
        for (client, clock) in sv.iter() {
            if !overlapping.contains(client) {
                without.set_max(*client, *clock);
            }
        }
        let held = txn.encode_diff_v1(&without);
        compare(bytes, &held, &overlapping, "integrated")
    }

    /// Held updates are pending content too: the same id may not come with other content.
    fn check_held(&self, spans: &[Span], bytes: &[u8]) -> Result<(), Refusal> {
        // An update identical to a held one (itself, while held updates are retried) holds
        // the same content: nothing to compare.
        for held in self.held.iter().filter(|held| held.bytes != bytes) {
            let overlapping: HashSet<ClientID> = spans
                .iter()
                .filter(|span| {
                    held.spans.iter().any(|h| {
                        h.client == span.client && h.start < span.end && span.start < h.end
                    })
                })
                .map(|span| span.client)
                .collect();
            if !overlapping.is_empty() {
                compare(bytes, &held.bytes, &overlapping, "pending")?;
            }
        }
        Ok(())
    }

    fn check_pending(
        &self,
        txn: &TransactionMut<'_>,
        spans: &[Span],
        bytes: &[u8],
    ) -> Result<(), Refusal> {
        let store = txn.store();
        let Some(pending) = store.pending_update() else {
            return Ok(());
        };
        let held = pending.update.encode_v1();
        let waiting = held.len() + store.pending_ds().map_or(0, |ds| ds.encode_v1().len());
        let clients = pending.missing.len();
        let brings_missing = spans
            .iter()
            .any(|span| pending.missing.contains_client(&span.client));
        if (waiting > MAX_PENDING_BYTES || clients > MAX_PENDING_CLIENTS) && !brings_missing {
            return Err(Refusal::PendingFull {
                bytes: waiting,
                clients,
            });
        }
        let pending_spans = bounded::spans(&held)?;
        let overlapping: HashSet<ClientID> = spans
            .iter()
            .filter(|span| {
                pending_spans
                    .iter()
                    .any(|p| p.client == span.client && p.start < span.end && span.start < p.end)
            })
            .map(|span| span.client)
            .collect();
        if overlapping.is_empty() {
            return Ok(());
        }
        compare(bytes, &held, &overlapping, "pending")
    }

    /// Offers an update (walked into `spans`) to the document in `txn`: refused if it breaks
    /// the rules, held if it needs ids the document lacks (or if others are held and it is
    /// not ready either), else applied through [`bounded::apply`], after which whatever it made
    /// ready among the held updates is applied too. `tag` names it in [`Offered::released`]
    /// and [`Offence::Failed`] (a room passes 0; a fold, the row's index).
    pub fn offer(
        &mut self,
        txn: &mut TransactionMut<'_>,
        spans: &[Span],
        bytes: &[u8],
        extent: Extent,
        tag: u64,
    ) -> Result<Offered, Offence> {
        self.check(txn, spans, bytes, extent)?;
        if !ready(self, txn, bytes)? {
            if self.held.len() >= MAX_HELD || self.held_bytes + bytes.len() > MAX_PENDING_BYTES {
                return Err(Refusal::HeldFull {
                    held: self.held.len(),
                    bytes: self.held_bytes,
                }
                .into());
            }
            self.held_bytes += bytes.len();
            self.held.push_back(Held {
                tag,
                bytes: bytes.to_vec(),
                spans: spans.to_vec(),
            });
            return Ok(Offered {
                held: true,
                released: Vec::new(),
            });
        }
        self.integrate(txn, spans, bytes, tag)?;
        let mut released = Vec::new();
        // Each integration may make another held update ready; until none is.
        loop {
            let mut progress = false;
            let mut index = 0;
            while index < self.held.len() {
                let candidate = &self.held[index];
                let verdict = match self.check(txn, &candidate.spans, &candidate.bytes, extent) {
                    Err(refusal) => Err(refusal),
                    Ok(()) => Ok(ready(self, txn, &candidate.bytes)?),
                };
                match verdict {
                    Ok(false) => index += 1,
                    Ok(true) => {
                        let Some(held) = self.held.remove(index) else {
                            break;
                        };
                        self.held_bytes -= held.bytes.len();
                        self.integrate(txn, &held.spans, &held.bytes, held.tag)?;
                        released.push(held.tag);
                        progress = true;
                    }
                    Err(refusal) => {
                        // What arrived meanwhile gives its ids other content: never integrable.
                        tracing::warn!(%refusal, "a held update is dropped");
                        if let Some(held) = self.held.remove(index) {
                            self.held_bytes -= held.bytes.len();
                        }
                    }
                }
            }
            if !progress {
                return Ok(Offered {
                    held: false,
                    released,
                });
            }
        }
    }

    fn integrate(
        &mut self,
        txn: &mut TransactionMut<'_>,
        spans: &[Span],
        bytes: &[u8],
        tag: u64,
    ) -> Result<(), Offence> {
        let failed = |error: String| Offence::Failed { tag, error };
        use yrs::updates::decoder::Decode;
        let update = yrs::Update::decode_v1(bytes).map_err(|e| failed(e.to_string()))?;
        bounded::apply(txn, update).map_err(failed)?;
        self.admitted(spans);
        Ok(())
    }

    /// Whether updates are held, waiting for ids the document does not have yet.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The tags of the updates held.
    pub fn held_tags(&self) -> Vec<u64> {
        self.held.iter().map(|held| held.tag).collect()
    }

    /// Records an update yrs applied: its clocks are now integrated or pending.
    pub fn admitted(&mut self, spans: &[Span]) {
        for span in spans {
            let end = self.ends.entry(span.client).or_default();
            *end = (*end).max(span.end);
        }
    }
}

/// Whether yrs can integrate every block of the update whole and in order: each block starts
/// where its client's clocks are known to end (in the document, or in the blocks of this update
/// found integrable before it), and every id it refers to (origin, right origin, parent) is
/// known likewise. Found by repeating passes over the clients until none progresses, as yrs'
/// own integration moves between clients to resolve references inside one update. A
/// skip block (a gap the update itself declares, as `Y.mergeUpdates` writes) makes the rest of
/// its client's blocks wait until the document has those clocks.
///
/// Where a client's clocks end in the document: yrs integrates everything it is given whole and
/// in order, so that is where the updates handed to it ended (`Admission::ends`), or for the
/// document's own client id its local clock; read from the state vector instead while yrs holds
/// a pending update of its own (a snapshot stored before these rules may bring one).
fn ready(admission: &Admission, txn: &TransactionMut<'_>, bytes: &[u8]) -> Result<bool, Refusal> {
    let mut blocks: Vec<Block<'_>> = Vec::new();
    bounded::walk(bytes, |block| blocks.push(block))?;
    if blocks.is_empty() {
        return Ok(true);
    }
    let sv = txn
        .store()
        .pending_update()
        .is_some()
        .then(|| txn.state_vector());
    let own = txn.doc().client_id();
    let local = txn.store().get_local_state();
    let in_document = |client: &ClientID| {
        let handed = admission.ends.get(client).copied().unwrap_or(0);
        match &sv {
            Some(sv) => sv.get(client),
            None if *client == own => local.max(handed),
            None => handed,
        }
    };
    let mut known: HashMap<ClientID, u32> = HashMap::new();
    let known_end = |known: &HashMap<ClientID, u32>, client: &ClientID| {
        known
            .get(client)
            .copied()
            .unwrap_or_else(|| in_document(client))
    };
    // Per client, the index of its next block (blocks are grouped per client, in clock order).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        match runs.last_mut() {
            Some((start, end)) if blocks[*start].client == block.client => *end = index + 1,
            _ => runs.push((index, index + 1)),
        }
    }
    let mut next: Vec<usize> = runs.iter().map(|(start, _)| *start).collect();
    loop {
        let mut progress = false;
        for (run, (_, end)) in runs.iter().enumerate() {
            while next[run] < *end {
                let block = &blocks[next[run]];
                let has = |id: &yrs::ID| id.clock < known_end(&known, &id.client);
                let integrable = match block.shape {
                    // A gap the update declares: fine once the document has those clocks.
                    Shape::Skip => block.clock + block.len <= known_end(&known, &block.client),
                    Shape::Gone => block.clock <= known_end(&known, &block.client),
                    Shape::Item {
                        origin,
                        right,
                        parent,
                        ..
                    } => {
                        block.clock <= known_end(&known, &block.client)
                            && origin.as_ref().is_none_or(has)
                            && right.as_ref().is_none_or(has)
                            && bounded::parent_id(parent)?.as_ref().is_none_or(has)
                    }
                };
                if !integrable {
                    break;
                }
                let end_clock = block.clock + block.len;
                let entry = known
                    .entry(block.client)
                    .or_insert_with(|| in_document(&block.client));
                *entry = (*entry).max(end_clock);
                next[run] += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    Ok(runs.iter().zip(&next).all(|((_, end), next)| next == end))
}

/// The blocks `bytes` holds for `clients`, per client in clock order.
fn blocks_of<'a>(
    bytes: &'a [u8],
    clients: &HashSet<ClientID>,
) -> Result<HashMap<ClientID, Vec<Block<'a>>>, BoundError> {
    let mut found: HashMap<ClientID, Vec<Block<'a>>> = HashMap::new();
    bounded::walk(bytes, |block| {
        if clients.contains(&block.client) {
            found.entry(block.client).or_default().push(block);
        }
    })?;
    Ok(found)
}

/// Compares what `incoming` and `held` hold for `clients` wherever both hold an id.
fn compare(
    incoming: &[u8],
    held: &[u8],
    clients: &HashSet<ClientID>,
    with: &'static str,
) -> Result<(), Refusal> {
    let incoming = blocks_of(incoming, clients)?;
    let held = blocks_of(held, clients)?;
    for (client, ours) in &incoming {
        let Some(theirs) = held.get(client) else {
            continue;
        };
        if let Some(clock) = first_conflict(ours, theirs)? {
            return Err(Refusal::Conflict {
                client: client.get(),
                clock,
                with,
            });
        }
    }
    Ok(())
}

/// The first clock at which two block lists of one client (each ascending and without
/// overlaps, as the walk yields them) hold different content.
pub fn first_conflict(a: &[Block<'_>], b: &[Block<'_>]) -> Result<Option<u32>, BoundError> {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (&a[i], &b[j]);
        let start = x.clock.max(y.clock);
        let end = (x.clock + x.len).min(y.clock + y.len);
        if start < end && !same_ticks(x, y, start, end)? {
            return Ok(Some(start));
        }
        if x.clock + x.len <= y.clock + y.len {
            i += 1;
        } else {
            j += 1;
        }
    }
    Ok(None)
}

/// The implied left origin of tick `clock` in `block`: a slice of an item starting past its
/// first tick has the previous tick as its origin (how Yjs splits and encodes items, and the
/// condition under which it merges two into one).
fn origin_at(block: &Block<'_>, clock: u32, origin: Option<yrs::ID>) -> Option<yrs::ID> {
    if clock == block.clock {
        origin
    } else {
        Some(yrs::ID::new(block.client, clock - 1))
    }
}

/// Whether two blocks of one client hold the same content for ticks `start..end`.
fn same_ticks(x: &Block<'_>, y: &Block<'_>, start: u32, end: u32) -> Result<bool, BoundError> {
    let (
        Shape::Item {
            origin: xo,
            right: xr,
            parent: xp,
            kind: xk,
            content: xc,
        },
        Shape::Item {
            origin: yo,
            right: yr,
            parent: yp,
            kind: yk,
            content: yc,
        },
    ) = (x.shape, y.shape)
    else {
        // A skip holds nothing; collected ids match whatever the other side holds.
        return Ok(true);
    };
    if xk != yk || xr != yr || origin_at(x, start, xo) != origin_at(y, start, yo) {
        return Ok(false);
    }
    // The parent is encoded only on an item's first tick, and only when it has no origins.
    let x_parent = if start == x.clock { xp } else { &[][..] };
    let y_parent = if start == y.clock { yp } else { &[][..] };
    if x_parent != y_parent {
        return Ok(false);
    }
    let (ox, oy, n) = (
        (start - x.clock) as usize,
        (start - y.clock) as usize,
        (end - start) as usize,
    );
    Ok(match xk {
        bounded::STRING => {
            let xs = bounded::string(xc)?.encode_utf16().skip(ox).take(n);
            let ys = bounded::string(yc)?.encode_utf16().skip(oy).take(n);
            // A surrogate pair split between two items is written as U+FFFD on either side.
            xs.zip(ys)
                .all(|(a, b)| a == b || a == 0xFFFD || b == 0xFFFD)
        }
        bounded::ANY => {
            let xs = bounded::any_values(xc)?;
            let ys = bounded::any_values(yc)?;
            xs.get(ox..ox + n) == ys.get(oy..oy + n)
        }
        // One tick each (types, embeds, formats, binaries): the same bytes.
        _ => xc == yc,
    })
}

#[cfg(test)]
mod tests {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, Text, Transact, Update};

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Offers `bytes` as a room does: walk, admission (held or applied), yrs.
    fn offer(doc: &Doc, admission: &mut Admission, bytes: &[u8]) -> Result<(), Refusal> {
        let spans = bounded::spans(bytes)?;
        let mut txn = doc.transact_mut();
        match admission.offer(&mut txn, &spans, bytes, Extent::Everything, 0) {
            Ok(_) => Ok(()),
            Err(Offence::Refused(refusal)) => Err(refusal),
            Err(failed) => panic!("{failed}"),
        }
    }

    fn update_of(doc: &Doc, edit: impl FnOnce(&Doc)) -> Vec<u8> {
        let before = doc.transact().state_vector();
        edit(doc);
        doc.transact().encode_state_as_update_v1(&before)
    }

    /// `fuzz/regressions/update_sequence/use-after-free-exclude`: client 1's clock 0 is a map
    /// entry in one update and the text "hx" in another, while its clock 1 (another map entry)
    /// was integrated ahead of clock 0 behind a skip.
    #[test]
    fn the_use_after_free_sequence_is_refused_at_its_second_update() {
        let k1 = unhex("01 01 01 01 28 01 01 6d 02 6b 31 01 7d b1 02 00");
        let hx = unhex("01 01 01 00 04 01 01 74 02 68 78 00");
        let k2 = unhex("01 01 01 00 28 01 01 6d 02 6b 32 01 7d bc 03 00");
        let doc = Doc::new();
        let mut admission = Admission::default();
        offer(&doc, &mut admission, &k1).expect("clock 1 alone is admitted");
        assert!(
            admission.is_holding(),
            "held, not integrated ahead of clock 0"
        );
        let refusal = offer(&doc, &mut admission, &hx).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Conflict {
                client: 1,
                clock: 1,
                with: "pending"
            }
        );
        // Clock 0 on its own: no id shared with different content; clock 1 follows it.
        offer(&doc, &mut admission, &k2).expect("the gap is filled");
        assert!(!admission.is_holding());
        assert!(doc.transact().store().pending_update().is_none());
        let map = doc.get_or_insert_map("m");
        let txn = doc.transact();
        assert!(map.get(&txn, "k1").is_some() && map.get(&txn, "k2").is_some());
    }

    /// `fuzz/regressions/update_sequence/use-after-free-skip-behind-pending` (the campaign,
    /// 2026-12-07): client 1's map entry at clock 3 is integrated ahead of clocks 0–2 behind a
    /// skip, a later item waits pending for an id inside the skip, and when clock 0 arrives
    /// yrs integrates the pending item behind a second skip and reads freed memory
    /// (`integrate_item`, block.rs:1009). No id is given two contents here: the class is yrs'
    /// out-of-order integration itself. Now nothing is handed to yrs that it cannot integrate
    /// whole and in order: yrs never keeps a pending update or a skip of its own.
    #[test]
    fn yrs_never_integrates_ahead_of_a_clients_clocks_nor_keeps_pending_state() {
        let updates = [
            "010101002801016d026b30017d0000",
            "010101032801016d026b30017d0000",
            "0101010104010174036a706100",
            "010101042801016d026b31017d3d00",
            "0101010544010103666b6100",
            "01010108a80100017daa020101010001",
        ];
        let doc = Doc::new();
        let mut admission = Admission::default();
        for i in [1, 2, 3, 4, 5, 0] {
            let _ = offer(&doc, &mut admission, &unhex(updates[i]));
            let txn = doc.transact();
            assert!(txn.store().pending_update().is_none(), "after update {i}");
            let state = txn.encode_state_as_update_v1(&StateVector::default());
            let mut skips = 0;
            bounded::walk(&state, |block| {
                skips += usize::from(block.shape == Shape::Skip)
            })
            .expect("walks");
            assert_eq!(skips, 0, "no skip in the document after update {i}");
        }
        // "jpa" (clocks 1–3) gave clock 3 another content than the held map entry: refused.
        // So clocks 1–2 never arrive, and what comes after them stays held, outside yrs.
        assert_eq!(doc.transact().state_vector().get(&ClientID::new(1)), 1);
        assert_eq!(admission.held.len(), 4);
    }

    /// `Y.mergeUpdates` of a client's clocks 0 and 2 writes a skip for clock 1: held until the
    /// document has clock 1, then integrated (yrs ignores a skip it already covers).
    #[test]
    fn a_merged_update_with_a_gap_waits_for_the_gap() {
        let writer = Doc::with_client_id(5);
        let map = writer.get_or_insert_map("m");
        let mut edits = Vec::new();
        for key in ["a", "b", "c"] {
            edits.push(update_of(&writer, |d| {
                map.insert(&mut d.transact_mut(), key, 1);
            }));
        }
        let merged =
            yrs::merge_updates_v1([edits[0].as_slice(), edits[2].as_slice()]).expect("merges");
        let mut skips = 0;
        bounded::walk(&merged, |block| {
            skips += usize::from(block.shape == Shape::Skip)
        })
        .expect("walks");
        assert_eq!(skips, 1, "the merge declares the gap");
        let doc = Doc::new();
        let mut admission = Admission::default();
        offer(&doc, &mut admission, &merged).expect("held");
        assert!(admission.is_holding());
        offer(&doc, &mut admission, &edits[0]).expect("clock 0 again");
        assert!(admission.is_holding(), "clock 1 is still missing");
        offer(&doc, &mut admission, &edits[1]).expect("clock 1");
        assert!(!admission.is_holding());
        let txn = doc.transact();
        let map = txn.get_map("m").expect("map");
        assert_eq!(map.len(&txn), 3);
    }

    #[test]
    fn the_same_content_sent_again_is_admitted_however_it_is_cut() {
        let writer = Doc::with_client_id(7);
        let text = writer.get_or_insert_text("t");
        let mut updates = Vec::new();
        for word in ["héllo", " wörld", " 😀!", " again"] {
            updates.push(update_of(&writer, |d| {
                let mut txn = d.transact_mut();
                let len = text.len(&txn);
                text.insert(&mut txn, len, word);
            }));
        }
        updates.push(update_of(&writer, |d| {
            text.remove_range(&mut d.transact_mut(), 1, 6);
        }));
        let whole = writer
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let doc = Doc::new();
        let mut admission = Admission::default();
        for update in &updates {
            offer(&doc, &mut admission, update).expect("each edit");
        }
        // The whole state again (items merged into one block by yrs, deletions collected),
        // then each edit again: every overlap holds the same content.
        offer(&doc, &mut admission, &whole).expect("the whole state again");
        for update in &updates {
            offer(&doc, &mut admission, update).expect("each edit again");
        }
        assert_eq!(
            text.get_string(&writer.transact()),
            doc.get_or_insert_text("t").get_string(&doc.transact())
        );
    }

    #[test]
    fn content_waiting_for_a_dependency_cannot_be_replaced() {
        // Client 2's item depends on client 1's, which has not arrived: it waits pending.
        let one = Doc::with_client_id(1);
        let two = Doc::with_client_id(2);
        let first = update_of(&one, |d| {
            d.get_or_insert_text("t")
                .insert(&mut d.transact_mut(), 0, "a");
        });
        Update::decode_v1(&first)
            .map(|u| two.transact_mut().apply_update(u))
            .expect("decodes")
            .expect("applies");
        let honest = update_of(&two, |d| {
            d.get_or_insert_text("t")
                .insert(&mut d.transact_mut(), 1, "b");
        });
        // The same id (2:0), other content: "z" after the same origin.
        let forged = {
            let mut bytes = honest.clone();
            let at = bytes.iter().rposition(|&b| b == b'b').expect("the content");
            bytes[at] = b'z';
            bytes
        };
        let doc = Doc::new();
        let mut admission = Admission::default();
        offer(&doc, &mut admission, &honest).expect("held");
        assert!(admission.is_holding());
        offer(&doc, &mut admission, &honest).expect("the same pending content again");
        assert_eq!(
            offer(&doc, &mut admission, &forged).unwrap_err(),
            Refusal::Conflict {
                client: 2,
                clock: 0,
                with: "pending"
            }
        );
        offer(&doc, &mut admission, &first).expect("the dependency");
        assert_eq!(
            doc.get_or_insert_text("t").get_string(&doc.transact()),
            "ab"
        );
    }

    #[test]
    fn pending_state_is_bounded_but_its_dependency_is_admitted() {
        // Client 2's items all hang off client 1's first item, which is held back.
        let one = Doc::with_client_id(1);
        let first = update_of(&one, |d| {
            d.get_or_insert_text("t")
                .insert(&mut d.transact_mut(), 0, "a");
        });
        let two = Doc::with_client_id(2);
        Update::decode_v1(&first)
            .map(|u| two.transact_mut().apply_update(u))
            .expect("decodes")
            .expect("applies");
        let doc = Doc::new();
        let mut admission = Admission::default();
        let chunk = "x".repeat(64 * 1024);
        let mut refused = None;
        for round in 0..40 {
            let update = update_of(&two, |d| {
                d.get_or_insert_text("t")
                    .insert(&mut d.transact_mut(), 1, &chunk);
            });
            if let Err(refusal) = offer(&doc, &mut admission, &update) {
                refused = Some((round, refusal));
                break;
            }
        }
        let (round, refusal) = refused.expect("held updates stop growing");
        assert!(matches!(refusal, Refusal::HeldFull { .. }), "{refusal}");
        assert!((15..=16).contains(&round), "refused at round {round}");
        offer(&doc, &mut admission, &first).expect("the missing client is admitted");
        assert!(!admission.is_holding(), "and releases what was held");
        assert_eq!(
            doc.get_or_insert_text("t")
                .get_string(&doc.transact())
                .len(),
            1 + round * 64 * 1024
        );
    }
}
