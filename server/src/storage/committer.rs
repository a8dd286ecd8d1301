//! The group committer of the SQL stores: one task takes the appends of every document waiting
//! (at least one), writes them in one transaction on its own connection, and answers each. Under
//! load one commit (one WAL flush) serves many documents; an idle store commits each append as
//! it comes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};
use tokio::sync::{mpsc, oneshot};

use super::{Activity, Result, StoreError, batch};

/// Most appends (documents' batches) in one commit, and most bytes.
const MAX_APPENDS_PER_COMMIT: usize = 1024;
const MAX_BYTES_PER_COMMIT: usize = 16 * 1024 * 1024;

/// One document's batch (and activity, where the store writes it in the same transaction),
/// waiting for the commit that writes it.
pub struct Append {
    pub document: String,
    pub generation: u64,
    pub updates: Vec<Vec<u8>>,
    pub activity: Vec<Activity>,
    pub done: oneshot::Sender<Result<()>>,
}

/// Writes a group in one transaction and commits it; returns the indices of the appends refused
/// as superseded (their generation is over).
pub type WriteGroup<DB> = for<'c> fn(
    &'c mut PoolConnection<DB>,
    &'c [Append],
)
    -> BoxFuture<'c, std::result::Result<Vec<usize>, sqlx::Error>>;

/// Sends one append to the committer and waits for its answer.
pub async fn append(
    appends: &mpsc::UnboundedSender<Append>,
    document: &str,
    generation: u64,
    updates: &[Vec<u8>],
    activity: Vec<Activity>,
) -> Result<()> {
    let (done, answer) = oneshot::channel();
    let gone = || StoreError::Append {
        document: document.to_owned(),
        source: sqlx::Error::PoolClosed,
    };
    appends
        .send(Append {
            document: document.to_owned(),
            generation,
            updates: updates.to_vec(),
            activity,
            done,
        })
        .map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

/// The committer: runs until every sender is gone. `commits` counts the transactions made.
pub async fn run<DB: Database>(
    pool: Pool<DB>,
    mut queue: mpsc::UnboundedReceiver<Append>,
    commits: Arc<AtomicU64>,
    write: WriteGroup<DB>,
) {
    let mut connection: Option<PoolConnection<DB>> = None;
    let mut group: Vec<Append> = Vec::new();
    let mut carried: Option<Append> = None;
    let limits = batch::Limits {
        items: MAX_APPENDS_PER_COMMIT,
        bytes: MAX_BYTES_PER_COMMIT,
    };
    while batch::next(&mut queue, &mut carried, &mut group, limits, |append| {
        append.updates.iter().map(Vec::len).sum()
    })
    .await
    {
        let outcome = match connection.as_mut() {
            Some(connection) => write(connection, &group).await,
            None => match pool.acquire().await {
                Ok(acquired) => write(connection.insert(acquired), &group).await,
                Err(error) => Err(error),
            },
        };
        match outcome {
            Ok(superseded) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (index, append) in group.drain(..).enumerate() {
                    let answer = if superseded.contains(&index) {
                        Err(StoreError::Superseded {
                            document: append.document,
                            generation: append.generation,
                        })
                    } else {
                        Ok(())
                    };
                    let _ = append.done.send(answer);
                }
            }
            Err(error) => {
                // A connection that failed is not trusted again; the writers retry.
                connection = None;
                let message = error.to_string();
                let mut first = Some(error);
                for append in group.drain(..) {
                    let source = first
                        .take()
                        .unwrap_or_else(|| sqlx::Error::Protocol(message.clone()));
                    let _ = append.done.send(Err(StoreError::Append {
                        document: append.document,
                        source,
                    }));
                }
            }
        }
    }
}

/// The documents of a group, each once, in name order (the order locks are taken in).
pub fn names(group: &[Append]) -> Vec<&str> {
    let mut names: Vec<&str> = group.iter().map(|a| a.document.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The appends of `group` still in their document's generation (`generations`, as read in the
/// group's transaction; a document without a row is in generation 0), as `(document, update)`
/// rows in order, and the indices of the others (superseded).
pub fn rows<'g>(
    group: &'g [Append],
    generations: &HashMap<String, u64>,
) -> (Vec<(&'g str, &'g [u8])>, Vec<usize>) {
    let current = |append: &Append| {
        generations
            .get(append.document.as_str())
            .copied()
            .unwrap_or(0)
            == append.generation
    };
    let superseded = group
        .iter()
        .enumerate()
        .filter(|(_, append)| !current(append))
        .map(|(index, _)| index)
        .collect();
    let rows = group
        .iter()
        .filter(|append| current(append))
        .flat_map(|append| {
            append
                .updates
                .iter()
                .map(|update| (append.document.as_str(), update.as_slice()))
        })
        .collect();
    (rows, superseded)
}
