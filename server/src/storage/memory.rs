//! In-memory store, for tests and benchmarks. Nothing survives a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{DocumentStore, Result, StoredDocument, fold};

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
        let stored = self.load(document).await?;
        if stored.log.is_empty() {
            return Ok(());
        }
        let folded_rows = stored.log.len();
        let snapshot = fold(document, stored.updates())?;
        self.with(|docs| {
            if let Some(entry) = docs.get_mut(document) {
                entry.snapshot = Some(snapshot);
                entry.log.drain(..folded_rows);
            }
        });
        Ok(())
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
        contract::corrupt_log_is_reported_not_dropped(&MemoryStore::default()).await;
    }
}
