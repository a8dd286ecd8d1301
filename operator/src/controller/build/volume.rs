//! The embedded SQLite database's PersistentVolumeClaim (only without `spec.database`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::validate::{Storage, ValidatedCollabServer};

pub fn data_volume(server: &ValidatedCollabServer) -> Option<PersistentVolumeClaim> {
    let Storage::Sqlite {
        size,
        storage_class_name,
    } = &server.storage
    else {
        return None;
    };
    Some(PersistentVolumeClaim {
        metadata: metadata(server, names::data_volume(&server.name), Component::Server),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: storage_class_name.clone(),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}
