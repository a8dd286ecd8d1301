//! Persistence: one [`DocumentStore`] trait, three implementations.
//!
//! Every store keeps the same two-part model:
//!
//! * a **snapshot** per document (`documents.content`: the full Yjs state as one v1 update, the
//!   format the Node Hocuspocus database extension writes), and
//! * an append-only **log** of updates written since (`document_updates`).
//!
//! A room appends each acknowledged update to the log (a small group commit) and only then tells
//! the client it is saved; [`DocumentStore::compact`] folds the log into the snapshot in the
//! background. Loading = snapshot + log, so nothing appended is ever lost by a compaction.
//!
//! Each document also has a **generation** (`document_generations`; 0 for a document never
//! deleted). [`DocumentStore::delete`] removes the snapshot and log and starts the next
//! generation in one transaction; an append names the generation its updates belong to and is
//! refused ([`StoreError::Superseded`]) once that generation is over, so nothing written for a
//! deleted document ever reaches the new one, whichever replica wrote it.

pub mod activity;
mod batch;
mod committer;
mod memory;
mod postgres;
mod sql;
mod sqlite;
pub mod versions;
pub mod writer;

use std::sync::Arc;
use std::time::Instant;

pub use activity::Activity;
use async_trait::async_trait;
pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub use versions::{NewVersion, VersionInfo};
use yrs::{Doc, ReadTxn, StateVector, Transact};

use crate::config::StorageConfig;
use crate::metrics::Metrics;
use crate::protocol::admission::{Admission, Extent, Offence};
use crate::revocation::{Mode, Revocation};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to connect to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to run {backend} migrations: {source}")]
    Migrate {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("failed to load document {document}: {source}")]
    Load {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to append to document {document}: {source}")]
    Append {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to compact document {document}: {source}")]
    Compact {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored state of document {document} is not a valid Yjs update: {reason}")]
    Corrupt { document: String, reason: String },
    #[error("failed to list documents: {0}")]
    List(#[source] sqlx::Error),
    #[error(
        "document {document} was deleted (generation {generation} is over): the updates are not stored"
    )]
    Superseded { document: String, generation: u64 },
    #[error("failed to delete document {document}: {source}")]
    Delete {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to read or write versions of document {document}: {source}")]
    Versions {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to read or record the activity of document {document}: {source}")]
    Activity {
        document: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to read or store revocations: {0}")]
    Revocations(#[source] sqlx::Error),
    #[error("database is not reachable: {0}")]
    Unreachable(#[source] sqlx::Error),
    #[error("failed to create data directory {path}: {source}")]
    DataDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// A bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Connect { .. } => "connect",
            StoreError::Migrate { .. } => "migrate",
            StoreError::Load { .. } => "load",
            StoreError::Append { .. } => "append",
            StoreError::Compact { .. } => "compact",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::List(_) => "list",
            StoreError::Superseded { .. } => "superseded",
            StoreError::Delete { .. } => "delete",
            StoreError::Versions { .. } => "versions",
            StoreError::Activity { .. } => "activity",
            StoreError::Revocations(_) => "revocations",
            StoreError::Unreachable(_) => "unreachable",
            StoreError::DataDirectory { .. } => "data_directory",
        }
    }
}

/// What a store holds for one document: the snapshot (if any) and the log rows after it, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub snapshot: Option<Vec<u8>>,
    pub log: Vec<Vec<u8>>,
    /// The document's generation: what its appends must name.
    pub generation: u64,
}

impl StoredDocument {
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.log.is_empty()
    }

    /// All stored updates, snapshot first.
    pub fn updates(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshot
            .iter()
            .map(Vec::as_slice)
            .chain(self.log.iter().map(Vec::as_slice))
    }
}

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Whether anything was stored.
    pub existed: bool,
    /// The generation that starts now (empty).
    pub generation: u64,
}

/// One stored document, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    pub name: String,
    /// When it was last written (RFC 3339, UTC), if the store knows.
    pub updated_at: Option<String>,
    /// Bytes stored: snapshot plus log.
    pub stored_bytes: u64,
}

/// Which documents to list: names starting with `prefix`, after `after`, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub prefix: String,
    pub after: Option<String>,
    pub limit: u32,
}

