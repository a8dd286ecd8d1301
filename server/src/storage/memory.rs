//! In-memory store, for tests and benchmarks. Nothing survives a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{DocumentInfo, DocumentStore, Listing, Result, StoredDocument, fold};

#[derive(Default)]
pub struct MemoryStore {
    documents: Mutex<HashMap<String, StoredDocument>>,
}

impl MemoryStore {
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

    async fn append(&self, document: &str, updates: &[Vec<u8>]) -> Result<()> {
        self.with(|docs| {
            docs.entry(document.to_owned())
                .or_default()
                .log
                .extend(updates.iter().cloned())
        });
        Ok(())
    }

    async fn compact(&self, document: &str) -> Result<()> {
        // Read, fold and replace under one lock: two compactions of a document cannot
        // interleave, and an append can never land between the read and the drain.
        self.with(|docs| {
            let Some(entry) = docs.get_mut(document) else {
                return Ok(());
            };
            if entry.log.is_empty() {
                return Ok(());
            }
            let log: Vec<&[u8]> = entry.log.iter().map(Vec::as_slice).collect();
            let (snapshot, quarantined) = fold(document, entry.snapshot.as_deref(), &log)?;
            entry.snapshot = Some(snapshot);
            // Quarantined rows stay in the log, in order.
            let mut index = 0;
            entry.log.retain(|_| {
                index += 1;
                quarantined.contains(&(index - 1))
            });
            Ok(())
        })
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

    async fn delete(&self, document: &str) -> Result<bool> {
        Ok(self.with(|docs| docs.remove(document).is_some_and(|d| !d.is_empty())))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
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
                .append(name, &[update.clone(), update.clone()])
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
