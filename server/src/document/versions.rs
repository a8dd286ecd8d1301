//! What the registry does around document versions: automatic versions on a schedule of
//! activity, retention, and the `version.*` webhooks. Making, listing and restoring versions
//! is the document API's (`api/versions.rs`); the room only answers with its durable state.

use std::sync::Arc;
use std::time::Duration;

use super::Registry;
use crate::storage::VersionInfo;
use crate::storage::versions::{NewVersion, Retention, now_ms};
use crate::webhook::Documents;

/// Who automatic versions are made by.
pub const AUTO_AUTHOR: &str = "auto";

/// Why an automatic version is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoVersion {
    /// The interval after a change passed.
    Interval,
    /// The document's log was folded into its snapshot.
    Compaction,
}

/// The versions policy (`COLLAB_SERVER_VERSIONS_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VersionPolicy {
    /// A version this long after the first change since the last one (`None`: no automatic
    /// versions, the default).
    pub interval: Option<Duration>,
    /// What to keep of a document's versions after each new one.
    pub retention: Retention,
    /// A version whenever a compaction folds the document's log.
    pub on_compaction: bool,
}

/// With replicas, at most one version per document per this long at compaction (each
/// replica's writer compacts the documents it stores).
const COMPACTION_WINDOW: Duration = Duration::from_secs(2);

/// Page size while pruning.
const PRUNE_PAGE: u32 = 1000;

impl Registry {
    /// The versions policy from now on.
    pub fn set_version_policy(&self, policy: VersionPolicy) {
        let _ = self.version_policy.set(policy);
    }

    pub fn version_policy(&self) -> VersionPolicy {
        self.version_policy.get().copied().unwrap_or_default()
    }

    /// Largest document in bytes (0: no limit); a version counts against it too.
    pub fn max_document_bytes(&self) -> usize {
        self.settings.max_document_bytes
    }

    /// Whether a version of `size` bytes fits the document's limit: its versions together
    /// count against `COLLAB_SERVER_MAX_DOCUMENT_BYTES` like the document itself (`Ok(())`), or
    /// the bytes its versions already take (`Err`).
    pub async fn version_fits(
        &self,
        name: &str,
        size: usize,
    ) -> crate::storage::Result<Result<(), u64>> {
        let limit = self.settings.max_document_bytes as u64;
        if limit == 0 {
            return Ok(Ok(()));
        }
        let taken: u64 = self.all_versions(name).await?.iter().map(|v| v.size).sum();
        Ok(if taken.saturating_add(size as u64) > limit {
            Err(taken)
        } else {
            Ok(())
        })
    }

    /// Every version of `name`, newest first.
    async fn all_versions(&self, name: &str) -> crate::storage::Result<Vec<VersionInfo>> {
        let mut all = Vec::new();
        let mut before = None;
        loop {
            let page = self.store.versions(name, before, PRUNE_PAGE).await?;
            let done = page.len() < PRUNE_PAGE as usize;
            before = page.last().map(|v| v.id);
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// A version was stored: the `version.created` webhook, and pruning (in the background).
    pub async fn versions_made(self: &Arc<Self>, name: &str, info: &VersionInfo) {
        if let Some(webhooks) = self.webhooks() {
            webhooks.version_event("version.created", name, info, None);
        }
        let retention = self.version_policy().retention;
        if retention.is_unlimited() {
            return;
        }
        let registry = self.clone();
        let name = name.to_owned();
        self.tracker.spawn(async move {
            if let Err(error) = registry.prune(&name, retention).await {
                tracing::warn!(document = %name, %error, "versions not pruned");
            }
        });
    }

    /// A version was restored by `author`: the `version.restored` webhook.
    pub async fn version_restored(&self, name: &str, info: &VersionInfo, author: &str) {
        if let Some(webhooks) = self.webhooks() {
            webhooks.version_event("version.restored", name, info, Some(author));
        }
    }

    /// Removes the versions of `name` that `retention` does not keep.
    async fn prune(&self, name: &str, retention: Retention) -> crate::storage::Result<usize> {
        let all = self.all_versions(name).await?;
        let expired = retention.expired(&all, now_ms());
        for id in &expired {
            self.store.delete_version(name, *id).await?;
        }
        if !expired.is_empty() {
            tracing::debug!(document = name, pruned = expired.len(), "versions pruned");
        }
        Ok(expired.len())
    }

    /// An automatic version of `name` with its durable `state` of `generation`, made by one
    /// replica per interval (the others find the interval claimed).
    pub(crate) async fn auto_version(
        self: &Arc<Self>,
        name: &str,
        state: Vec<u8>,
        generation: u64,
        why: AutoVersion,
    ) {
        let policy = self.version_policy();
        let window = match (why, policy.interval) {
            // A little under the interval: the next one's claim must not find this one's.
            (AutoVersion::Interval, Some(interval)) => {
                interval.mul_f64(0.9).max(Duration::from_millis(100))
            }
            (AutoVersion::Compaction, _) if policy.on_compaction => COMPACTION_WINDOW,
            _ => return,
        };
        if state.as_slice() == [0, 0] {
            return;
        }
        match self
            .claim(&format!("versions:auto:{why:?}:{name}"), window)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => tracing::debug!(%error, "could not claim the version interval"),
        }
        match self.version_fits(name, state.len()).await {
            Ok(Ok(())) => {}
            Ok(Err(taken)) => {
                tracing::warn!(
                    document = name,
                    taken,
                    "automatic version not made: the document's versions fill its limit (set a retention)"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(document = name, %error, "automatic version not made");
                return;
            }
        }
        let version = NewVersion {
            label: None,
            author: AUTO_AUTHOR.to_owned(),
            created_at: now_ms(),
            content: state,
        };
        match self.store.create_version(name, generation, &version).await {
            Ok(info) => self.versions_made(name, &info).await,
            Err(error) => tracing::warn!(document = name, %error, "automatic version not made"),
        }
    }
}