impl Listing {
    /// Whether `name` is listed (ignoring the limit).
    pub fn admits(&self, name: &str) -> bool {
        name.starts_with(&self.prefix) && self.after.as_deref().is_none_or(|after| name > after)
    }
}

#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// `"sqlite"`, `"postgres"` or `"memory"`.
    fn backend(&self) -> &'static str;

    /// The snapshot, log and generation of a document, read together; empty (generation 0) for
    /// a document never written.
    async fn load(&self, document: &str) -> Result<StoredDocument>;

    /// Appends updates of the document's `generation` to the log in one transaction. Returns
    /// only once they are durable; [`StoreError::Superseded`] (nothing written) if the document
    /// was deleted since that generation began.
    async fn append(&self, document: &str, generation: u64, updates: &[Vec<u8>]) -> Result<()>;

    /// Folds the log into the snapshot without holding up appends: reads the snapshot and log,
    /// merges them off the async workers, then in one short transaction deletes exactly the rows
    /// folded and writes the snapshot, or gives up if any of those rows is gone (another
    /// compaction or a deletion came first). Safe to run while appends continue.
    async fn compact(&self, document: &str) -> Result<()>;

    /// Documents with a snapshot or log rows, in name order.
    async fn list(&self, listing: &Listing) -> Result<Vec<DocumentInfo>>;

    /// Deletes a document's snapshot and log and starts its next generation, in one
    /// transaction (also for a document with nothing stored: a peer may be about to append).
    async fn delete(&self, document: &str) -> Result<Deleted>;

    /// Whether the database answers (for `/ready`).
    async fn ping(&self) -> Result<()>;

    /// Stores a version made in the document's `generation`; [`StoreError::Superseded`]
    /// (nothing stored) once a deletion ended that generation. Deleting the document deletes
    /// its versions.
    async fn create_version(
        &self,
        document: &str,
        generation: u64,
        version: &NewVersion,
    ) -> Result<VersionInfo>;

    /// A page of the document's versions, newest first: ids below `before`, at most `limit`.
    async fn versions(
        &self,
        document: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>>;

    /// One version and its content (one v1 update of the whole document).
    async fn version(&self, document: &str, id: i64) -> Result<Option<(VersionInfo, Vec<u8>)>>;

    /// Whether there was such a version.
    async fn delete_version(&self, document: &str, id: i64) -> Result<bool>;

    /// Adds to the document's activity (per author per minute), unless a deletion ended
    /// `generation`. Deleting the document deletes its activity.
    async fn record_activity(
        &self,
        document: &str,
        generation: u64,
        activity: &[Activity],
    ) -> Result<()>;

    /// The document's activity in minutes `from..to` (milliseconds), newest first.
    async fn activity(
        &self,
        document: &str,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<Activity>>;

    /// Stores a revocation (kept until it expires; expired ones are removed meanwhile).
    async fn revoke(&self, revocation: &Revocation) -> Result<()>;

    /// The revocations not yet expired.
    async fn revocations(&self) -> Result<Vec<Revocation>>;

    /// The most characters a document name may have in this store: an adopted `documents`
    /// table's `name varchar(n)` (the seed's is `varchar(255)`). `None`: no limit of the store's
    /// own (names are still at most 1,024 bytes). Names that do not fit are refused before
    /// anything is acknowledged, since their edits could never be folded into the table.
    fn max_name_chars(&self) -> Option<usize> {
        None
    }

    /// Transactions committed for appends so far, for a store that writes several appends in
    /// one (SQLite: each is one WAL fsync). `None`: every append is its own transaction.
    fn commits(&self) -> Option<u64> {
        None
    }
}

/// Updates set aside by one fold before the document is refused as corrupt.
pub const MAX_QUARANTINED: usize = 16;

/// A document folded from storage, and the log updates that could not be integrated.
pub struct Folded {
    pub doc: Doc,
    /// What the document admits next (the clocks the fold handed to yrs).
    pub admission: crate::protocol::admission::Admission,
    /// Indices into the log given to [`integrate_all`] of the updates set aside: they are not
    /// in `doc`, stay in the store, and are logged (and counted by the caller).
    pub quarantined: Vec<usize>,
    /// Indices of the updates still held (they need ids the log has not brought): not in
    /// `doc` either, held by `admission`, and kept in the store by a compaction.
    pub held: Vec<usize>,
}

/// The one "snapshot + log" fold, used by loading, by reloading and by compaction.
///
/// A log update that cannot be decoded or integrated is quarantined, not fatal: a log where one
/// replica stored what another rejects must not make the document unloadable everywhere. yrs
/// may fail halfway into an update, so after such a failure the fold starts over without it
/// (the document never holds part of a quarantined update). A snapshot that does not load, or
/// more than [`MAX_QUARANTINED`] bad updates, make the document corrupt: serving it partly
/// empty would let a client overwrite real content.
pub fn integrate_all(document: &str, snapshot: Option<&[u8]>, log: &[&[u8]]) -> Result<Folded> {
    let corrupt = |reason: String| StoreError::Corrupt {
        document: document.to_owned(),
        reason,
    };
    if let Some(bytes) = snapshot {
        crate::protocol::bounded::check_update(bytes)
            .map_err(|e| corrupt(format!("snapshot: {e}")))?;
    }
    let mut quarantined: Vec<usize> = Vec::new();
    'fold: loop {
        let doc = Doc::new();
        let mut admission = Admission::default();
        if let Some(bytes) = snapshot {
            // Checked above; yrs consumes an Update, so each attempt decodes it again.
            let (update, spans) = crate::protocol::bounded::update_with_spans(bytes)
                .map_err(|e| corrupt(format!("snapshot: {e}")))?;
            crate::protocol::bounded::apply(&mut doc.transact_mut(), update)
                .map_err(|e| corrupt(format!("snapshot: {e}")))?;
            admission.admitted(&spans);
        }
        for (index, bytes) in log.iter().enumerate() {
            if quarantined.contains(&index) {
                continue;
            }
            // One transaction per update, as a room applies them: yrs squashes the blocks a
            // transaction touched when it commits, and one transaction over a long log of
            // small edits made that squash quadratic (120,000 one-character edits took
            // minutes and gigabytes to fold).
            // Through the admission rules, as a room applies them (`protocol::admission`):
            // a row that gives ids other content is quarantined, never handed to yrs; one that
            // needs ids the log has not brought yet is held until it has (and stays in the log
            // if it never does).
            let (reason, restart, index) = match crate::protocol::bounded::spans(bytes) {
                Ok(spans) => {
                    let mut txn = doc.transact_mut();
                    match admission.offer(
                        &mut txn,
                        &spans,
                        bytes,
                        Extent::AboveStateVector,
                        index as u64,
                    ) {
                        Ok(_) => continue,
                        Err(Offence::Refused(refusal)) => (refusal.to_string(), false, index),
                        Err(Offence::Failed { tag, error }) => (error, true, tag as usize),
                    }
                }
                Err(error) => (error.to_string(), false, index),
            };
            tracing::error!(
                document,
                index,
                %reason,
                "a stored update cannot be integrated; quarantined (kept in the log, not served)"
            );
            quarantined.push(index);
            if quarantined.len() > MAX_QUARANTINED {
                return Err(corrupt(format!(
                    "more than {MAX_QUARANTINED} stored updates cannot be integrated; last: {reason}"
                )));
            }
            if restart {
                continue 'fold;
            }
        }
        let held = admission
            .held_tags()
            .into_iter()
            .map(|tag| tag as usize)
            .collect();
        return Ok(Folded {
            doc,
            admission,
            quarantined,
            held,
        });
    }
}

