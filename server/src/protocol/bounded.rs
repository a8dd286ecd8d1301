//! Decoding that never reserves more than the bytes in hand justify.
//!
//! yrs' decoders size their collections from the count they read (`StateVector::decode`,
//! `AwarenessUpdate::decode` and `Update::decode` call `try_reserve(count)`), so a 10-byte frame
//! that claims 2^29 state-vector entries makes the process touch about a gigabyte before the
//! decoder notices the bytes are missing. `try_reserve` only fails when the allocator refuses;
//! on Linux it does not, and a hash table's control bytes are written up front.
//!
//! Every count read here is checked against the bytes that remain (each entry needs at least
//! so many) before anything is reserved, and nested values are limited in depth (yrs decodes
//! them recursively: a deep enough nesting overflows the stack). A frame of n bytes then costs
//! O(n) memory. State vectors and awareness updates are decoded here directly; a v1 update is
//! walked once, allocating nothing, and only then handed to yrs.

use std::collections::HashMap;

use yrs::block::ClientID;
use yrs::encoding::read::{self, Cursor, Read};
use yrs::sync::AwarenessUpdate;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::updates::decoder::Decode;
use yrs::{ID, ReadTxn, StateVector, Update};

/// Deepest nesting of `Any` values (arrays and maps) accepted in an update: serde_json's
/// default recursion limit, far beyond what editors produce, far below what overflows a stack.
pub const MAX_NESTING: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoundError {
    #[error("{what} claims {claimed} entries but only {remaining} bytes follow")]
    Count {
        what: &'static str,
        claimed: u64,
        remaining: usize,
    },
    #[error("values nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("unknown {what} {value}")]
    Unknown { what: &'static str, value: u8 },
    #[error("client id {0} is wider than 53 bits")]
    ClientId(u64),
    #[error("{0} are not supported")]
    Unsupported(&'static str),
    #[error("{0}")]
    Read(String),
}

impl From<read::Error> for BoundError {
    fn from(error: read::Error) -> Self {
        BoundError::Read(error.to_string())
    }
}

type Result<T> = std::result::Result<T, BoundError>;

/// Yjs client ids are 53-bit; yrs folds wider ones onto others (and asserts in debug builds).
const CLIENT_ID_BITS: u32 = 53;

fn client(cursor: &mut Cursor<'_>) -> Result<ClientID> {
    let id: u64 = cursor.read_var()?;
    if id >> CLIENT_ID_BITS != 0 {
        return Err(BoundError::ClientId(id));
    }
    Ok(ClientID::new(id))
}

fn remaining(cursor: &Cursor<'_>) -> usize {
    cursor.buf.len().saturating_sub(cursor.next)
}

/// Reads a count of entries that take at least `min_bytes` each, and checks that they fit.
fn count(cursor: &mut Cursor<'_>, what: &'static str, min_bytes: usize) -> Result<usize> {
    let claimed: u64 = cursor.read_var()?;
    let left = remaining(cursor);
    let fits = usize::try_from(claimed)
        .ok()
        .and_then(|n| n.checked_mul(min_bytes))
        .is_some_and(|needed| needed <= left);
    if !fits {
        return Err(BoundError::Count {
            what,
            claimed,
            remaining: left,
        });
    }
    // Fits in usize: checked above.
    Ok(claimed as usize)
}

/// A v1 state vector: `[count][client, clock]*`, each entry at least two bytes.
pub fn state_vector(bytes: &[u8]) -> Result<StateVector> {
    let mut cursor = Cursor::new(bytes);
    let entries = count(&mut cursor, "state vector", 2)?;
    let mut sv = StateVector::default();
    for _ in 0..entries {
        let client = client(&mut cursor)?;
        let clock: u32 = cursor.read_var()?;
        // `set_max`, not insert: a repeated client keeps its highest clock, as a map would
        // keep the last one; either way the entry count stays bounded by the bytes.
        sv.set_max(client, clock);
    }
    Ok(sv)
}

/// A v1 awareness update: `[count][client, clock, json]*`, each entry at least three bytes.
pub fn awareness_update(bytes: &[u8]) -> Result<AwarenessUpdate> {
    let mut cursor = Cursor::new(bytes);
    let entries = count(&mut cursor, "awareness update", 3)?;
    let mut clients = HashMap::with_capacity(entries.min(64));
    for _ in 0..entries {
        let client = client(&mut cursor)?;
        let clock: u32 = cursor.read_var()?;
        let json = cursor.read_string()?;
        clients.insert(
            client,
            AwarenessUpdateEntry {
                clock,
                json: json.into(),
            },
        );
    }
    Ok(AwarenessUpdate { clients })
}

/// Applies an update in `txn`, containing a panic inside yrs as an error. yrs' integration is
/// not robust against every crafted update that decodes (fuzzing found clock arithmetic that
/// overflows while replacing skipped ranges); the caller treats the error like any failed
/// update: the document is rebuilt without it (a room) or the update is quarantined (a load).
pub fn apply(txn: &mut yrs::TransactionMut<'_>, update: Update) -> std::result::Result<(), String> {
    let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        txn.apply_update(update)?;
        unstick(txn)
    }));
    match applied {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("yrs panicked integrating the update: {what}"))
        }
    }
}

