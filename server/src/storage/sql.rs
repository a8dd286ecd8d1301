//! Queries SQLite and PostgreSQL run the same way (the SQL of `versions` and `activity` is
//! shared; only the pool's type differs): one body, expanded into each store as inherent
//! methods its `DocumentStore` impl calls.

/// Adds `insert_version`, `record_rows`, `list_versions`, `read_version`, `remove_version` and
/// `read_activity` to a store with a `pool` field of database `$db`.
macro_rules! shared_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Inserts a version in `txn` if `generation` is still the document's.
            async fn insert_version(
                txn: &mut sqlx::Transaction<'_, $db>,
                document: &str,
                generation: u64,
                version: &NewVersion,
            ) -> Result<VersionInfo> {
                let id: Option<i64> = sqlx::query_scalar(super::versions::INSERT)
                    .bind(document)
                    .bind(generation as i64)
                    .bind(version.label.as_deref())
                    .bind(&version.author)
                    .bind(version.created_at as i64)
                    .bind(version.content.len() as i64)
                    .bind(&version.content)
                    .fetch_optional(&mut **txn)
                    .await
                    .map_err(|source| StoreError::Versions {
                        document: document.to_owned(),
                        source,
                    })?;
                let id = id.ok_or_else(|| StoreError::Superseded {
                    document: document.to_owned(),
                    generation,
                })?;
                Ok(super::versions::info(
                    id,
                    version.label.clone(),
                    version.author.clone(),
                    version.created_at as i64,
                    version.content.len() as i64,
                ))
            }

            /// Adds activity rows in `txn` (dropped if `generation` is over).
            async fn record_rows(
                txn: &mut sqlx::Transaction<'_, $db>,
                document: &str,
                generation: u64,
                activity: &[Activity],
            ) -> std::result::Result<(), sqlx::Error> {
                for row in activity {
                    sqlx::query(super::activity::RECORD)
                        .bind(document)
                        .bind(generation as i64)
                        .bind(&row.author)
                        .bind(row.minute as i64)
                        .bind(row.updates as i64)
                        .bind(row.bytes as i64)
                        .execute(&mut **txn)
                        .await?;
                }
                Ok(())
            }

            async fn list_versions(
                &self,
                document: &str,
                before: Option<i64>,
                limit: u32,
            ) -> Result<Vec<VersionInfo>> {
                let rows: Vec<(i64, Option<String>, String, i64, i64)> =
                    sqlx::query_as(super::versions::LIST)
                        .bind(document)
                        .bind(before.unwrap_or(i64::MAX))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|source| StoreError::Versions {
                            document: document.to_owned(),
                            source,
                        })?;
                Ok(rows
                    .into_iter()
                    .map(|(id, label, author, created, size)| {
                        super::versions::info(id, label, author, created, size)
                    })
                    .collect())
            }

            async fn read_version(
                &self,
                document: &str,
                id: i64,
            ) -> Result<Option<(VersionInfo, Vec<u8>)>> {
                let row: Option<(i64, Option<String>, String, i64, i64, Vec<u8>)> =
                    sqlx::query_as(super::versions::GET)
                        .bind(document)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|source| StoreError::Versions {
                            document: document.to_owned(),
                            source,
                        })?;
                Ok(row.map(|(id, label, author, created, size, content)| {
                    (
                        super::versions::info(id, label, author, created, size),
                        content,
                    )
                }))
            }

            async fn remove_version(&self, document: &str, id: i64) -> Result<bool> {
                let deleted = sqlx::query(super::versions::DELETE_ONE)
                    .bind(document)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(|source| StoreError::Versions {
                        document: document.to_owned(),
                        source,
                    })?;
                Ok(deleted.rows_affected() > 0)
            }

            async fn read_activity(
                &self,
                document: &str,
                from: u64,
                to: u64,
                limit: u32,
            ) -> Result<Vec<Activity>> {
                let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(super::activity::LIST)
                    .bind(document)
                    .bind(from.min(i64::MAX as u64) as i64)
                    .bind(to.min(i64::MAX as u64) as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Activity {
                        document: document.to_owned(),
                        source,
                    })?;
                Ok(rows
                    .into_iter()
                    .map(|(author, minute, updates, bytes)| {
                        super::activity::row(author, minute, updates, bytes)
                    })
                    .collect())
            }
        }
    };
}

pub(super) use shared_queries;