/// Merges a snapshot and log rows into one v1 update of the whole state (garbage collected),
/// with the indices of the log rows it does not hold (quarantined or held: to keep, not
/// delete).
pub fn fold(
    document: &str,
    snapshot: Option<&[u8]>,
    log: &[&[u8]],
) -> Result<(Vec<u8>, Vec<usize>)> {
    let Folded {
        doc,
        mut quarantined,
        held,
        ..
    } = integrate_all(document, snapshot, log)?;
    quarantined.extend(held);
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    Ok((state, quarantined))
}

/// Compaction's fold of stored rows `(id, content)` after `snapshot`: the merged state, and
/// the ids to delete (every row folded; quarantined rows stay in the log).
pub fn fold_rows(
    document: &str,
    snapshot: Option<&[u8]>,
    rows: &[(i64, Vec<u8>)],
) -> Result<(Vec<u8>, Vec<i64>)> {
    let log: Vec<&[u8]> = rows.iter().map(|(_, content)| content.as_slice()).collect();
    let (merged, quarantined) = fold(document, snapshot, &log)?;
    let folded = rows
        .iter()
        .enumerate()
        .filter(|(index, _)| !quarantined.contains(index))
        .map(|(_, (id, _))| *id)
        .collect();
    Ok((merged, folded))
}

