//! What a document admits from a sequence of updates, before yrs sees any of them.
//!
//! [`bounded`](super::bounded) checks one update at a time. yrs 0.28 also keeps state across
//! updates: blocks whose dependencies are missing wait in a pending update that later updates
//! are merged into (`Update::merge_updates`), and blocks that arrive ahead of their client's
//! earlier clocks are integrated behind a skip. Two updates that each pass the walk can then
//! name one id with two different contents, and yrs does not survive that: fuzzing found a
//! heap use-after-free (`docs/security.md`, `fuzz/regressions/update_sequence/`).
//!
//! Yjs' own invariant closes the class: an id names one content forever. An update is
//! admitted only where every id it shares with what the document holds — integrated or
//! pending — carries the same content, tick by tick (the same origins, parent and value;
//! garbage-collected ids match anything, as either side may have collected them). Pending
//! state is bounded: past [`MAX_PENDING_BYTES`] an update is admitted only if it brings one of
//! the clients the pending blocks wait for.
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
    #[error("reading the document's blocks: {0}")]
    Unreadable(#[from] BoundError),
}

impl Refusal {
    /// The `reason` label of `collab_server_updates_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Conflict { .. } => "conflicting_ids",
            Refusal::PendingFull { .. } => "pending_full",
            Refusal::Unreadable(_) => "invalid",
        }
    }
}

/// The admission state of one document: the end of the clocks handed to yrs per client.
#[derive(Debug, Default, Clone)]
pub struct Admission {
    ends: HashMap<ClientID, u32>,
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

    /// Records an update yrs applied: its clocks are now integrated or pending.
    pub fn admitted(&mut self, spans: &[Span]) {
        for span in spans {
            let end = self.ends.entry(span.client).or_default();
            *end = (*end).max(span.end);
        }
    }
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

    /// Applies `bytes` as a room does: walk, admission, yrs.
    fn offer(doc: &Doc, admission: &mut Admission, bytes: &[u8]) -> Result<(), Refusal> {
        let spans = bounded::spans(bytes)?;
        let mut txn = doc.transact_mut();
        admission.check(&txn, &spans, bytes, Extent::Everything)?;
        let update = Update::decode_v1(bytes).expect("walked");
        bounded::apply(&mut txn, update).expect("applies");
        admission.admitted(&spans);
        Ok(())
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
        let refusal = offer(&doc, &mut admission, &hx).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Conflict {
                client: 1,
                clock: 1,
                with: "integrated"
            }
        );
        // Clock 0 on its own fills the skip: no id shared with different content.
        offer(&doc, &mut admission, &k2).expect("the gap is filled");
        let map = doc.get_or_insert_map("m");
        let txn = doc.transact();
        assert!(map.get(&txn, "k1").is_some() && map.get(&txn, "k2").is_some());
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
        offer(&doc, &mut admission, &honest).expect("pending");
        assert!(doc.transact().store().pending_update().is_some());
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
        let (round, refusal) = refused.expect("pending state stops growing");
        assert!(matches!(refusal, Refusal::PendingFull { .. }), "{refusal}");
        assert!((16..=17).contains(&round), "refused at round {round}");
        offer(&doc, &mut admission, &first).expect("the missing client is admitted");
        assert!(doc.transact().store().pending_update().is_none());
    }
}
