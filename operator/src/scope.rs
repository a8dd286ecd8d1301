//! Where the controller watches: the whole cluster, or a list of namespaces
//! (`--watch-namespaces`). Every Api the controller uses is made by [`Scope::api`], so in
//! namespace mode nothing is listed or watched outside those namespaces.

use std::collections::BTreeSet;

use kube::{Api, Client, Resource};

/// One watch scope: one controller runs per scope.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Every namespace (a ClusterRole is needed).
    Cluster,
    /// One namespace (a Role in it is enough).
    Namespace(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "--watch-namespaces: {name:?} is not a namespace name (lowercase letters, digits and '-', at most 63 characters)"
    )]
    InvalidNamespace { name: String },
}

impl Scope {
    /// An Api of `K` in this scope.
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match self {
            Scope::Cluster => Api::all(client),
            Scope::Namespace(namespace) => Api::namespaced(client, namespace),
        }
    }

    /// For logs: `cluster` or the namespace.
    pub fn describe(&self) -> &str {
        match self {
            Scope::Cluster => "cluster",
            Scope::Namespace(namespace) => namespace,
        }
    }
}

/// The scopes of `--watch-namespaces`: empty (or only blanks) is the whole cluster; otherwise
/// one scope per distinct namespace, in order of name.
pub fn scopes(watch_namespaces: &[String]) -> Result<Vec<Scope>, ScopeError> {
    let namespaces: BTreeSet<&str> = watch_namespaces
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .collect();
    if namespaces.is_empty() {
        return Ok(vec![Scope::Cluster]);
    }
    namespaces
        .into_iter()
        .map(|name| {
            if is_dns_label(name) {
                Ok(Scope::Namespace(name.to_owned()))
            } else {
                Err(ScopeError::InvalidNamespace {
                    name: name.to_owned(),
                })
            }
        })
        .collect()
}

/// RFC 1123 label: what a namespace name must be.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn no_namespaces_is_the_whole_cluster() {
        assert_eq!(scopes(&[]).unwrap(), vec![Scope::Cluster]);
        assert_eq!(scopes(&strings(&["", " "])).unwrap(), vec![Scope::Cluster]);
    }

    #[test]
    fn namespaces_are_trimmed_deduplicated_and_sorted() {
        assert_eq!(
            scopes(&strings(&["team-b", " team-a", "team-b", ""])).unwrap(),
            vec![
                Scope::Namespace("team-a".to_owned()),
                Scope::Namespace("team-b".to_owned())
            ]
        );
    }

    #[test]
    fn a_name_that_cannot_be_a_namespace_is_refused() {
        for bad in ["Team", "team_a", "-team", "a/b", &"a".repeat(64)] {
            let error = scopes(&strings(&[bad])).expect_err(bad);
            assert!(error.to_string().contains("--watch-namespaces"), "{error}");
        }
    }
}
