//! The server's non-secret environment, from [`server_contract::environment`]; the pods take
//! it with `envFrom`. Secret-backed variables never appear here.

use k8s_openapi::api::core::v1::ConfigMap;

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::server_contract::{self, EnvValue};
use crate::validate::ValidatedCollabServer;

pub fn config_map(server: &ValidatedCollabServer) -> ConfigMap {
    let data = server_contract::environment(server)
        .into_iter()
        .filter_map(|variable| match variable.value {
            EnvValue::Literal(value) => Some((variable.name.to_owned(), value)),
            EnvValue::Secret(_) => None,
        })
        .collect();
    ConfigMap {
        metadata: metadata(server, names::config_map(&server.name), Component::Server),
        data: Some(data),
        ..ConfigMap::default()
    }
}
