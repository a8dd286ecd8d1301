//! Step 1 of the reconcile, and its only read IO: fetch what a CollabServer refers to.
//!
//! Input: the CollabServer. Output: [`Dereferenced`]: the referenced Secrets (absent ones are
//! recorded as absent, not as errors: [`super::validate`] turns that into a condition), the
//! managed Redis password (read back from the Secret the operator owns, or freshly generated)
//! and whether the ServiceMonitor CRD is served (asked at every reconcile: a CRD can be installed
//! at any time). Errors are API failures only.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use crate::crd::CollabServer;
use crate::dereferenced::{
    Dereferenced, REDIS_PASSWORD_KEY, RedisPassword, referenced_secrets, wants_managed_redis,
};
use crate::{labels, names};

/// API group and version of the Prometheus Operator's ServiceMonitor.
pub const SERVICE_MONITOR_API_VERSION: &str = "monitoring.coreos.com/v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read Secret {namespace}/{name}: {source}")]
    GetSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("failed to discover whether {SERVICE_MONITOR_API_VERSION} is served: {source}")]
    DiscoverServiceMonitor {
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::GetSecret { .. } => "GetSecretFailed",
            Error::DiscoverServiceMonitor { .. } => "DiscoveryFailed",
        }
    }
}

/// A 404 from the API server: for an API group or kind it does not serve, the body is the
/// plain text `404 page not found` (kube reports it with reason "Failed to parse error data"),
/// so [`kube::core::Status::is_not_found`], which reads the reason, does not recognise it.
pub fn is_not_served(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

/// Fetches the referenced Secrets, the managed Redis password and the ServiceMonitor CRD's
/// presence.
pub async fn dereference(client: &Client, server: &CollabServer) -> Result<Dereferenced, Error> {
    let namespace = server
        .namespace()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut dereferenced = Dereferenced::default();
    let redis_secret = names::redis(&server.name_any());
    let mut redis_revision = None;
    for name in referenced_secrets(server) {
        let found = secrets
            .get_opt(&name)
            .await
            .map_err(|source| Error::GetSecret {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        if let Some(secret) = found {
            if name == redis_secret {
                redis_revision = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|annotations| annotations.get(labels::PASSWORD_REVISION_ANNOTATION))
                    .cloned();
            }
            let resource_version = secret.metadata.resource_version.clone();
            let data = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.0));
            dereferenced = dereferenced.with_secret(&name, data);
            if let Some(version) = resource_version {
                dereferenced = dereferenced.with_resource_version(&name, &version);
            }
        }
    }
    if wants_managed_redis(server) {
        let existing = dereferenced
            .secret(&redis_secret)
            .and_then(|secret| secret.value(REDIS_PASSWORD_KEY))
            .and_then(|value| RedisPassword::stored(value.expose(), redis_revision.as_deref()));
        dereferenced.managed_redis_password =
            Some(existing.unwrap_or_else(RedisPassword::generate));
    }
    // Always asked, also when the spec wants no ServiceMonitor: pruning needs to know whether
    // the kind exists before it lists it. A cluster without the Prometheus Operator (kind, k3d)
    // answers 404 with a plain-text body, not a Status.
    dereferenced.service_monitor_crd = match client
        .list_api_group_resources(SERVICE_MONITOR_API_VERSION)
        .await
    {
        Ok(resources) => resources
            .resources
            .iter()
            .any(|resource| resource.name == "servicemonitors"),
        Err(error) if is_not_served(&error) => false,
        Err(source) => return Err(Error::DiscoverServiceMonitor { source }),
    };
    Ok(dereferenced)
}
