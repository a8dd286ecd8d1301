//! PostgreSQL: the production store, shared by every replica.
//!
//! `documents(name, content, updated_at)` is the Node server's table, adopted as is: its
//! `content` is the snapshot of record, so the Node server can read it back at any time after
//! a compaction. Appends go to `document_updates` (append-only; replicas never overwrite each
//! other). Generations: an append checks its document's generation under a shared
//! transaction-scoped advisory lock that a deletion takes exclusively, so no append of an old
//! generation commits after the deletion that ended it. One committer task writes the appends
//! of every document waiting, in one transaction (a group commit across documents, as the
//! SQLite store does): under load one WAL flush serves many documents. Compaction reads, folds on a blocking
//! thread with no transaction open, then deletes exactly the rows it folded and writes the
//! snapshot in one short transaction (given up if a row is gone: another compaction, on any
//! replica, or a deletion came first). Migrations run under sqlx's own advisory lock.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};
use tokio::sync::mpsc;

use super::committer::{self, Append};
use super::{Activity, activity};
use super::{
    Deleted, DocumentInfo, DocumentStore, Listing, NewVersion, Result, StoreError, StoredDocument,
    VersionInfo, fold_rows_blocking, versions,
};

const BACKEND: &str = "postgres";
/// The advisory lock key space of generations: appends hold it shared, deletions exclusively.
const GENERATION_LOCK: &str = "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 7044))";
const GENERATION_LOCK_EXCLUSIVE: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 7044))";

/// Rows per INSERT statement (two parameters each; PostgreSQL takes at most 65,535).
const MAX_ROWS_PER_STATEMENT: usize = 16_384;

pub struct PostgresStore {
    pool: PgPool,
    /// `documents.name`'s `character varying(n)` length, read at start.
    max_name_chars: Option<usize>,
    /// To the committer ([`committer::run`] with [`write_group`]).
    appends: mpsc::UnboundedSender<Append>,
    /// Transactions the committer made durable.
    commits: Arc<AtomicU64>,
}

impl PostgresStore {
    pub async fn open(url: &str) -> Result<Self> {
        let connect_error = |source| StoreError::Connect {
            backend: BACKEND,
            source,
        };
        let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
        // One direct attempt first: a pool that cannot connect only says "pool timed out"
        // after its acquire timeout, hiding why (refused, DNS, TLS, password).
        match tokio::time::timeout(
            Duration::from_secs(10),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options),
        )
        .await
        {
            Ok(Ok(connection)) => {
                let _ = sqlx::Connection::close(connection).await;
            }
            Ok(Err(source)) => return Err(connect_error(source)),
            Err(_) => {
                return Err(connect_error(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer from {}:{} within 10 s",
                        options.get_host(),
                        options.get_port()
                    ),
                ))));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;
        // An adopted table keeps its own column types (the seed's `name` is varchar(255)).
        let length: Option<i32> = sqlx::query_scalar(
            "SELECT character_maximum_length FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'documents' AND column_name = 'name'",
        )
        .fetch_optional(&pool)
        .await
        .map_err(connect_error)?
        .flatten();
        let max_name_chars = length.and_then(|length| usize::try_from(length).ok());
        if let Some(length) = max_name_chars {
            tracing::info!(
                max_name_chars = length,
                "documents.name holds at most {length} characters: longer document names are refused"
            );
        }
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
            max_name_chars,
            appends,
            commits,
        })
    }
}

super::sql::shared_queries!(PostgresStore, sqlx::Postgres);

