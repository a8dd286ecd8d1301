//! In-memory store, for tests and benchmarks. Nothing survives a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Activity;
use super::{
    Deleted, DocumentInfo, DocumentStore, Listing, NewVersion, Result, StoreError, StoredDocument,
    VersionInfo, fold_rows_blocking,
};

#[derive(Default)]
pub struct MemoryStore {
    documents: Mutex<HashMap<String, StoredDocument>>,
    /// Per document, how many compactions and deletions changed what was read before them.
    epochs: Mutex<HashMap<String, u64>>,
    revocations: Mutex<Vec<crate::revocation::Revocation>>,
    /// Per document, its versions oldest first; locked after `documents`.
    versions: Mutex<Versions>,
    /// Per document, (minute, author) to (updates, bytes); locked after `documents`.
    activity: Mutex<ActivityLog>,
}

type ActivityLog = HashMap<String, std::collections::BTreeMap<(u64, String), (u64, u64)>>;

#[derive(Default)]
struct Versions {
    next_id: i64,
    by_document: HashMap<String, Vec<(VersionInfo, Vec<u8>)>>,
}

impl MemoryStore {
    /// Read while `documents` is locked (the lock order is documents, then epochs).
    fn epoch(&self, document: &str) -> u64 {
        let epochs = self
            .epochs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        epochs.get(document).copied().unwrap_or(0)
    }

    fn bump(&self, document: &str) {
        let mut epochs = self
            .epochs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *epochs.entry(document.to_owned()).or_default() += 1;
    }

