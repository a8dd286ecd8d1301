//! The labels the operator puts on what it creates: the only place that spells them, so the
//! objects `build` makes and the ones `apply` prunes are selected the same way.

use std::collections::BTreeMap;

/// `app.kubernetes.io/managed-by` value of every object the operator creates.
pub const MANAGER: &str = "collab-operator";

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Prefix of the operator's own annotations and labels (reserved in `podTemplate`).
pub const RESERVED_PREFIX: &str = "collab.zedi.dev/";

/// Pod-template annotation of the server: `name:resourceVersion` of every Secret the pods read
/// (the managed Redis Secret as `name:` and its password revision), so that a write to any of
/// them rolls the Deployment. Nothing derived from a Secret's values is published.
pub const SECRET_VERSIONS_ANNOTATION: &str = "collab.zedi.dev/secret-versions";

/// Annotation of the managed Redis Secret, and of the Redis pod template: the random, public
/// revision of the generated password (see `dereferenced::RedisPassword`).
pub const PASSWORD_REVISION_ANNOTATION: &str = "collab.zedi.dev/password-revision";

/// Label telling the metrics Service (the one a ServiceMonitor selects) from the client one.
pub const METRICS_SERVICE_LABEL: &str = "collab.zedi.dev/metrics";

/// Label a user puts on a Secret a CollabServer refers to (value `true`) so that the operator
/// watches it and rolls the pods as soon as it changes; other referenced Secrets are re-read at
/// every resync.
pub const RELOAD_LABEL: &str = "collab.zedi.dev/reload";

/// Label selector of the objects the operator manages (its watches of children and of its own
/// Secrets).
pub fn managed_selector_string() -> String {
    format!("{MANAGED_BY}={MANAGER}")
}

/// Label selector of the Secrets users ask the operator to watch ([`RELOAD_LABEL`]).
pub fn reload_selector_string() -> String {
    format!("{RELOAD_LABEL}=true")
}

/// Which part of a CollabServer an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The collab-server pods and everything about them.
    Server,
    /// The managed Redis.
    Redis,
}

impl Component {
    fn app_name(self) -> &'static str {
        match self {
            Component::Server => "collab-server",
            Component::Redis => "redis",
        }
    }

    fn component(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Redis => "relay",
        }
    }
}

/// The pod selector of a component (immutable in a Deployment: never change these).
pub fn selector(instance: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_owned(), component.app_name().to_owned()),
        (INSTANCE.to_owned(), instance.to_owned()),
        (COMPONENT.to_owned(), component.component().to_owned()),
    ])
}

/// Labels of every object of a component: its selector plus `managed-by`.
pub fn labels(instance: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector(instance, component);
    labels.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels
}

/// The label selector string of a component's pods (`status.selector`).
pub fn selector_string(instance: &str, component: Component) -> String {
    to_selector_string(&selector(instance, component))
}

/// The label selector of everything the operator made for one CollabServer (orphan pruning).
pub fn owned_selector_string(instance: &str) -> String {
    to_selector_string(&BTreeMap::from([
        (INSTANCE.to_owned(), instance.to_owned()),
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
    ]))
}

/// Pod label and annotation keys a CollabServer may not set (besides [`RESERVED_PREFIX`]).
pub const RESERVED_KEYS: [&str; 4] = [NAME, INSTANCE, COMPONENT, MANAGED_BY];

/// Whether a user-supplied pod label or annotation key would clash with the operator's own.
pub fn is_reserved(key: &str) -> bool {
    key.starts_with(RESERVED_PREFIX) || RESERVED_KEYS.contains(&key)
}

fn to_selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_string_lists_the_selector_labels_in_order() {
        assert_eq!(
            selector_string("docs", Component::Server),
            "app.kubernetes.io/component=server,app.kubernetes.io/instance=docs,app.kubernetes.io/name=collab-server"
        );
        assert_eq!(
            owned_selector_string("docs"),
            "app.kubernetes.io/instance=docs,app.kubernetes.io/managed-by=collab-operator"
        );
    }

    #[test]
    fn the_secret_watches_select_managed_and_reload_labelled_secrets() {
        assert_eq!(
            managed_selector_string(),
            "app.kubernetes.io/managed-by=collab-operator"
        );
        assert_eq!(reload_selector_string(), "collab.zedi.dev/reload=true");
    }

    #[test]
    fn server_and_redis_pods_are_selected_apart() {
        assert_ne!(
            selector("docs", Component::Server),
            selector("docs", Component::Redis)
        );
        assert_eq!(labels("docs", Component::Redis)[MANAGED_BY], MANAGER);
    }

    #[test]
    fn selector_labels_and_operator_prefix_are_reserved() {
        assert!(is_reserved(INSTANCE));
        assert!(is_reserved(SECRET_VERSIONS_ANNOTATION));
        assert!(is_reserved(PASSWORD_REVISION_ANNOTATION));
        assert!(!is_reserved("team"));
        assert!(!is_reserved("app.kubernetes.io/part-of"));
    }
}
