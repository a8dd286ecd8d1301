//! The embedded default: a SQLite file in the data directory, created on first start.
//!
//! WAL journal with `synchronous = FULL`: an append that returned is on disk, so a client's
//! acknowledged edit survives `kill -9` and power loss alike.
//!
//! Appends of every document go through one committer task that owns one connection: it
//! takes every append waiting when it is free and writes them in one transaction, so a tick
//! with pending updates in many documents costs one commit (one WAL fsync), not one per
//! document. Each append returns only after the commit that holds it. The committer checks each
//! append's generation inside its write transaction: an append of a deleted generation is
//! answered [`StoreError::Superseded`] and writes nothing.
//!
//! Compaction never holds the write lock while it folds: it reads in a read transaction (WAL
//! readers do not block the writer), folds on a blocking thread, and then takes the write lock
//! only to delete the rows it folded and write the snapshot.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::{mpsc, oneshot};

use super::committer::{self, Append};
use super::{Activity, activity};
use super::{
    Deleted, DocumentInfo, DocumentStore, Listing, NewVersion, Result, StoreError, StoredDocument,
    VersionInfo, fold_rows_blocking, versions,
};

const BACKEND: &str = "sqlite";

/// Rows SQLite's worker thread may hand over before the reader takes them. sqlx's default (50)
/// makes the worker stop and wait every 50 rows of a load or a compaction's read: on a busy core
/// that is two thread switches per 50 rows, which cost more than reading the rows.
const ROW_BUFFER_SIZE: usize = 4096;
/// Most rows in one INSERT statement (two bound parameters each; SQLite allows 32 766).
const MAX_ROWS_PER_STATEMENT: usize = 4096;

pub struct SqliteStore {
    pool: SqlitePool,
    appends: mpsc::UnboundedSender<Append>,
    /// Transactions the committer has committed (each one WAL fsync).
    commits: Arc<AtomicU64>,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::DataDirectory {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                source,
            })?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .row_buffer_size(ROW_BUFFER_SIZE);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;
        let (appends, queue) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(committer::run(
            pool.clone(),
            queue,
            commits.clone(),
            write_group_boxed,
        ));
        Ok(Self {
            pool,
            appends,
            commits,
        })
    }
}

/// [`write_group`], as the committer takes it.
fn write_group_boxed<'c>(
    connection: &'c mut PoolConnection<Sqlite>,
    group: &'c [Append],
) -> BoxFuture<'c, std::result::Result<Vec<usize>, sqlx::Error>> {
    Box::pin(write_group(connection, group))
}

