//! Live revocation: a user's (token `sub`) access ends, or becomes read-only, now, on every
//! replica, and the tokens issued to that user before (`iat`) stay refused until the revocation
//! expires (by then they have expired too: set its lifetime to the tokens' longest).
//!
//! A revocation is stored first (a replica that starts later loads it), then applied to this
//! replica's live sessions and sent to the peers over the relay. The set here is what the
//! authenticator consults when a document opens or a token is renewed.

use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What a revocation does to a user's sessions and older tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Sessions end (PermissionDenied); older tokens are refused.
    End,
    /// Sessions become read-only (their edits are refused, never acknowledged); older tokens
    /// open documents read-only.
    ReadOnly,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::End => "end",
            Mode::ReadOnly => "read-only",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "end" => Some(Mode::End),
            "read-only" => Some(Mode::ReadOnly),
            _ => None,
        }
    }
}

/// One revocation, as stored and relayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    /// The token `sub` it applies to.
    pub subject: String,
    /// Only documents whose name matches this pattern (`*` matches any run of characters, as
    /// in a token's `docs` claim; `None`: every document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<String>,
    pub mode: Mode,
    /// Tokens issued before this (seconds since the epoch), or without `iat`, are affected.
    pub issued_before: u64,
    /// When it is forgotten (seconds since the epoch).
    pub expires_at: u64,
}

impl Revocation {
    pub fn covers(&self, document: &str) -> bool {
        self.documents
            .as_deref()
            .is_none_or(|pattern| crate::auth::pattern_matches(pattern, document))
    }

    /// Whether a token of `subject` issued at `iat` is affected on `document` at `now`.
    fn applies(&self, subject: &str, iat: Option<u64>, document: &str, now: u64) -> bool {
        self.subject == subject
            && now < self.expires_at
            && iat.is_none_or(|iat| iat < self.issued_before)
            && self.covers(document)
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The revocations in force on this replica.
#[derive(Default)]
pub struct Revocations {
    list: RwLock<Vec<Revocation>>,
}

impl Revocations {
    /// What applies to a token of `subject` issued at `iat`, opening `document` now: `End` wins
    /// over `ReadOnly`; `None` when nothing does.
    pub fn check(&self, subject: &str, iat: Option<u64>, document: &str) -> Option<Mode> {
        let now = now_secs();
        let list = self.list.read().unwrap_or_else(PoisonError::into_inner);
        let mut found = None;
        for revocation in list
            .iter()
            .filter(|r| r.applies(subject, iat, document, now))
        {
            match revocation.mode {
                Mode::End => return Some(Mode::End),
                Mode::ReadOnly => found = Some(Mode::ReadOnly),
            }
        }
        found
    }

    /// Adds `revocation` unless it is known or expired; `true` when it was new.
    pub fn add(&self, revocation: Revocation) -> bool {
        let now = now_secs();
        let mut list = self.list.write().unwrap_or_else(PoisonError::into_inner);
        list.retain(|r| r.expires_at > now);
        if revocation.expires_at <= now || list.contains(&revocation) {
            return false;
        }
        list.push(revocation);
        true
    }

    /// The revocations in force.
    pub fn list(&self) -> Vec<Revocation> {
        let now = now_secs();
        self.list
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|r| r.expires_at > now)
            .cloned()
            .collect()
    }
}

/// How often a replica reads the stored revocations (those made on other replicas reach it
/// within this time).
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Until `shutdown`: takes the revocations other replicas stored into force here.
pub async fn follow(
    registry: std::sync::Arc<crate::document::Registry>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    // The first read is the server's start-up's: this one starts an interval later.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + FOLLOW_INTERVAL,
        FOLLOW_INTERVAL,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match registry.store().revocations().await {
            Ok(stored) => {
                failing = false;
                for revocation in stored {
                    if registry.revoke(&revocation).await {
                        tracing::info!(subject = %revocation.subject, mode = revocation.mode.as_str(), "revocation from another replica in force");
                    }
                }
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "stored revocations could not be read; retrying");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(mode: Mode, documents: Option<&str>, issued_before: u64) -> Revocation {
        Revocation {
            subject: "fired".into(),
            documents: documents.map(str::to_owned),
            mode,
            issued_before,
            expires_at: now_secs() + 3600,
        }
    }

    #[test]
    fn older_tokens_of_the_subject_are_affected_on_the_covered_documents() {
        let now = now_secs();
        let revocations = Revocations::default();
        assert!(revocations.add(revocation(Mode::End, Some("org-a/*"), now)));
        assert!(
            !revocations.add(revocation(Mode::End, Some("org-a/*"), now)),
            "known"
        );
        assert_eq!(
            revocations.check("fired", Some(now - 10), "org-a/doc"),
            Some(Mode::End)
        );
        assert_eq!(
            revocations.check("fired", None, "org-a/doc"),
            Some(Mode::End),
            "a token without iat may be older"
        );
        assert_eq!(
            revocations.check("fired", Some(now), "org-a/doc"),
            None,
            "issued after"
        );
        assert_eq!(
            revocations.check("fired", Some(now - 10), "org-b/doc"),
            None
        );
        assert_eq!(
            revocations.check("other", Some(now - 10), "org-a/doc"),
            None
        );
        // A read-only revocation everywhere; End still wins where both apply.
        assert!(revocations.add(revocation(Mode::ReadOnly, None, now)));
        assert_eq!(
            revocations.check("fired", Some(now - 10), "org-b/doc"),
            Some(Mode::ReadOnly)
        );
        assert_eq!(
            revocations.check("fired", Some(now - 10), "org-a/doc"),
            Some(Mode::End)
        );
    }

    #[test]
    fn expired_revocations_are_forgotten() {
        let now = now_secs();
        let revocations = Revocations::default();
        let mut expired = revocation(Mode::End, None, now);
        expired.expires_at = now - 1;
        assert!(!revocations.add(expired));
        assert_eq!(revocations.check("fired", Some(now - 10), "doc"), None);
        assert!(revocations.list().is_empty());
    }

    #[test]
    fn the_relayed_form_is_camel_case_json() {
        let revocation = revocation(Mode::ReadOnly, Some("a/*"), 7);
        let json = serde_json::to_value(&revocation).expect("json");
        assert_eq!(json["mode"], "read-only");
        assert_eq!(json["documents"], "a/*");
        assert_eq!(json["issuedBefore"], 7);
        let back: Revocation = serde_json::from_value(json).expect("back");
        assert_eq!(back, revocation);
    }
}