/// Rounds of [`unstick`] per update; each integrates part of what is pending or stops.
const UNSTICK_ROUNDS: usize = 4;

/// yrs 0.28.1 can leave a pending update waiting for blocks it holds itself, or for a clock
/// it computed wrong: retried when its dependency arrives, its blocks are taken in an order
/// where one still lacks another from the same pending update, or its `missing` names a clock
/// past a skip that nothing will ever fill, and what is left stays pending although everything
/// it needs is there (`fuzz/regressions/update_sequence/stuck-pending-*`, docs/security.md).
/// Applying the pending update again integrates it. Done after an update that changed the
/// document, while a client the pending update waits for is known (in the document or in the
/// pending update itself: one never seen is truly missing), and while that makes progress.
/// Costs a decode of the pending update (bounded, see `protocol::admission`) per such update.
fn unstick(txn: &mut yrs::TransactionMut<'_>) -> std::result::Result<(), yrs::error::UpdateError> {
    use yrs::updates::encoder::Encode;
    if txn.before_state() == txn.after_state() {
        return Ok(());
    }
    let mut last_len = usize::MAX;
    for _ in 0..UNSTICK_ROUNDS {
        let Some(pending) = txn.store().pending_update() else {
            return Ok(());
        };
        let held = pending.update.encode_v1();
        if held.len() >= last_len {
            return Ok(());
        }
        last_len = held.len();
        let Ok(spans) = spans(&held) else {
            return Ok(());
        };
        let sv = txn.state_vector();
        let known = pending.missing.iter().any(|(client, _)| {
            sv.contains_client(client) || spans.iter().any(|s| s.client == *client)
        });
        if !known {
            return Ok(());
        }
        let Ok(update) = Update::decode_v1(&held) else {
            return Ok(());
        };
        txn.apply_update(update)?;
    }
    Ok(())
}

/// Decodes a v1 update after checking every count and nesting in it.
pub fn update(bytes: &[u8]) -> Result<Update> {
    check_update(bytes)?;
    Ok(Update::decode_v1(bytes)?)
}

/// Decodes a v1 update after checking it, with the clock range it holds per client.
pub fn update_with_spans(bytes: &[u8]) -> Result<(Update, Vec<Span>)> {
    let spans = spans(bytes)?;
    Ok((Update::decode_v1(bytes)?, spans))
}

/// Walks a v1 update exactly as yrs' `Update::decode` reads it (blocks per client, then the
/// delete set), allocating nothing, and fails on the first count the remaining bytes cannot
/// hold or the first value nested deeper than [`MAX_NESTING`].
pub fn check_update(bytes: &[u8]) -> Result<()> {
    walk(bytes, |_| {})
}

/// The clocks an update holds for one client: `start..end`, skips included (a merged update
/// may carry gaps as skip blocks; the range covers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub client: ClientID,
    pub start: u32,
    pub end: u32,
}

/// [`check_update`], and the clock range of every client in the update.
pub fn spans(bytes: &[u8]) -> Result<Vec<Span>> {
    let mut spans: Vec<Span> = Vec::new();
    walk(bytes, |block| match spans.last_mut() {
        Some(span) if span.client == block.client => span.end = block.clock + block.len,
        _ => spans.push(Span {
            client: block.client,
            start: block.clock,
            end: block.clock + block.len,
        }),
    })?;
    Ok(spans)
}