/// [`fold_rows`] on a blocking thread: folding a large document takes seconds of CPU, which
/// must not hold an async worker (or, on SQLite, the write lock).
pub async fn fold_rows_blocking(
    document: &str,
    snapshot: Option<Vec<u8>>,
    rows: Vec<(i64, Vec<u8>)>,
) -> Result<(Vec<u8>, Vec<i64>)> {
    let name = document.to_owned();
    tokio::task::spawn_blocking(move || fold_rows(&name, snapshot.as_deref(), &rows))
        .await
        .map_err(|error| StoreError::Corrupt {
            document: document.to_owned(),
            reason: format!("the fold failed: {error}"),
        })?
}

/// Opens the store the configuration selects, running migrations.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn DocumentStore>> {
    let started = Instant::now();
    let store: Arc<dyn DocumentStore> = match config {
        StorageConfig::Memory => Arc::new(MemoryStore::default()),
        StorageConfig::Sqlite { path } => Arc::new(SqliteStore::open(path).await?),
        StorageConfig::Postgres { url } => Arc::new(PostgresStore::open(url).await?),
    };
    tracing::info!(
        backend = store.backend(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "storage ready"
    );
    Ok(store)
}

/// Wraps a store with metrics.
pub struct Instrumented {
    inner: Arc<dyn DocumentStore>,
    metrics: Arc<Metrics>,
    /// The inner store's commit count last added to the metric.
    commits_counted: std::sync::atomic::AtomicU64,
}