/// One transaction: every row of every append of the group whose generation is current, in
/// order. Returns the indices of the appends refused as superseded.
async fn write_group(
    connection: &mut PoolConnection<Sqlite>,
    group: &[Append],
) -> std::result::Result<Vec<usize>, sqlx::Error> {
    // IMMEDIATE: the generations read are still current when the rows are written.
    let mut txn = sqlx::Connection::begin_with(&mut **connection, "BEGIN IMMEDIATE").await?;
    let names = committer::names(group);
    let mut generations: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for chunk in names.chunks(MAX_ROWS_PER_STATEMENT) {
        let mut query =
            QueryBuilder::new("SELECT name, generation FROM document_generations WHERE name IN (");
        let mut separated = query.separated(", ");
        for name in chunk {
            separated.push_bind(*name);
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *txn).await? {
            let generation: i64 = row.get("generation");
            generations.insert(row.get("name"), generation.max(0) as u64);
        }
    }
    let (rows, superseded) = committer::rows(group, &generations);
    for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::new("INSERT INTO document_updates (name, content) ");
        query.push_values(chunk, |mut row, (document, update)| {
            row.push_bind(*document).push_bind(*update);
        });
        query.build().execute(&mut *txn).await?;
    }
    let current = group
        .iter()
        .enumerate()
        .filter(|(index, _)| !superseded.contains(index))
        .map(|(_, append)| append);
    for append in current {
        SqliteStore::record_rows(
            &mut txn,
            &append.document,
            append.generation,
            &append.activity,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(superseded)
}

super::sql::shared_queries!(SqliteStore, sqlx::Sqlite);

#[async_trait]
impl DocumentStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Every document's appends share these.
    fn commits(&self) -> Option<u64> {
        Some(self.commits.load(Ordering::Relaxed))
    }

    async fn load(&self, document: &str) -> Result<StoredDocument> {
        let load_error = |source| StoreError::Load {
            document: document.to_owned(),
            source,
        };
        let mut txn = self.pool.begin().await.map_err(load_error)?;
        let snapshot: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT content FROM documents WHERE name = ?")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(load_error)?;
        let log: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT content FROM document_updates WHERE name = ? ORDER BY id")
                .bind(document)
                .fetch_all(&mut *txn)
                .await
                .map_err(load_error)?;
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM document_generations WHERE name = ?")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(load_error)?;
        txn.commit().await.map_err(load_error)?;
        Ok(StoredDocument {
            snapshot,
            log,
            generation: generation.unwrap_or(0).max(0) as u64,
        })
    }

    async fn append(&self, document: &str, generation: u64, updates: &[Vec<u8>]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        committer::append(&self.appends, document, generation, updates, Vec::new()).await
    }

    async fn compact(&self, document: &str) -> Result<()> {
        let compact_error = |source| StoreError::Compact {
            document: document.to_owned(),
            source,
        };
        // Read: one read transaction (a WAL snapshot; appends go on meanwhile).
        let mut txn = self.pool.begin().await.map_err(compact_error)?;
        let snapshot: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT content FROM documents WHERE name = ?")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(compact_error)?;
        let rows =
            sqlx::query("SELECT id, content FROM document_updates WHERE name = ? ORDER BY id")
                .bind(document)
                .fetch_all(&mut *txn)
                .await
                .map_err(compact_error)?;
        txn.commit().await.map_err(compact_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, Vec<u8>)> = rows
            .iter()
            .map(|row| (row.get("id"), row.get("content")))
            .collect();
        // Fold: on a blocking thread, holding no lock. Quarantined rows stay in the log (kept
        // aside, retried at every load).
        let (merged, folded) = fold_rows_blocking(document, snapshot, rows).await?;
        if folded.is_empty() {
            return Ok(());
        }
        // Write: a short transaction that deletes exactly the rows folded. If one of them is
        // gone, a compaction or a deletion came first: its snapshot (or the deletion) stands.
        let mut txn = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(compact_error)?;
        let mut deleted = 0u64;
        for ids in folded.chunks(500) {
            let mut query = QueryBuilder::new("DELETE FROM document_updates WHERE id IN (");
            let mut separated = query.separated(", ");
            for id in ids {
                separated.push_bind(*id);
            }
            query.push(")");
            deleted += query
                .build()
                .execute(&mut *txn)
                .await
                .map_err(compact_error)?
                .rows_affected();
        }
        if deleted != folded.len() as u64 {
            txn.rollback().await.map_err(compact_error)?;
            tracing::debug!(
                document,
                "another compaction or a deletion came first; skipped"
            );
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO documents (name, content, updated_at) \
             VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
             ON CONFLICT (name) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        )
        .bind(document)
        .bind(&merged)
        .execute(&mut *txn)
        .await
        .map_err(compact_error)?;
        txn.commit().await.map_err(compact_error)?;
        Ok(())
    }

    async fn list(&self, listing: &Listing) -> Result<Vec<DocumentInfo>> {
        // Names compared as bytes (SQLite's default BINARY collation), like Rust's `str` order.
        let rows = sqlx::query(
            "SELECT name, MAX(updated_at) AS updated_at, SUM(bytes) AS bytes FROM ( \
               SELECT name, updated_at, length(content) AS bytes FROM documents \
               UNION ALL \
               SELECT name, created_at, length(content) FROM document_updates \
             ) WHERE substr(name, 1, length(?1)) = ?1 AND (?2 IS NULL OR name > ?2) \
             GROUP BY name ORDER BY name LIMIT ?3",
        )
        .bind(&listing.prefix)
        .bind(listing.after.as_deref())
        .bind(i64::from(listing.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::List)?;
        Ok(rows
            .iter()
            .map(|row| DocumentInfo {
                name: row.get("name"),
                updated_at: row.get("updated_at"),
                stored_bytes: row.get::<Option<i64>, _>("bytes").unwrap_or(0).max(0) as u64,
            })
            .collect())
    }

    async fn delete(&self, document: &str) -> Result<Deleted> {
        let delete_error = |source| StoreError::Delete {
            document: document.to_owned(),
            source,
        };
        let mut txn = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(delete_error)?;
        let mut deleted = 0;
        for statement in [
            "DELETE FROM document_updates WHERE name = ?",
            "DELETE FROM documents WHERE name = ?",
        ] {
            deleted += sqlx::query(statement)
                .bind(document)
                .execute(&mut *txn)
                .await
                .map_err(delete_error)?
                .rows_affected();
        }
        sqlx::query(versions::DELETE_ALL)
            .bind(document)
            .execute(&mut *txn)
            .await
            .map_err(delete_error)?;
        sqlx::query(activity::DELETE_ALL)
            .bind(document)
            .execute(&mut *txn)
            .await
            .map_err(delete_error)?;
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO document_generations (name, generation) VALUES (?, 1) \
             ON CONFLICT (name) DO UPDATE SET generation = generation + 1 RETURNING generation",
        )
        .bind(document)
        .fetch_one(&mut *txn)
        .await
        .map_err(delete_error)?;
        txn.commit().await.map_err(delete_error)?;
        Ok(Deleted {
            existed: deleted > 0,
            generation: generation.max(0) as u64,
        })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unreachable)?;
        Ok(())
    }

    async fn create_version(
        &self,
        document: &str,
        generation: u64,
        version: &NewVersion,
    ) -> Result<VersionInfo> {
        let error = |source| StoreError::Versions {
            document: document.to_owned(),
            source,
        };
        // IMMEDIATE: the generation read is still current when the row is written.
        let mut txn = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(error)?;
        let info = Self::insert_version(&mut txn, document, generation, version).await?;
        txn.commit().await.map_err(error)?;
        Ok(info)
    }

    async fn versions(
        &self,
        document: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>> {
        self.list_versions(document, before, limit).await
    }

    async fn version(&self, document: &str, id: i64) -> Result<Option<(VersionInfo, Vec<u8>)>> {
        self.read_version(document, id).await
    }

    /// Through the committer: the activity rows go into its next group transaction (no write
    /// transaction of their own to contend with the appends for SQLite's one writer).
    async fn record_activity(
        &self,
        document: &str,
        generation: u64,
        activity: &[Activity],
    ) -> Result<()> {
        let (done, answer) = oneshot::channel();
        let append = Append {
            document: document.to_owned(),
            generation,
            updates: Vec::new(),
            activity: activity.to_vec(),
            done,
        };
        let gone = || StoreError::Activity {
            document: document.to_owned(),
            source: sqlx::Error::PoolClosed,
        };
        self.appends.send(append).map_err(|_| gone())?;
        match answer.await.map_err(|_| gone())? {
            // The document was deleted: its activity goes with it.
            Err(StoreError::Superseded { .. }) => Ok(()),
            other => other,
        }
    }

    async fn activity(
        &self,
        document: &str,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<Activity>> {
        self.read_activity(document, from, to, limit).await
    }

    async fn delete_version(&self, document: &str, id: i64) -> Result<bool> {
        self.remove_version(document, id).await
    }

    async fn revoke(&self, revocation: &crate::revocation::Revocation) -> Result<()> {
        let mut txn = self.pool.begin().await.map_err(StoreError::Revocations)?;
        sqlx::query("DELETE FROM revocations WHERE expires_at <= ?")
            .bind(crate::revocation::now_secs() as i64)
            .execute(&mut *txn)
            .await
            .map_err(StoreError::Revocations)?;
        sqlx::query(
            "INSERT INTO revocations (subject, documents, mode, issued_before, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&revocation.subject)
        .bind(revocation.documents.as_deref())
        .bind(revocation.mode.as_str())
        .bind(revocation.issued_before as i64)
        .bind(revocation.expires_at as i64)
        .execute(&mut *txn)
        .await
        .map_err(StoreError::Revocations)?;
        txn.commit().await.map_err(StoreError::Revocations)
    }

    async fn revocations(&self) -> Result<Vec<crate::revocation::Revocation>> {
        let rows = sqlx::query(
            "SELECT subject, documents, mode, issued_before, expires_at FROM revocations \
             WHERE expires_at > ?",
        )
        .bind(crate::revocation::now_secs() as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::Revocations)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                super::revocation_of_row(
                    row.get("subject"),
                    row.get("documents"),
                    row.get::<String, _>("mode").as_str(),
                    row.get("issued_before"),
                    row.get("expires_at"),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    #[tokio::test]
    async fn sqlite_store_keeps_the_contract() {
        let dir = std::env::temp_dir().join(format!("collab-sqlite-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested").join("collab.db");
        let store = SqliteStore::open(&path).await.expect("open");
        contract::appended_updates_survive_compaction(&store).await;
        contract::corrupt_rows_are_quarantined_not_dropped(&store).await;
        contract::lists_and_deletes(&store, "contract-list/").await;
        contract::deletions_start_a_new_generation(&store).await;
        contract::revocations_are_kept_until_they_expire(&store).await;
        contract::versions_belong_to_their_generation(&store).await;
        contract::activity_adds_up_and_goes_with_the_document(&store).await;
        drop(store);
        // Reopening runs the migrations again without harm and finds the data.
        let reopened = SqliteStore::open(&path).await.expect("reopen");
        let stored = reopened.load("contract/doc").await.expect("load");
        assert_eq!(contract::text_of(&stored), "hello brave world!");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_of_many_documents_share_a_commit() {
        let dir = std::env::temp_dir().join(format!("collab-sqlite-group-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("collab.db");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = crate::storage::Instrumented::wrap(
            Arc::new(SqliteStore::open(&path).await.expect("open")),
            metrics.clone(),
        );
        // Another connection holds the write lock, so the first commit waits; every append
        // sent meanwhile joins the next one.
        let blocker = SqliteStore::open(&path).await.expect("second handle");
        let mut lock = blocker
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .expect("lock");
        let update = contract::text_update(&yrs::Doc::new(), "x");
        let names: Vec<String> = (0..50).map(|i| format!("group/{i}")).collect();
        let all = futures_util::future::join_all(
            names
                .iter()
                .map(|name| store.append(name, 0, std::slice::from_ref(&update))),
        );
        let mut all = std::pin::pin!(all);
        // One poll of the join sends every append to the committer (each `append` sends before
        // it first waits); none can be written while the lock is held.
        assert!(futures_util::poll!(all.as_mut()).is_pending());
        sqlx::query("SELECT 1")
            .execute(&mut *lock)
            .await
            .expect("still locked");
        lock.commit().await.expect("release");
        for result in all.await {
            result.expect("append");
        }
        // What /metrics reports: rows per commit is log_rows_appended_total / store_commits_total.
        let commits = metrics.store_commits.get();
        assert!(
            (1..=2).contains(&commits),
            "50 appends took {commits} commits"
        );
        assert_eq!(metrics.log_rows_appended.get(), 50);
        for i in 0..50 {
            let stored = store.load(&format!("group/{i}")).await.expect("load");
            assert_eq!(stored.log.len(), 1, "group/{i}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 20, scenario 4: a large document's compaction does not hold the database-wide write
    /// lock while it folds, so another document's appends are stored meanwhile. (Counted, not
    /// timed: while the old compaction held the lock, at most the append that got in before it
    /// completed before the compaction did.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_documents_are_stored_while_a_large_document_compacts() {
        let dir = std::env::temp_dir().join(format!("collab-sqlite-stall-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(
            SqliteStore::open(&dir.join("collab.db"))
                .await
                .expect("open"),
        );
        // 20,000 one-character edits: a fold of seconds in a debug build.
        let typist = yrs::Doc::new();
        let log: Vec<Vec<u8>> = (0..20_000)
            .map(|_| contract::text_update(&typist, "a"))
            .collect();
        store.append("large", 0, &log).await.expect("seed");
        let compaction = {
            let store = store.clone();
            tokio::spawn(async move { store.compact("large").await })
        };
        let other = yrs::Doc::new();
        let mut stored_meanwhile = 0;
        while !compaction.is_finished() {
            store
                .append("other", 0, &[contract::text_update(&other, "b")])
                .await
                .expect("append");
            if !compaction.is_finished() {
                stored_meanwhile += 1;
            }
        }
        compaction.await.expect("task").expect("compaction");
        assert!(
            stored_meanwhile >= 3,
            "only {stored_meanwhile} appends of another document were stored while the compaction ran"
        );
        let folded = store.load("large").await.expect("load");
        assert!(folded.log.is_empty(), "the compaction folded the log");
        assert_eq!(contract::text_of(&folded), "a".repeat(20_000));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_compactions_are_atomic_and_exclusive() {
        let dir = std::env::temp_dir().join(format!("collab-sqlite-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir.join("collab.db"))
            .await
            .expect("open");
        contract::concurrent_compactions_lose_nothing(std::sync::Arc::new(store)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