/// One block of a v1 update as the walk reads it: its ids (`clock..clock + len` of `client`)
/// and what it holds, borrowed from the update's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    pub client: ClientID,
    pub clock: u32,
    pub len: u32,
    pub shape: Shape<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape<'a> {
    /// Ids the update does not hold (a gap in a merged update).
    Skip,
    /// Ids whose content was garbage collected: a GC block or deleted content.
    Gone,
    Item {
        origin: Option<ID>,
        right: Option<ID>,
        /// The parent and key as encoded (only when the item has neither origin).
        parent: &'a [u8],
        /// The content type (`info & 0b1111`) and its encoded bytes.
        kind: u8,
        content: &'a [u8],
    },
}

/// The walk behind [`check_update`]: `visit` sees every block, in the order of the bytes (per
/// client, ascending and contiguous clocks), before the delete set is checked.
pub fn walk<'a>(bytes: &'a [u8], mut visit: impl FnMut(Block<'a>)) -> Result<()> {
    let mut cursor = Cursor::new(bytes);
    let c = &mut cursor;
    // Per client: block count, client id, first clock.
    let clients = count(c, "update", 3)?;
    // Every encoder (Yjs, yrs, `Y.mergeUpdates`) lists a client once; yrs appends a repeated
    // one's blocks to the first, overlapping clocks, which its integration does not survive
    // (fuzzing found a use-after-free there). Bounded by the bytes, like the count.
    let mut seen = std::collections::HashSet::with_capacity(clients.min(64));
    for _ in 0..clients {
        // A block is at least its info byte and one more.
        let blocks = count(c, "update client", 2)?;
        let client = client(c)?;
        if !seen.insert(client) {
            return Err(BoundError::Unsupported(
                "clients listed twice in one update",
            ));
        }
        // yrs adds each block's length to the clock in u32 (overflowing, with checks off,
        // into nonsense): the clocks must stay within u32.
        let mut clock = c.read_var::<u32>()?;
        for _ in 0..blocks {
            let (len, shape) = block(c, bytes)?;
            let end = u64::from(clock) + len;
            if end > u64::from(u32::MAX) {
                return Err(BoundError::Unsupported("clocks past 2^32"));
            }
            // Within u32: checked above.
            let len = len as u32;
            visit(Block {
                client,
                clock,
                len,
                shape,
            });
            clock += len;
        }
    }
    // The delete set: per client its id and range count; per range a clock and a length.
    let clients = count(c, "delete set", 2)?;
    for _ in 0..clients {
        client(c)?;
        let ranges = count(c, "delete set client", 2)?;
        for _ in 0..ranges {
            let clock: u32 = c.read_var()?;
            let len: u32 = c.read_var()?;
            if clock.checked_add(len).is_none() {
                return Err(BoundError::Unsupported("deleted ranges past 2^32"));
            }
        }
    }
    Ok(())
}

// yrs' block layout (`yrs::block`): the info byte's high bits say which references follow,
// its low four bits the content type; 0 is a GC block and 10 a skip.
const GC: u8 = 0;
const SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
/// Content types (`info & 0b1111`) read apart from the others.
pub const DELETED: u8 = 1;
pub const STRING: u8 = 4;
pub const ANY: u8 = 8;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

fn id(c: &mut Cursor<'_>) -> Result<ID> {
    let client = client(c)?;
    let clock: u32 = c.read_var()?;
    Ok(ID::new(client, clock))
}

/// Walks one block; returns its length in clock ticks and what it holds.
fn block<'a>(c: &mut Cursor<'a>, bytes: &'a [u8]) -> Result<(u64, Shape<'a>)> {
    let info = c.read_u8()?;
    if info == GC || info == SKIP {
        let len: u32 = c.read_var()?;
        let shape = if info == GC { Shape::Gone } else { Shape::Skip };
        return Ok((u64::from(len), shape));
    }
    let origin = (info & HAS_ORIGIN != 0).then(|| id(c)).transpose()?;
    let right = (info & HAS_RIGHT_ORIGIN != 0).then(|| id(c)).transpose()?;
    let parent_at = c.next;
    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
        let named: u32 = c.read_var()?;
        if named == 1 {
            c.read_string()?;
        } else {
            id(c)?;
        }
        if info & HAS_PARENT_SUB != 0 {
            c.read_string()?;
        }
    }
    let content_at = c.next;
    let kind = info & 0b1111;
    let len = content(c, kind)?;
    let shape = if kind == DELETED {
        Shape::Gone
    } else {
        Shape::Item {
            origin,
            right,
            parent: &bytes[parent_at..content_at],
            kind,
            content: &bytes[content_at..c.next],
        }
    };
    Ok((len, shape))
}

