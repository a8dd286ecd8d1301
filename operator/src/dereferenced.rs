//! What the reconcile's dereference step (or a renderer outside the cluster) found for a
//! CollabServer: the shapes of referenced Secrets, the managed Redis password and the
//! ServiceMonitor CRD's presence. Pure data, shared by [`crate::validate`], the controller and
//! [`crate::ecs`]; reading it from a cluster is [`crate::controller::dereference`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::ResourceExt;
use rand::{Rng, distr::Alphanumeric};

use crate::crd::CollabServer;
use crate::names;

/// Key of the managed Redis Secret holding the password.
pub const REDIS_PASSWORD_KEY: &str = "password";
/// Key of the managed Redis Secret holding the `redis://` URL the server gets.
pub const REDIS_URL_KEY: &str = "url";
const GENERATED_PASSWORD_LENGTH: usize = 32;

/// A Secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys of one Secret. A value is `None` when only the key's existence is known (a
/// renderer outside the cluster that maps keys to, say, ARNs); value checks are then skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretContents {
    keys: BTreeMap<String, Option<SecretValue>>,
    /// `metadata.resourceVersion` as the cluster returned it (`None` outside a cluster): it
    /// changes with every write of the Secret, so it rolls the pods without publishing
    /// anything derived from the values.
    resource_version: Option<String>,
}

impl SecretContents {
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// The value of a key, if the key exists and its value is known.
    pub fn value(&self, key: &str) -> Option<&SecretValue> {
        self.keys.get(key).and_then(Option::as_ref)
    }

    /// Key names (never values), for error messages.
    pub fn keys(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
}

/// The managed Redis password: alphanumeric, so it goes into a URL unescaped. Never printed.
/// Its `revision` is a random, public name of this password (generated with it, kept as an
/// annotation of the operator's Secret): pod templates carry the revision, so a new password
/// rolls Redis and the server without anything derived from the password being published.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword {
    password: String,
    revision: String,
}

impl RedisPassword {
    /// A new random password with a new revision.
    pub fn generate() -> Self {
        Self {
            password: random_alphanumeric(GENERATED_PASSWORD_LENGTH),
            revision: new_revision(),
        }
    }

    /// A password read back from the operator's Secret, if it is one the operator could have
    /// generated (anything else is replaced, and the server and Redis roll together), with
    /// the revision recorded beside it (a new one when none was).
    pub fn stored(bytes: &[u8], revision: Option<&str>) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let password = (text.len() >= 16 && text.bytes().all(|byte| byte.is_ascii_alphanumeric()))
            .then(|| text.to_owned())?;
        let revision = revision
            .filter(|revision| {
                !revision.is_empty()
                    && revision.len() <= 32
                    && revision.bytes().all(|byte| byte.is_ascii_alphanumeric())
            })
            .map_or_else(new_revision, str::to_owned);
        Some(Self { password, revision })
    }

    pub fn expose(&self) -> &str {
        &self.password
    }

    pub fn revision(&self) -> &str {
        &self.revision
    }
}

fn random_alphanumeric(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

fn new_revision() -> String {
    random_alphanumeric(10).to_ascii_lowercase()
}

impl fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything [`super::validate`] needs from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    secrets: BTreeMap<String, SecretContents>,
    /// The managed Redis password; `None` when no managed Redis is asked for (or outside a
    /// cluster, where there is none to run).
    pub managed_redis_password: Option<RedisPassword>,
    /// Whether `monitoring.coreos.com/v1` `servicemonitors` is served (checked only when the
    /// spec asks for a ServiceMonitor).
    pub service_monitor_crd: bool,
}

