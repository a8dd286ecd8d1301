//! The pods' ServiceAccount: no API access, no mounted token.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::validate::ValidatedCollabServer;

pub fn service_account(server: &ValidatedCollabServer) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(server, names::server(&server.name), Component::Server),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}