/// Walks one item's content; returns its length in clock ticks (a string's UTF-16 units).
fn content(c: &mut Cursor<'_>, kind: u8) -> Result<u64> {
    let len = match kind {
        // Deleted: a length.
        DELETED => u64::from(c.read_var::<u32>()?),
        // Legacy JSON content (Yjs writes `ContentAny` since 13.0): yrs reads one string more
        // than it writes, so a document holding it encodes a state that does not decode.
        2 => return Err(BoundError::Unsupported("legacy JSON content")),
        // Binary.
        3 => {
            c.read_buf()?;
            1
        }
        // String: yrs and Yjs count UTF-16 units.
        STRING => c.read_string()?.encode_utf16().count() as u64,
        // Embed (JSON text).
        5 => {
            c.read_string()?;
            1
        }
        // Format: key and JSON text.
        6 => {
            c.read_string()?;
            c.read_string()?;
            1
        }
        // A shared type; XML elements carry their tag name.
        7 => match c.read_u8()? {
            3 => {
                c.read_string()?;
                1
            }
            0..=2 | 4..=6 | 9 | 15 => 1,
            other => {
                return Err(BoundError::Unknown {
                    what: "type reference",
                    value: other,
                });
            }
        },
        // Any values.
        ANY => {
            let values = count(c, "any content", 1)?;
            for _ in 0..values {
                any(c, 0)?;
            }
            values as u64
        }
        // Subdocuments: yrs leaks every one it decodes, and a document holding one with
        // pending updates can panic while encoding its state. Hocuspocus providers do not
        // sync subdocuments; refused.
        9 => return Err(BoundError::Unsupported("subdocuments")),
        other => {
            return Err(BoundError::Unknown {
                what: "content type",
                value: other,
            });
        }
    };
    Ok(len)
}

fn signed_varint(c: &mut Cursor<'_>) -> Result<()> {
    let first = c.read_u8()?;
    if first & 0x80 == 0 {
        return Ok(());
    }
    for index in 1..10 {
        let byte = c.read_u8()?;
        // The tenth byte holds bit 62 only.
        if index == 9 && byte > 0x01 {
            return Err(BoundError::Unsupported("integer wider than 63 bits"));
        }
        if byte & 0x80 == 0 {
            return Ok(());
        }
    }
    Err(BoundError::Unsupported("integer wider than 63 bits"))
}

/// The encoded values of an `Any` content (as a [`Shape::Item`] holds it), one slice each.
pub fn any_values(content: &[u8]) -> Result<Vec<&[u8]>> {
    let mut c = Cursor::new(content);
    let values = count(&mut c, "any content", 1)?;
    let mut slices = Vec::with_capacity(values);
    for _ in 0..values {
        let at = c.next;
        any(&mut c, 0)?;
        slices.push(&content[at..c.next]);
    }
    Ok(slices)
}

/// The parent an item names by id (a nested type), from its encoded parent (as a
/// [`Shape::Item`] holds it); `None` for a named root or an item without an encoded parent.
pub fn parent_id(parent: &[u8]) -> Result<Option<ID>> {
    if parent.is_empty() {
        return Ok(None);
    }
    let mut c = Cursor::new(parent);
    let named: u32 = c.read_var()?;
    if named == 1 {
        return Ok(None);
    }
    Ok(Some(id(&mut c)?))
}

/// The text of a string content (as a [`Shape::Item`] holds it).
pub fn string(content: &[u8]) -> Result<&str> {
    let mut c = Cursor::new(content);
    let len: u32 = c.read_var()?;
    let at = c.next;
    c.read_exact(len as usize)?;
    std::str::from_utf8(&content[at..at + len as usize])
        .map_err(|_| BoundError::Read("string content is not UTF-8".into()))
}