impl Dereferenced {
    /// Adds a Secret whose values are known (what the cluster returned).
    pub fn with_secret<K, V>(mut self, name: &str, data: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<Vec<u8>>,
    {
        let contents = data
            .into_iter()
            .map(|(key, value)| (key.into(), Some(SecretValue::new(value))))
            .collect();
        self.secrets.insert(
            name.to_owned(),
            SecretContents {
                keys: contents,
                resource_version: None,
            },
        );
        self
    }

    /// Records the resourceVersion of a Secret added with [`Dereferenced::with_secret`].
    pub fn with_resource_version(mut self, name: &str, resource_version: &str) -> Self {
        if let Some(secret) = self.secrets.get_mut(name) {
            secret.resource_version = Some(resource_version.to_owned());
        }
        self
    }

    /// Adds a Secret of which only the key names are known (rendering outside a cluster).
    pub fn with_declared_secret<K: Into<String>>(
        mut self,
        name: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Self {
        let entry = self.secrets.entry(name.to_owned()).or_default();
        for key in keys {
            entry.keys.entry(key.into()).or_insert(None);
        }
        self
    }

    /// The Secret of that name, if it exists.
    pub fn secret(&self, name: &str) -> Option<&SecretContents> {
        self.secrets.get(name)
    }
}

/// Names of the Secrets a CollabServer's spec refers to (its own managed Redis Secret
/// included), so that a change to any of them triggers a reconcile.
pub fn referenced_secrets(server: &CollabServer) -> BTreeSet<String> {
    let spec = &server.spec;
    let mut names = BTreeSet::new();
    if let Some(reference) = spec
        .auth
        .as_ref()
        .and_then(|auth| auth.jwt_secret_ref.as_ref())
    {
        names.insert(reference.name.clone());
    }
    if let Some(database) = &spec.database {
        names.insert(database.secret_ref.name.clone());
    }
    if let Some(external) = spec
        .redis
        .as_ref()
        .and_then(|redis| redis.external.as_ref())
    {
        names.insert(external.secret_ref.name.clone());
    }
    if wants_managed_redis(server) {
        names.insert(names::redis(&server.name_any()));
    }
    if let Some(api) = &spec.api {
        names.insert(api.secret_ref.name.clone());
    }
    if let Some(reference) = spec
        .webhook
        .as_ref()
        .and_then(|webhook| webhook.secret_ref.as_ref())
    {
        names.insert(reference.name.clone());
    }
    for variable in &spec.env {
        if let Some(reference) = variable
            .value_from
            .as_ref()
            .and_then(|source| source.secret_key_ref.as_ref())
        {
            names.insert(reference.name.clone());
        }
    }
    names
}

/// Whether the spec asks for a Redis the operator runs.
pub fn wants_managed_redis(server: &CollabServer) -> bool {
    server
        .spec
        .redis
        .as_ref()
        .and_then(|redis| redis.managed.as_ref())
        .is_some_and(|managed| managed.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_read_back() {
        let password = RedisPassword::generate();
        assert_eq!(password.expose().len(), GENERATED_PASSWORD_LENGTH);
        assert_eq!(
            RedisPassword::stored(password.expose().as_bytes(), Some(password.revision())),
            Some(password.clone())
        );
        assert_ne!(password, RedisPassword::generate());
        // A stored password without a recorded revision gets a new one.
        let read_back = RedisPassword::stored(password.expose().as_bytes(), None).unwrap();
        assert_eq!(read_back.expose(), password.expose());
        assert_ne!(read_back.revision(), password.revision());
    }

    #[test]
    fn passwords_the_operator_would_not_generate_are_not_reused() {
        assert_eq!(RedisPassword::stored(b"short", Some("r")), None);
        assert_eq!(
            RedisPassword::stored(b"has spaces and @ signs in it", Some("r")),
            None
        );
        assert_eq!(RedisPassword::stored(&[0xff; 20], Some("r")), None);
    }

    #[test]
    fn secret_values_are_redacted_in_debug_output() {
        let dereferenced = Dereferenced::default().with_secret("jwt", [("key", "hunter2hunter2")]);
        let printed = format!("{dereferenced:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("key"));
        let password = RedisPassword::generate();
        assert!(!format!("{password:?}").contains(password.expose()));
    }

    #[test]
    fn declared_secrets_know_keys_but_not_values() {
        let dereferenced = Dereferenced::default().with_declared_secret("db", ["uri"]);
        let secret = dereferenced.secret("db").expect("declared");
        assert!(secret.contains("uri"));
        assert!(secret.value("uri").is_none());
        assert!(dereferenced.secret("other").is_none());
    }
}