    fn with_versions<T>(&self, f: impl FnOnce(&mut Versions) -> T) -> T {
        let mut guard = self
            .versions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, StoredDocument>) -> T) -> T {
        let mut guard = self
            .documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn load(&self, document: &str) -> Result<StoredDocument> {
        Ok(self.with(|docs| docs.get(document).cloned().unwrap_or_default()))
    }

    async fn append(&self, document: &str, generation: u64, updates: &[Vec<u8>]) -> Result<()> {
        self.with(|docs| {
            let entry = docs.entry(document.to_owned()).or_default();
            if entry.generation != generation {
                return Err(StoreError::Superseded {
                    document: document.to_owned(),
                    generation,
                });
            }
            entry.log.extend(updates.iter().cloned());
            Ok(())
        })
    }

    async fn compact(&self, document: &str) -> Result<()> {
        // As the databases do: read under the lock, fold outside it (off the async workers),
        // write under it only if no compaction or deletion came between.
        let Some((epoch, snapshot, log)) = self.with(|docs| {
            let entry = docs.get(document)?;
            (!entry.log.is_empty()).then(|| {
                (
                    self.epoch(document),
                    entry.snapshot.clone(),
                    entry.log.clone(),
                )
            })
        }) else {
            return Ok(());
        };
        // Indices stand for row ids: the fold's is the one every store uses.
        let rows: Vec<(i64, Vec<u8>)> = (0..).zip(log).collect();
        let count = rows.len();
        let (merged, folded) = fold_rows_blocking(document, snapshot, rows).await?;
        if folded.is_empty() {
            return Ok(());
        }
        self.with(|docs| {
            if self.epoch(document) != epoch {
                return;
            }
            let Some(entry) = docs.get_mut(document) else {
                return;
            };
            entry.snapshot = Some(merged);
            // The rows read are the first `count` (appends only add after them); those folded
            // go, quarantined ones stay, in order. `folded` is in row order: a binary search,
            // not a scan per row (that made every compaction quadratic in its rows).
            let mut index = 0i64;
            entry.log.retain(|_| {
                index += 1;
                index > count as i64 || folded.binary_search(&(index - 1)).is_err()
            });
            self.bump(document);
        });
        Ok(())
    }

    async fn list(&self, listing: &Listing) -> Result<Vec<DocumentInfo>> {
        Ok(self.with(|docs| {
            let mut listed: Vec<DocumentInfo> = docs
                .iter()
                .filter(|(name, stored)| !stored.is_empty() && listing.admits(name))
                .map(|(name, stored)| DocumentInfo {
                    name: name.clone(),
                    updated_at: None,
                    stored_bytes: stored.updates().map(|u| u.len() as u64).sum(),
                })
                .collect();
            listed.sort_by(|a, b| a.name.cmp(&b.name));
            listed.truncate(listing.limit as usize);
            listed
        }))
    }

    async fn delete(&self, document: &str) -> Result<Deleted> {
        Ok(self.with(|docs| {
            // The entry stays, empty, for its generation.
            let entry = docs.entry(document.to_owned()).or_default();
            let existed = !entry.is_empty();
            entry.snapshot = None;
            entry.log.clear();
            entry.generation += 1;
            self.bump(document);
            self.with_versions(|versions| versions.by_document.remove(document));
            self.activity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(document);
            Deleted {
                existed,
                generation: entry.generation,
            }
        }))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn create_version(
        &self,
        document: &str,
        generation: u64,
        version: &NewVersion,
    ) -> Result<VersionInfo> {
        self.with(|docs| {
            let current = docs.get(document).map_or(0, |entry| entry.generation);
            if current != generation {
                return Err(StoreError::Superseded {
                    document: document.to_owned(),
                    generation,
                });
            }
            Ok(self.with_versions(|versions| {
                versions.next_id += 1;
                let info = VersionInfo {
                    id: versions.next_id,
                    label: version.label.clone(),
                    author: version.author.clone(),
                    created_at: version.created_at,
                    size: version.content.len() as u64,
                };
                versions
                    .by_document
                    .entry(document.to_owned())
                    .or_default()
                    .push((info.clone(), version.content.clone()));
                info
            }))
        })
    }

    async fn versions(
        &self,
        document: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>> {
        let before = before.unwrap_or(i64::MAX);
        Ok(self.with_versions(|versions| {
            versions
                .by_document
                .get(document)
                .map(|list| {
                    list.iter()
                        .rev()
                        .filter(|(info, _)| info.id < before)
                        .take(limit as usize)
                        .map(|(info, _)| info.clone())
                        .collect()
                })
                .unwrap_or_default()
        }))
    }

    async fn version(&self, document: &str, id: i64) -> Result<Option<(VersionInfo, Vec<u8>)>> {
        Ok(self.with_versions(|versions| {
            versions
                .by_document
                .get(document)?
                .iter()
                .find(|(info, _)| info.id == id)
                .cloned()
        }))
    }

    async fn record_activity(
        &self,
        document: &str,
        generation: u64,
        activity: &[Activity],
    ) -> Result<()> {
        self.with(|docs| {
            if docs.get(document).map_or(0, |entry| entry.generation) != generation {
                return;
            }
            let mut all = self
                .activity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let minutes = all.entry(document.to_owned()).or_default();
            for row in activity {
                let entry = minutes.entry((row.minute, row.author.clone())).or_default();
                entry.0 += row.updates;
                entry.1 += row.bytes;
            }
        });
        Ok(())
    }

    async fn activity(
        &self,
        document: &str,
        from: u64,
        to: u64,
        limit: u32,
    ) -> Result<Vec<Activity>> {
        let all = self
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(minutes) = all.get(document) else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<Activity> = minutes
            .iter()
            .filter(|((minute, _), _)| (from..to).contains(minute))
            .map(|((minute, author), (updates, bytes))| Activity {
                author: author.clone(),
                minute: *minute,
                updates: *updates,
                bytes: *bytes,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.minute
                .cmp(&a.minute)
                .then_with(|| a.author.cmp(&b.author))
        });
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn delete_version(&self, document: &str, id: i64) -> Result<bool> {
        Ok(self.with_versions(|versions| {
            let Some(list) = versions.by_document.get_mut(document) else {
                return false;
            };
            let before = list.len();
            list.retain(|(info, _)| info.id != id);
            list.len() != before
        }))
    }

    async fn revoke(&self, revocation: &crate::revocation::Revocation) -> Result<()> {
        let now = crate::revocation::now_secs();
        let mut revocations = self
            .revocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        revocations.retain(|r| r.expires_at > now);
        revocations.push(revocation.clone());
        Ok(())
    }

    async fn revocations(&self) -> Result<Vec<crate::revocation::Revocation>> {
        let now = crate::revocation::now_secs();
        Ok(self
            .revocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|r| r.expires_at > now)
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::contract;
    use super::*;

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        contract::appended_updates_survive_compaction(&MemoryStore::default()).await;
        contract::corrupt_rows_are_quarantined_not_dropped(&MemoryStore::default()).await;
        contract::lists_and_deletes(&MemoryStore::default(), "contract-list/").await;
        contract::deletions_start_a_new_generation(&MemoryStore::default()).await;
        contract::revocations_are_kept_until_they_expire(&MemoryStore::default()).await;
        contract::versions_belong_to_their_generation(&MemoryStore::default()).await;
        contract::activity_adds_up_and_goes_with_the_document(&MemoryStore::default()).await;
    }

    #[tokio::test]
    async fn a_store_without_grouping_counts_one_commit_per_append() {
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let store = crate::storage::Instrumented::wrap(
            std::sync::Arc::new(MemoryStore::default()),
            metrics.clone(),
        );
        let update = contract::text_update(&yrs::Doc::new(), "x");
        for name in ["a", "b", "a"] {
            store
                .append(name, 0, &[update.clone(), update.clone()])
                .await
                .expect("append");
        }
        assert_eq!(metrics.store_commits.get(), 3);
        assert_eq!(metrics.log_rows_appended.get(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_compactions_are_atomic() {
        contract::concurrent_compactions_lose_nothing(std::sync::Arc::new(MemoryStore::default()))
            .await;
    }
}