/// One lib0 `Any` value (`yrs::Any::decode`), at nesting `depth`.
fn any(c: &mut Cursor<'_>, depth: usize) -> Result<()> {
    if depth >= MAX_NESTING {
        return Err(BoundError::TooDeep);
    }
    match c.read_u8()? {
        // undefined, null, false, true
        127 | 126 | 121 | 120 => {}
        // A signed varint: 6 bits, then 7 per byte, at most 63 bits in 10 bytes. yrs shifts
        // past 64 bits on longer ones (a panic where overflow checks are on) and negates
        // i64::MIN; skipped here, never handed to yrs unchecked.
        125 => signed_varint(c)?,
        124 => {
            c.read_exact(4)?;
        }
        123 | 122 => {
            c.read_exact(8)?;
        }
        119 => {
            c.read_string()?;
        }
        // Map: per entry a key (at least its length byte) and a value (at least its tag).
        118 => {
            let entries = count(c, "any map", 2)?;
            for _ in 0..entries {
                c.read_string()?;
                any(c, depth + 1)?;
            }
        }
        117 => {
            let items = count(c, "any array", 1)?;
            for _ in 0..items {
                any(c, depth + 1)?;
            }
        }
        116 => {
            c.read_buf()?;
        }
        other => {
            return Err(BoundError::Unknown {
                what: "any tag",
                value: other,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any as arbitrary, *};
    use yrs::updates::encoder::Encode;
    use yrs::{Any, Array, Doc, GetString, Map, ReadTxn, Text, Transact, WriteTxn, XmlFragment};

    use super::*;

    fn rich_document() -> Doc {
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("text");
            text.insert(&mut txn, 0, "hello world");
            text.remove_range(&mut txn, 2, 3);
            let map = txn.get_or_insert_map("map");
            map.insert(&mut txn, "n", 1.5);
            map.insert(&mut txn, "i", 42i64);
            map.insert(&mut txn, "s", "str");
            map.insert(
                &mut txn,
                "nested",
                Any::from(HashMap::from([(
                    "a".to_string(),
                    Any::from(vec![Any::Null, Any::Bool(true), Any::from(vec![1u8, 2])]),
                )])),
            );
            let array = txn.get_or_insert_array("array");
            array.insert_range(&mut txn, 0, [1, 2, 3]);
            array.remove(&mut txn, 1);
            let xml = txn.get_or_insert_xml_fragment("prosemirror");
            let p = xml.insert(&mut txn, 0, yrs::XmlElementPrelim::empty("paragraph"));
            p.insert(&mut txn, 0, yrs::XmlTextPrelim::new("para"));
        }
        doc
    }

    #[test]
    fn real_updates_pass_the_walk() {
        let doc = rich_document();
        let bytes = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        check_update(&bytes).expect("a real update walks");
        update(&bytes).expect("and decodes");
        assert_eq!(check_update(&[0, 0]), Ok(()));
    }

    #[test]
    fn the_attack_frame_state_vector_is_refused_before_any_reservation() {
        // 2^29 entries claimed, none present (the 10-byte frame).
        let error = state_vector(&[0x80, 0x80, 0x80, 0x80, 0x02]).unwrap_err();
        assert!(matches!(error, BoundError::Count { .. }), "{error}");
    }

    #[test]
    fn amplifying_counts_are_refused_everywhere() {
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f];
        // Clients of an update.
        assert!(matches!(
            check_update(&huge),
            Err(BoundError::Count { what: "update", .. })
        ));
        // Blocks of one client.
        let blocks = [&[1][..], &huge, &[1, 0]].concat();
        assert!(matches!(
            check_update(&blocks),
            Err(BoundError::Count {
                what: "update client",
                ..
            })
        ));
        // Delete-set clients.
        let ds = [&[0][..], &huge].concat();
        assert!(matches!(
            check_update(&ds),
            Err(BoundError::Count {
                what: "delete set",
                ..
            })
        ));
        // Awareness entries.
        assert!(matches!(
            awareness_update(&huge),
            Err(BoundError::Count { .. })
        ));
        // An Any array inside an item: client 1, clock 0, one block, info = Any content with a
        // named parent "a", then the count.
        let content = [&[1, 1, 1, 0, 8, 1, 1, b'a'][..], &huge].concat();
        assert!(matches!(
            check_update(&content),
            Err(BoundError::Count {
                what: "any content",
                ..
            })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_before_yrs_recurses() {
        // One Any array nested 100,000 deep: 200 KB that would overflow a worker's stack.
        let mut bytes = vec![1, 1, 1, 0, 8, 1, 1, b'a', 1];
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[117, 1]);
        }
        bytes.push(126);
        bytes.push(0);
        assert_eq!(check_update(&bytes), Err(BoundError::TooDeep));
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Inputs the fuzzer (`fuzz/`, target `update`) found yrs mishandling.
    #[test]
    fn what_yrs_mishandles_is_refused_before_it_sees_it() {
        // An 11-byte signed varint in an Any: yrs shifts by 69 (a panic with overflow checks).
        let long_int = unhex("0101010008010161017dffffffffffffffffffff01");
        assert!(matches!(
            check_update(&long_int),
            Err(BoundError::Unsupported(_))
        ));
        // Legacy JSON content, which yrs re-encodes into bytes it cannot decode.
        let json = unhex("01010000020100000000");
        assert!(matches!(
            check_update(&json),
            Err(BoundError::Unsupported(_))
        ));
        // A subdocument (leaked by yrs; with a pending update, encoding the state panics).
        let subdoc =
            unhex("01010300290104646f637303737562087375622d677569647601046d6574617601016b7d0100");
        assert!(matches!(
            check_update(&subdoc),
            Err(BoundError::Unsupported(_))
        ));
        // Clocks past u32 (yrs adds in u32: an overflow panic with checks on, nonsense without):
        // a deleted range, and a block whose length passes 2^32 from a high first clock.
        let range = unhex("0001010102ffffffff0f");
        assert!(matches!(
            check_update(&range),
            Err(BoundError::Unsupported(_))
        ));
        let blocks = unhex("010101feffffff0f0401016102616200");
        assert!(matches!(
            check_update(&blocks),
            Err(BoundError::Unsupported(_))
        ));
        // Integers yrs reads fine still pass, large and negative.
        let doc = Doc::new();
        {
            let mut txn = doc.transact_mut();
            let map = txn.get_or_insert_map("m");
            map.insert(&mut txn, "big", 1i64 << 52);
            map.insert(&mut txn, "neg", -(1i64 << 50));
            let array = txn.get_or_insert_array("a");
            array.push_back(&mut txn, Any::from(vec![Any::from(-(1i64 << 40))]));
        }
        let bytes = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        check_update(&bytes).expect("ordinary integers walk");
    }

    /// Found by fuzzing (`update`, AddressSanitizer: a heap use-after-free in yrs'
    /// `resolve_conflict`): one client listed five times, with overlapping clocks.
    #[test]
    fn a_client_listed_twice_is_refused() {
        let bytes = unhex(concat!(
            "0901a40101010101010000000000000000000101010101000000000101010101010101010101010101",
            "7a010101010101010101010101010101010101010154c8f4ff030120000000007a00740361626200",
        ));
        assert_eq!(
            check_update(&bytes),
            Err(BoundError::Unsupported(
                "clients listed twice in one update"
            ))
        );
    }

    /// Found by fuzzing (`update`): yrs overflows a clock while integrating it (a GC block
    /// replacing a skipped range of a client listed twice). The walk now refuses it; decoded
    /// past the walk, the panic inside yrs is contained by `apply`.
    #[test]
    fn a_panic_inside_yrs_integration_is_contained() {
        let bytes = unhex(concat!(
            "0901d201010004010174000101000801013c0175017501750175017501770175017501750175017501750175",
            "230175017501750175017501755475017501752d750175017501750175017501750175010000002d00000000",
            "006d0000000000000000000075230175017501750175017501755475017501752d7501750175017501750175",
            "01750175010000002d00000000006d0000000000000000000000000000000000000000000000000000000000",
            "00000000007c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c",
            "7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c",
            "7c7c7c7c7c7c7c7c7c0000ffffff2dffffffff00000000000000000000000000000000000000000000000000",
            "0000000000006f75",
        ));
        assert!(check_update(&bytes).is_err(), "the walk refuses it now");
        let update = Update::decode_v1(&bytes).expect("yrs decodes it");
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        let outcome = apply(&mut txn, update);
        // yrs is built with overflow checks (dev and release profiles): it panics inside.
        assert!(
            matches!(&outcome, Err(reason) if reason.contains("panicked")),
            "{outcome:?}"
        );
    }

    /// `fuzz/regressions/update_sequence/stuck-pending-order`: delivered 1, 2, 3, 4, 0, yrs
    /// 0.28.1 alone leaves everything but update 0 pending for client 2's block, which is
    /// inside that same pending update; the document read "a".
    #[test]
    fn a_pending_update_waiting_for_itself_is_integrated() {
        let updates = [
            "0101010004010174016100",
            "01010200440100046976766300",
            "01010101440200016100",
            "01010102440101016100",
            "01010103440102016100",
        ];
        let updates: Vec<Vec<u8>> = updates.iter().map(|hex| unhex(hex)).collect();
        let doc = Doc::new();
        for i in [1, 2, 3, 4, 0] {
            let update = update(&updates[i]).expect("walks");
            apply(&mut doc.transact_mut(), update).expect("applies");
        }
        let in_order = Doc::new();
        for bytes in &updates {
            apply(&mut in_order.transact_mut(), update(bytes).expect("walks")).expect("applies");
        }
        let text = |doc: &Doc| doc.get_or_insert_text("t").get_string(&doc.transact());
        assert_eq!(text(&in_order), "aaaivvca");
        assert_eq!(text(&doc), "aaaivvca");
        assert!(doc.transact().store().pending_update().is_none());
    }

    /// `fuzz/regressions/update_sequence/stuck-pending-missing-past-a-skip`: client 3's text
    /// waits for client 1's first item while its map entries (clocks 4–5) are integrated behind
    /// a skip; client 1's next item, which needs client 3's text, then makes yrs record the
    /// pending update as missing client 3's clock 6 (past everything), so the arrival of
    /// client 1's first item retried nothing and the document read "a".
    #[test]
    fn a_pending_update_missing_a_clock_past_a_skip_is_integrated() {
        let updates: Vec<Vec<u8>> = [
            "0101010004010174016100",
            "010103004401000461736b6c00",
            "010103042801016d026b32017da70200",
            "01010305a80304017da7020103010401",
            "01010101c403000301016b0103010401",
        ]
        .iter()
        .map(|hex| unhex(hex))
        .collect();
        let text = |doc: &Doc| doc.get_or_insert_text("t").get_string(&doc.transact());
        let in_order = Doc::new();
        for bytes in &updates {
            apply(&mut in_order.transact_mut(), update(bytes).expect("walks")).expect("applies");
        }
        let doc = Doc::new();
        for i in [1, 2, 3, 4, 0] {
            apply(&mut doc.transact_mut(), update(&updates[i]).expect("walks")).expect("applies");
        }
        assert_eq!(text(&in_order), "akskla");
        assert_eq!(text(&doc), "akskla");
        assert!(doc.transact().store().pending_update().is_none());
    }

    #[test]
    fn state_vectors_and_awareness_round_trip() {
        let doc = rich_document();
        let sv = doc.transact().state_vector();
        assert_eq!(state_vector(&sv.encode_v1()).expect("decodes"), sv);
        let update = AwarenessUpdate {
            clients: HashMap::from([(
                ClientID::new(7),
                AwarenessUpdateEntry {
                    clock: 3,
                    json: "{\"user\":\"a\"}".into(),
                },
            )]),
        };
        assert_eq!(
            awareness_update(&update.encode_v1()).expect("decodes"),
            update
        );
    }

    proptest! {
        /// The walk reads what yrs reads: what it passes yrs decodes without panicking, and
        /// what it finds malformed (not merely over a limit) yrs refuses too.
        #[test]
        fn the_walk_agrees_with_yrs(bytes in proptest::collection::vec(arbitrary::<u8>(), 0..128)) {
            match check_update(&bytes) {
                Ok(()) => {
                    let _ = Update::decode_v1(&bytes);
                }
                Err(BoundError::Read(_) | BoundError::Unknown { .. }) => {
                    prop_assert!(Update::decode_v1(&bytes).is_err());
                }
                Err(_) => {}
            }
        }

        #[test]
        fn edits_pass_the_walk(inserts in proptest::collection::vec(("[a-z]{0,8}", 0u32..20), 1..10)) {
            let doc = Doc::new();
            let text = doc.get_or_insert_text("t");
            let array = doc.get_or_insert_array("a");
            for (s, at) in inserts {
                let mut txn = doc.transact_mut();
                let len = text.len(&txn);
                text.insert(&mut txn, at.min(len), &s);
                array.push_back(&mut txn, s.clone());
                if len > 2 {
                    text.remove_range(&mut txn, 0, 1);
                }
            }
            let update = doc.transact().encode_state_as_update_v1(&StateVector::default());
            prop_assert_eq!(check_update(&update), Ok(()));
        }
    }
}