impl Instrumented {
    pub fn wrap(inner: Arc<dyn DocumentStore>, metrics: Arc<Metrics>) -> Arc<dyn DocumentStore> {
        Arc::new(Self {
            inner,
            metrics,
            commits_counted: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Counts the commits an append waited for: its own, or what a grouping store committed
    /// since the last count (whichever append sees a new total adds exactly the difference).
    fn count_commits(&self) {
        let Some(total) = self.inner.commits() else {
            self.metrics.store_commits.inc();
            return;
        };
        let counted = self
            .commits_counted
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
        if total > counted {
            self.metrics.store_commits.inc_by(total - counted);
        }
    }

    fn observe<T>(&self, operation: &'static str, started: Instant, result: &Result<T>) {
        self.metrics
            .store_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = result {
            self.metrics
                .store_errors
                .with_label_values(&[error.kind()])
                .inc();
        }
    }
}

#[async_trait]
impl DocumentStore for Instrumented {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn max_name_chars(&self) -> Option<usize> {
        self.inner.max_name_chars()
    }

    async fn load(&self, document: &str) -> Result<StoredDocument> {
        let started = Instant::now();
        let result = self.inner.load(document).await;
        self.observe("load", started, &result);
        result
    }

    async fn append(&self, document: &str, generation: u64, updates: &[Vec<u8>]) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.append(document, generation, updates).await;
        self.observe("append", started, &result);
        if result.is_ok() {
            self.metrics.log_rows_appended.inc_by(updates.len() as u64);
            self.count_commits();
        }
        result
    }

    async fn compact(&self, document: &str) -> Result<()> {
        let started = Instant::now();
        let result = self.inner.compact(document).await;
        self.observe("compact", started, &result);
        if result.is_ok() {
            self.metrics.compactions.inc();
        }
        result
    }

    async fn list(&self, listing: &Listing) -> Result<Vec<DocumentInfo>> {
        let started = Instant::now();
        let result = self.inner.list(listing).await;
        self.observe("list", started, &result);
        result
    }

    async fn delete(&self, document: &str) -> Result<Deleted> {
        let started = Instant::now();
        let result = self.inner.delete(document).await;
        self.observe("delete", started, &result);
        result
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn create_version(
        &self,
        document: &str,
        generation: u64,
        version: &NewVersion,
    ) -> Result<VersionInfo> {
        let started = Instant::now();
        let result = self
            .inner
            .create_version(document, generation, version)
            .await;
        self.observe("create_version", started, &result);
        result
    }

    async fn versions(
        &self,
        document: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>> {
        let started = Instant::now();
        let result = self.inner.versions(document, before, limit).await;
        self.observe("versions", started, &result);
        result
    }

    async fn version(&self, document: &str, id: i64) -> Result<Option<(VersionInfo, Vec<u8>)>> {
        let started = Instant::now();
        let result = self.inner.version(document, id).await;
        self.observe("version", started, &result);
        result
    }

    async fn delete_version(&self, document: &str, id: i64) -> Result<bool> {
        let started = Instant::now();
        let result = self.inner.delete_version(document, id).await;
        self.observe("delete_version", started, &result);
        result
    }

    async fn record_activity(
        &self,
        document: &str,
        generation: u64,
        activity: &[Activity],
    ) -> Result<()> {
        let started = Instant::now();
        let result = self
            .inner
            .record_activity(document, generation, activity)
            .await;
        self.observe("record_activity", started, &result);
        result
    }

    async fn activity(
        &self,
        document: &str,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<Activity>> {
        let started = Instant::now();
        let result = self.inner.activity(document, from, to, limit).await;
        self.observe("activity", started, &result);
        result
    }

    async fn revoke(&self, revocation: &Revocation) -> Result<()> {
        self.inner.revoke(revocation).await
    }

    async fn revocations(&self) -> Result<Vec<Revocation>> {
        self.inner.revocations().await
    }
}

/// A revocation read back from a row: `None` for a mode this version does not know.
fn revocation_of_row(
    subject: String,
    documents: Option<String>,
    mode: &str,
    issued_before: i64,
    expires_at: i64,
) -> Option<Revocation> {
    Some(Revocation {
        subject,
        documents,
        mode: Mode::parse(mode)?,
        issued_before: issued_before.max(0) as u64,
        expires_at: expires_at.max(0) as u64,
    })
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every store must have; each implementation's tests call these.
    use yrs::{GetString, Text, Transact};

    use super::*;

    /// Listing pages through names in byte order by prefix; delete removes snapshot and log.
    pub async fn lists_and_deletes(store: &dyn DocumentStore, prefix: &str) {
        let everything = Listing {
            prefix: prefix.to_owned(),
            after: None,
            limit: 1000,
        };
        for leftover in store.list(&everything).await.expect("list") {
            store.delete(&leftover.name).await.expect("clean");
        }
        let ydoc = Doc::new();
        for name in ["b", "a", "a/2", "a/1", "c"] {
            let name = format!("{prefix}{name}");
            let generation = store.load(&name).await.expect("load").generation;
            store
                .append(&name, generation, &[text_update(&ydoc, "x")])
                .await
                .expect("append");
        }
        store
            .compact(&format!("{prefix}a/1"))
            .await
            .expect("compact");
        let page = |after: Option<&str>, sub: &str, limit| Listing {
            prefix: format!("{prefix}{sub}"),
            after: after.map(|a| format!("{prefix}{a}")),
            limit,
        };
        let names = |listed: Vec<DocumentInfo>| -> Vec<String> {
            listed
                .into_iter()
                .map(|d| {
                    assert!(d.stored_bytes > 0, "{} has a size", d.name);
                    d.name[prefix.len()..].to_owned()
                })
                .collect()
        };
        let first = store.list(&page(None, "", 2)).await.expect("list");
        assert_eq!(names(first), ["a", "a/1"]);
        let second = store.list(&page(Some("a/1"), "", 10)).await.expect("list");
        assert_eq!(names(second), ["a/2", "b", "c"]);
        let under_a = store.list(&page(None, "a/", 10)).await.expect("list");
        assert_eq!(names(under_a), ["a/1", "a/2"]);

        assert!(
            store
                .delete(&format!("{prefix}a/1"))
                .await
                .expect("delete")
                .existed
        );
        assert!(
            store
                .load(&format!("{prefix}a/1"))
                .await
                .expect("load")
                .is_empty()
        );
        assert!(
            !store
                .delete(&format!("{prefix}a/1"))
                .await
                .expect("delete again")
                .existed
        );
        let under_a = store.list(&page(None, "a/", 10)).await.expect("list");
        assert_eq!(names(under_a), ["a/2"]);
        for name in ["b", "a", "a/2", "c"] {
            store
                .delete(&format!("{prefix}{name}"))
                .await
                .expect("cleanup");
        }
    }

    /// A deletion ends a generation: appends of the old one are refused and store nothing,
    /// the next one starts empty, and a document never written gets a new generation too.
    pub async fn deletions_start_a_new_generation(store: &dyn DocumentStore) {
        let name = "contract/generations";
        let stale = store.delete(name).await.expect("clean").generation;
        let ydoc = Doc::new();
        store
            .append(name, stale, &[text_update(&ydoc, "before ")])
            .await
            .expect("append");
        assert_eq!(store.load(name).await.expect("load").generation, stale);
        store.compact(name).await.expect("compact");
        let deleted = store.delete(name).await.expect("delete");
        assert!(deleted.existed);
        assert_eq!(deleted.generation, stale + 1);
        let refused = store
            .append(name, stale, &[text_update(&ydoc, "late ")])
            .await;
        assert!(
            matches!(refused, Err(StoreError::Superseded { generation, .. }) if generation == stale),
            "{refused:?}"
        );
        let fresh = store.load(name).await.expect("load");
        assert!(fresh.is_empty(), "nothing of the old generation");
        assert_eq!(fresh.generation, deleted.generation);
        let next = Doc::new();
        store
            .append(name, deleted.generation, &[text_update(&next, "after")])
            .await
            .expect("append to the new generation");
        let stored = store.load(name).await.expect("load");
        assert_eq!(text_of(&stored), "after");
        // Never written: still a new generation (a peer may hold updates for the old one).
        let never = store
            .delete("contract/never-written")
            .await
            .expect("delete");
        assert!(!never.existed);
        let again = store
            .delete("contract/never-written")
            .await
            .expect("delete");
        assert_eq!(again.generation, never.generation + 1);
        store.delete(name).await.expect("cleanup");
    }

    /// Versions are stored per generation, listed newest first in pages, read back whole,
    /// deleted one by one and with their document; a version of an ended generation is refused.
    pub async fn versions_belong_to_their_generation(store: &dyn DocumentStore) {
        let name = "contract/versions";
        let generation = store.delete(name).await.expect("clean").generation;
        assert!(
            store
                .versions(name, None, 10)
                .await
                .expect("list")
                .is_empty()
        );
        let version = |label: &str, content: &[u8]| NewVersion {
            label: (!label.is_empty()).then(|| label.to_owned()),
            author: "alice".into(),
            created_at: 1_796_601_600_000,
            content: content.to_vec(),
        };
        let mut made = Vec::new();
        for (label, content) in [("one", &b"1"[..]), ("", b"22"), ("three", b"333")] {
            made.push(
                store
                    .create_version(name, generation, &version(label, content))
                    .await
                    .expect("create"),
            );
        }
        assert!(made[0].id < made[1].id && made[1].id < made[2].id);
        assert_eq!(made[1].label, None);
        assert_eq!(made[2].size, 3);
        let first_page = store.versions(name, None, 2).await.expect("list");
        assert_eq!(first_page, [made[2].clone(), made[1].clone()]);
        let second_page = store
            .versions(name, Some(made[1].id), 2)
            .await
            .expect("list");
        assert_eq!(second_page, [made[0].clone()]);
        let (info, content) = store
            .version(name, made[1].id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!((info, content), (made[1].clone(), b"22".to_vec()));
        assert!(
            store
                .version("contract/other", made[1].id)
                .await
                .expect("read")
                .is_none(),
            "a version belongs to its document"
        );
        assert!(
            store
                .delete_version(name, made[0].id)
                .await
                .expect("delete")
        );
        assert!(!store.delete_version(name, made[0].id).await.expect("again"));
        assert_eq!(store.versions(name, None, 10).await.expect("list").len(), 2);
        let deleted = store.delete(name).await.expect("delete the document");
        assert!(
            store
                .versions(name, None, 10)
                .await
                .expect("list")
                .is_empty()
        );
        let refused = store
            .create_version(name, generation, &version("late", b"4"))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Superseded { .. })),
            "{refused:?}"
        );
        store
            .create_version(name, deleted.generation, &version("new", b"5"))
            .await
            .expect("the new generation takes versions");
        store.delete(name).await.expect("clean");
    }

    /// Activity adds up per author per minute, is read newest first within a window, and goes
    /// with its document; a record for an ended generation is dropped.
    pub async fn activity_adds_up_and_goes_with_the_document(store: &dyn DocumentStore) {
        let name = "contract/activity";
        let generation = store.delete(name).await.expect("clean").generation;
        let minute = 1_796_601_600_000;
        let rows = |author: &str, at: u64, updates: u64| Activity {
            author: author.to_owned(),
            minute: at,
            updates,
            bytes: updates * 10,
        };
        store
            .record_activity(
                name,
                generation,
                &[rows("alice", minute, 2), rows("bob", minute, 1)],
            )
            .await
            .expect("record");
        store
            .record_activity(
                name,
                generation,
                &[rows("alice", minute, 3), rows("alice", minute + 60_000, 1)],
            )
            .await
            .expect("record more");
        let all = store
            .activity(name, 0, u64::MAX / 2, 10)
            .await
            .expect("read");
        assert_eq!(
            all,
            [
                rows("alice", minute + 60_000, 1),
                rows("alice", minute, 5),
                rows("bob", minute, 1)
            ]
        );
        let window = store
            .activity(name, minute, minute + 60_000, 10)
            .await
            .expect("read");
        assert_eq!(window.len(), 2, "{window:?}");
        assert_eq!(
            store
                .activity(name, 0, u64::MAX / 2, 1)
                .await
                .expect("read")
                .len(),
            1
        );
        let deleted = store.delete(name).await.expect("delete");
        assert!(
            store
                .activity(name, 0, u64::MAX / 2, 10)
                .await
                .expect("read")
                .is_empty()
        );
        store
            .record_activity(name, generation, &[rows("late", minute, 1)])
            .await
            .expect("a stale record is no error");
        assert!(
            store
                .activity(name, 0, u64::MAX / 2, 10)
                .await
                .expect("read")
                .is_empty(),
            "dropped: its generation is over"
        );
        store
            .record_activity(name, deleted.generation, &[rows("new", minute, 1)])
            .await
            .expect("record");
        assert_eq!(
            store
                .activity(name, 0, u64::MAX / 2, 10)
                .await
                .expect("read")
                .len(),
            1
        );
        store.delete(name).await.expect("clean");
    }

    /// Revocations are kept until they expire, and read back as stored.
    pub async fn revocations_are_kept_until_they_expire(store: &dyn DocumentStore) {
        let now = crate::revocation::now_secs();
        let kept = Revocation {
            subject: "contract-fired".into(),
            documents: Some("org-a/*".into()),
            mode: Mode::ReadOnly,
            issued_before: now,
            expires_at: now + 3600,
        };
        let expired = Revocation {
            subject: "contract-old".into(),
            documents: None,
            mode: Mode::End,
            issued_before: now - 7200,
            expires_at: now - 1,
        };
        store.revoke(&expired).await.expect("revoke");
        store.revoke(&kept).await.expect("revoke");
        let read = store.revocations().await.expect("read");
        assert!(read.contains(&kept), "{read:?}");
        assert!(
            !read.iter().any(|r| r.subject == "contract-old"),
            "{read:?}"
        );
    }

    pub fn text_update(ydoc: &Doc, insert: &str) -> Vec<u8> {
        let text = ydoc.get_or_insert_text("t");
        let before = ydoc.transact().state_vector();
        {
            let mut txn = ydoc.transact_mut();
            let len = text.len(&txn);
            text.insert(&mut txn, len, insert);
        }
        ydoc.transact().encode_state_as_update_v1(&before)
    }

    pub fn text_of(stored: &StoredDocument) -> String {
        let log: Vec<&[u8]> = stored.log.iter().map(Vec::as_slice).collect();
        let folded = integrate_all("contract", stored.snapshot.as_deref(), &log).expect("folds");
        assert!(folded.quarantined.is_empty(), "nothing quarantined");
        let text = folded.doc.get_or_insert_text("t");
        text.get_string(&folded.doc.transact())
    }

    pub async fn appended_updates_survive_compaction(store: &dyn DocumentStore) {
        let name = "contract/doc";
        let generation = store.load(name).await.expect("load").generation;
        assert!(store.load(name).await.expect("load").is_empty());
        let ydoc = Doc::new();
        store
            .append(name, generation, &[text_update(&ydoc, "hello ")])
            .await
            .expect("append");
        store
            .append(
                name,
                generation,
                &[text_update(&ydoc, "brave "), text_update(&ydoc, "world")],
            )
            .await
            .expect("append");
        let loaded = store.load(name).await.expect("load");
        assert_eq!(loaded.log.len(), 3);
        assert_eq!(text_of(&loaded), "hello brave world");

        store.compact(name).await.expect("compact");
        let compacted = store.load(name).await.expect("load");
        assert!(compacted.snapshot.is_some());
        assert!(compacted.log.is_empty(), "folded rows are deleted");
        assert_eq!(text_of(&compacted), "hello brave world");

        store
            .append(name, generation, &[text_update(&ydoc, "!")])
            .await
            .expect("append");
        store.compact(name).await.expect("compact");
        assert_eq!(
            text_of(&store.load(name).await.expect("load")),
            "hello brave world!"
        );
        assert!(store.load("contract/other").await.expect("load").is_empty());
        store.ping().await.expect("ping");
    }

    /// Compactions racing each other and appends on a large document: every appended update
    /// is still there afterwards, and the log ends folded.
    pub async fn concurrent_compactions_lose_nothing(store: Arc<dyn DocumentStore>) {
        let name = "contract/race";
        let generation = store.load(name).await.expect("load").generation;
        let ydoc = Doc::new();
        let mut expected = String::new();
        let mut big = Vec::new();
        for i in 0..200 {
            let piece = format!("{i:04}-{} ", "x".repeat(200));
            expected.push_str(&piece);
            big.push(text_update(&ydoc, &piece));
        }
        store.append(name, generation, &big).await.expect("seed");
        for round in 0..20 {
            let mut tasks = Vec::new();
            for _ in 0..3 {
                let store = store.clone();
                tasks.push(tokio::spawn(async move { store.compact(name).await }));
            }
            for i in 0..5 {
                let piece = format!("r{round}.{i} ");
                expected.push_str(&piece);
                store
                    .append(name, generation, &[text_update(&ydoc, &piece)])
                    .await
                    .expect("append");
            }
            for task in tasks {
                task.await.expect("task").expect("compact");
            }
        }
        store.compact(name).await.expect("final compaction");
        let stored = store.load(name).await.expect("load");
        assert!(stored.log.is_empty(), "{} rows left", stored.log.len());
        assert_eq!(text_of(&stored), expected);
    }

    /// A row that does not decode, and one that yrs rejects halfway (its second item's parent
    /// is its first, a string): both are kept in the log, the rest is folded.
    pub async fn corrupt_rows_are_quarantined_not_dropped(store: &dyn DocumentStore) {
        let name = "contract/corrupt";
        let generation = store.load(name).await.expect("load").generation;
        let ydoc = Doc::new();
        let half_applying = vec![1, 2, 99, 0, 4, 1, 1, b't', 1, b'x', 4, 0, 99, 0, 1, b'y', 0];
        store
            .append(
                name,
                generation,
                &[
                    text_update(&ydoc, "good "),
                    vec![0xff, 0xff, 0xff],
                    half_applying.clone(),
                    text_update(&ydoc, "rest"),
                ],
            )
            .await
            .expect("append");
        store
            .compact(name)
            .await
            .expect("compaction folds the rest");
        let stored = store.load(name).await.expect("load");
        assert_eq!(
            stored.log,
            vec![vec![0xff, 0xff, 0xff], half_applying],
            "kept aside"
        );
        let folded = integrate_all(
            name,
            stored.snapshot.as_deref(),
            &stored.log.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        )
        .expect("loads");
        assert_eq!(folded.quarantined, vec![0, 1]);
        let text = folded.doc.get_or_insert_text("t");
        assert_eq!(
            text.get_string(&folded.doc.transact()),
            "good rest",
            "no trace of \"x\""
        );
    }
}