#[async_trait]
impl DocumentStore for PostgresStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    /// Every document's appends share these.
    fn commits(&self) -> Option<u64> {
        Some(self.commits.load(Ordering::Relaxed))
    }

    fn max_name_chars(&self) -> Option<usize> {
        self.max_name_chars
    }

    async fn load(&self, document: &str) -> Result<StoredDocument> {
        let load_error = |source| StoreError::Load {
            document: document.to_owned(),
            source,
        };
        // One snapshot of the database: the log rows read belong to the snapshot read.
        let mut txn = self.pool.begin().await.map_err(load_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *txn)
            .await
            .map_err(load_error)?;
        let snapshot: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT content FROM documents WHERE name = $1")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(load_error)?;
        let log: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT content FROM document_updates WHERE name = $1 ORDER BY id")
                .bind(document)
                .fetch_all(&mut *txn)
                .await
                .map_err(load_error)?;
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM document_generations WHERE name = $1")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(load_error)?;
        txn.commit().await.map_err(load_error)?;
        Ok(StoredDocument {
            snapshot: snapshot.flatten().filter(|s| !s.is_empty()),
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
        // Read: one snapshot of the database.
        let mut txn = self.pool.begin().await.map_err(compact_error)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *txn)
            .await
            .map_err(compact_error)?;
        let snapshot: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT content FROM documents WHERE name = $1")
                .bind(document)
                .fetch_optional(&mut *txn)
                .await
                .map_err(compact_error)?;
        let rows =
            sqlx::query("SELECT id, content FROM document_updates WHERE name = $1 ORDER BY id")
                .bind(document)
                .fetch_all(&mut *txn)
                .await
                .map_err(compact_error)?;
        txn.commit().await.map_err(compact_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        let snapshot = snapshot.flatten().filter(|s| !s.is_empty());
        let rows: Vec<(i64, Vec<u8>)> = rows
            .iter()
            .map(|row| (row.get("id"), row.get("content")))
            .collect();
        // Fold: on a blocking thread, no transaction open. Quarantined rows stay in the log.
        let (merged, folded) = fold_rows_blocking(document, snapshot, rows).await?;
        if folded.is_empty() {
            return Ok(());
        }
        // Write: delete exactly the rows folded (never `id <= last`: ids come from a sequence,
        // so another replica's append that took a smaller id may commit after the read). A row
        // already gone means another compaction or a deletion came first: give up. Concurrent
        // deletions of the same rows wait for each other, so exactly one of two compactions
        // that read the same rows writes its snapshot.
        let mut txn = self.pool.begin().await.map_err(compact_error)?;
        let deleted = sqlx::query("DELETE FROM document_updates WHERE id = ANY($1)")
            .bind(&folded)
            .execute(&mut *txn)
            .await
            .map_err(compact_error)?
            .rows_affected();
        if deleted != folded.len() as u64 {
            txn.rollback().await.map_err(compact_error)?;
            tracing::debug!(
                document,
                "another compaction or a deletion came first; skipped"
            );
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO documents (name, content, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (name) DO UPDATE SET content = EXCLUDED.content, updated_at = now()",
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
        // COLLATE "C": byte order, like Rust's `str` order, whatever the database's collation.
        let rows = sqlx::query(
            "SELECT name, \
               to_char(MAX(updated_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS updated_at, \
               SUM(bytes)::BIGINT AS bytes FROM ( \
               SELECT name, updated_at, octet_length(content) AS bytes FROM documents \
               UNION ALL \
               SELECT name, created_at, octet_length(content) FROM document_updates \
             ) AS stored WHERE left(name, length($1)) = $1 \
               AND ($2::TEXT IS NULL OR name COLLATE \"C\" > $2::TEXT COLLATE \"C\") \
             GROUP BY name ORDER BY name COLLATE \"C\" LIMIT $3",
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
        let mut txn = self.pool.begin().await.map_err(delete_error)?;
        // Exclusive: appends of the document in progress commit first; those that start later
        // see the new generation.
        sqlx::query(GENERATION_LOCK_EXCLUSIVE)
            .bind(document)
            .execute(&mut *txn)
            .await
            .map_err(delete_error)?;
        let mut deleted = 0;
        for statement in [
            "DELETE FROM document_updates WHERE name = $1",
            "DELETE FROM documents WHERE name = $1",
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
            "INSERT INTO document_generations (name, generation) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET generation = document_generations.generation + 1 \
             RETURNING generation",
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
        let mut txn = self.pool.begin().await.map_err(error)?;
        // Shared, as appends: a deletion waits for this, or this sees its new generation.
        sqlx::query(GENERATION_LOCK)
            .bind(document)
            .execute(&mut *txn)
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

    async fn record_activity(
        &self,
        document: &str,
        generation: u64,
        activity: &[Activity],
    ) -> Result<()> {
        let error = |source| StoreError::Activity {
            document: document.to_owned(),
            source,
        };
        let mut txn = self.pool.begin().await.map_err(error)?;
        Self::record_rows(&mut txn, document, generation, activity)
            .await
            .map_err(error)?;
        txn.commit().await.map_err(error)
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

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unreachable)?;
        Ok(())
    }

    async fn revoke(&self, revocation: &crate::revocation::Revocation) -> Result<()> {
        let mut txn = self.pool.begin().await.map_err(StoreError::Revocations)?;
        sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
            .bind(crate::revocation::now_secs() as i64)
            .execute(&mut *txn)
            .await
            .map_err(StoreError::Revocations)?;
        sqlx::query(
            "INSERT INTO revocations (subject, documents, mode, issued_before, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
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
             WHERE expires_at > $1",
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

/// [`write_group`], as the committer takes it.
fn write_group_boxed<'c>(
    connection: &'c mut PoolConnection<Postgres>,
    group: &'c [Append],
) -> BoxFuture<'c, std::result::Result<Vec<usize>, sqlx::Error>> {
    Box::pin(write_group(connection, group))
}

/// One transaction: the generation lock of every document in the group (shared, in name order),
/// their generations read after it, then every row of every append whose generation is current,
/// in order. Returns the indices of the appends refused as superseded.
async fn write_group(
    connection: &mut PoolConnection<Postgres>,
    group: &[Append],
) -> std::result::Result<Vec<usize>, sqlx::Error> {
    let mut txn = sqlx::Connection::begin(&mut **connection).await?;
    let names = committer::names(group);
    // Taken before the generations are read, so a deletion that committed meanwhile is seen.
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended(name, 7044)) \
         FROM unnest($1::text[]) WITH ORDINALITY AS locks(name, position) ORDER BY position",
    )
    .bind(&names)
    .execute(&mut *txn)
    .await?;
    let generations: HashMap<String, u64> = sqlx::query(
        "SELECT name, generation FROM document_generations WHERE name = ANY($1::text[])",
    )
    .bind(&names)
    .fetch_all(&mut *txn)
    .await?
    .into_iter()
    .map(|row| {
        let generation: i64 = row.get("generation");
        (row.get("name"), generation.max(0) as u64)
    })
    .collect();
    let (rows, superseded) = committer::rows(group, &generations);
    for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::new("INSERT INTO document_updates (name, content) ");
        query.push_values(chunk, |mut row, (document, update)| {
            row.push_bind(*document).push_bind(*update);
        });
        query.build().execute(&mut *txn).await?;
    }
    txn.commit().await?;
    Ok(superseded)
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    /// Set by the test command (a throwaway server, or the one the user points at).
    fn test_database_url() -> Option<String> {
        std::env::var("COLLAB_TEST_DATABASE_URL").ok()
    }

    #[tokio::test]
    async fn postgres_store_keeps_the_contract() {
        let Some(url) = test_database_url() else {
            eprintln!("COLLAB_TEST_DATABASE_URL is not set; run the suite through scripts/test.sh");
            return;
        };
        let store = PostgresStore::open(&url).await.expect("open");
        sqlx::query("DELETE FROM document_updates WHERE name LIKE 'contract/%'")
            .execute(&store.pool)
            .await
            .expect("clean");
        sqlx::query("DELETE FROM documents WHERE name LIKE 'contract/%'")
            .execute(&store.pool)
            .await
            .expect("clean");
        sqlx::query("DELETE FROM document_generations WHERE name LIKE 'contract%'")
            .execute(&store.pool)
            .await
            .expect("clean");
        contract::appended_updates_survive_compaction(&store).await;
        contract::corrupt_rows_are_quarantined_not_dropped(&store).await;
        contract::lists_and_deletes(&store, "contract-list/").await;
        contract::deletions_start_a_new_generation(&store).await;
        contract::revocations_are_kept_until_they_expire(&store).await;
        contract::versions_belong_to_their_generation(&store).await;
        contract::activity_adds_up_and_goes_with_the_document(&store).await;
        contract::concurrent_compactions_lose_nothing(std::sync::Arc::new(store)).await;
    }

    /// Issue 22, goal 6: appends of many documents waiting together share one transaction
    /// (one WAL flush), each still checked against its own generation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_of_many_documents_share_a_commit() {
        let Some(url) = test_database_url() else {
            eprintln!("COLLAB_TEST_DATABASE_URL is not set; run the suite through scripts/test.sh");
            return;
        };
        let store = PostgresStore::open(&url).await.expect("open");
        let run = std::process::id();
        let names: Vec<String> = (0..50).map(|i| format!("pg-group-{run}/{i}")).collect();
        // A deletion's lock on the first document: the first group waits for it, and every
        // append sent meanwhile joins the next one.
        let mut lock = store.pool.begin().await.expect("begin");
        sqlx::query(GENERATION_LOCK_EXCLUSIVE)
            .bind(&names[0])
            .execute(&mut *lock)
            .await
            .expect("lock");
        let before = store.commits().expect("counted");
        let update = contract::text_update(&yrs::Doc::new(), "x");
        let all = futures_util::future::join_all(
            names
                .iter()
                .map(|name| store.append(name, 0, std::slice::from_ref(&update))),
        );
        let mut all = std::pin::pin!(all);
        assert!(futures_util::poll!(all.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            futures_util::poll!(all.as_mut()).is_pending(),
            "the lock holds them"
        );
        lock.commit().await.expect("release");
        for result in all.await {
            result.expect("append");
        }
        let commits = store.commits().expect("counted") - before;
        assert!(
            (1..=2).contains(&commits),
            "50 appends took {commits} commits"
        );
        for name in &names {
            let stored = store.load(name).await.expect("load");
            assert_eq!(stored.log.len(), 1, "{name}");
        }
        // A superseded document in a group is refused alone.
        store.delete(&names[1]).await.expect("delete");
        let (stale, fresh) = tokio::join!(
            store.append(&names[1], 0, std::slice::from_ref(&update)),
            store.append(&names[2], 0, std::slice::from_ref(&update)),
        );
        assert!(
            matches!(stale, Err(StoreError::Superseded { .. })),
            "{stale:?}"
        );
        fresh.expect("the other document's append");
        assert_eq!(store.load(&names[2]).await.expect("load").log.len(), 2);
        for name in &names {
            store.delete(name).await.expect("clean up");
        }
    }

    #[tokio::test]
    async fn migrations_run_concurrently() {
        let Some(url) = test_database_url() else {
            return;
        };
        let (a, b) = tokio::join!(PostgresStore::open(&url), PostgresStore::open(&url));
        a.expect("first");
        b.expect("second");
    }
}
