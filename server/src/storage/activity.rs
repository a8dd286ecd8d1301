//! Document activity: who changed a document and when, per author per minute.
//!
//! The writer records it after each append it commits: every stored update counts for its
//! author (a token's `sub`, [`API_AUTHOR`] for the document API, [`ANONYMOUS`] otherwise) in
//! the minute it was stored. It is kept apart from the log (compaction folds the log away; the
//! activity stays), and it goes with its document: a DELETE removes it, and a record made for
//! a generation a DELETE ended is dropped. It is a second, small transaction after the append:
//! a crash between the two loses a minute's count, never an update.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::versions::format_ms;

pub const API_AUTHOR: &str = "api";
pub const ANONYMOUS: &str = "anonymous";
/// Content seeded by the `create` webhook's answer.
pub const WEBHOOK_AUTHOR: &str = "webhook";

const MINUTE_MS: u64 = 60_000;

/// One author's changes to a document in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub author: String,
    /// The minute's start, in milliseconds since the epoch.
    #[serde(serialize_with = "rfc3339", rename = "from")]
    pub minute: u64,
    /// Updates stored.
    pub updates: u64,
    /// Their bytes.
    pub bytes: u64,
}

fn rfc3339<S: serde::Serializer>(ms: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_ms(*ms))
}

/// The activity of a batch of stored updates (`None`: a peer's, recorded by its own replica),
/// all in the minute of `now` (milliseconds).
pub fn tally<'a>(
    stored: impl IntoIterator<Item = (&'a Option<Arc<str>>, usize)>,
    now: u64,
) -> Vec<Activity> {
    let minute = now - now % MINUTE_MS;
    let mut by_author: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (author, bytes) in stored {
        if let Some(author) = author {
            let entry = by_author.entry(author).or_default();
            entry.0 += 1;
            entry.1 += bytes as u64;
        }
    }
    by_author
        .into_iter()
        .map(|(author, (updates, bytes))| Activity {
            author: author.to_owned(),
            minute,
            updates,
            bytes,
        })
        .collect()
}

/// Adds `more` to `into`, one row per author and minute.
pub fn merge(into: &mut Vec<Activity>, more: Vec<Activity>) {
    for row in more {
        match into
            .iter_mut()
            .find(|r| r.minute == row.minute && r.author == row.author)
        {
            Some(existing) => {
                existing.updates += row.updates;
                existing.bytes += row.bytes;
            }
            None => into.push(row),
        }
    }
}

/// Adds to one author's minute if `$2` is still the document's generation: `$1` name,
/// `$2` generation, `$3` author, `$4` minute (ms), `$5` updates, `$6` bytes.
pub const RECORD: &str = "INSERT INTO document_activity (name, author, minute, updates, bytes) \
     SELECT $1, $3, $4, $5, $6 \
     WHERE COALESCE((SELECT generation FROM document_generations WHERE name = $1), 0) = $2 \
     ON CONFLICT (name, minute, author) DO UPDATE SET \
     updates = document_activity.updates + excluded.updates, \
     bytes = document_activity.bytes + excluded.bytes";

/// Newest first: `$1` name, `$2` from (ms, inclusive), `$3` to (ms, exclusive), `$4` limit.
pub const LIST: &str = "SELECT author, minute, updates, bytes FROM document_activity \
     WHERE name = $1 AND minute >= $2 AND minute < $3 \
     ORDER BY minute DESC, author LIMIT $4";

/// With the document: `$1` name.
pub const DELETE_ALL: &str = "DELETE FROM document_activity WHERE name = $1";

/// An activity row from its columns.
pub fn row(author: String, minute: i64, updates: i64, bytes: i64) -> Activity {
    Activity {
        author,
        minute: minute.max(0) as u64,
        updates: updates.max(0) as u64,
        bytes: bytes.max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_counts_per_author_in_its_minute_and_peers_not_at_all() {
        let alice: Option<Arc<str>> = Some(Arc::from("alice"));
        let api: Option<Arc<str>> = Some(Arc::from(API_AUTHOR));
        let peer: Option<Arc<str>> = None;
        let rows = tally(
            [(&alice, 10), (&peer, 99), (&api, 5), (&alice, 3)],
            1_796_601_645_123,
        );
        assert_eq!(
            rows,
            [
                row("alice".into(), 1_796_601_600_000, 2, 13),
                row("api".into(), 1_796_601_600_000, 1, 5),
            ]
        );
        assert_eq!(
            serde_json::to_value(&rows[0]).expect("json"),
            serde_json::json!({"author": "alice", "from": "2026-12-07T00:00:00.000Z", "updates": 2, "bytes": 13})
        );
    }
}
