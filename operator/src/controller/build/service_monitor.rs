//! The Prometheus Operator ServiceMonitor (not in k8s-openapi, so a [`DynamicObject`]); built
//! only when the CRD is served.

use kube::{
    api::{ApiResource, DynamicObject, GroupVersionKind},
    core::ObjectMeta,
};
use serde_json::json;

use super::metadata;
use crate::labels::{self, Component};
use crate::server_contract::METRICS_PORT_NAME;
use crate::validate::{ServiceMonitorPlan, ValidatedCollabServer};
use crate::{names, server_contract};

/// The ServiceMonitor API resource (`monitoring.coreos.com/v1`, `servicemonitors`).
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

pub fn service_monitor(server: &ValidatedCollabServer) -> Option<DynamicObject> {
    let ServiceMonitorPlan::Create { interval, labels } = &server.service_monitor else {
        return None;
    };
    let mut metadata: ObjectMeta = metadata(server, names::server(&server.name), Component::Server);
    let object_labels = metadata.labels.get_or_insert_default();
    for (key, value) in labels {
        object_labels
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    let mut selector = labels::selector(&server.name, Component::Server);
    selector.insert(labels::METRICS_SERVICE_LABEL.to_owned(), "true".to_owned());
    let mut object = DynamicObject::new(&names::server(&server.name), &service_monitor_resource())
        .within(&server.namespace);
    object.metadata = metadata;
    object.data = json!({
        "spec": {
            "selector": { "matchLabels": selector },
            "endpoints": [{
                "port": METRICS_PORT_NAME,
                "path": server_contract::METRICS_PATH,
                "interval": interval,
            }],
        }
    });
    Some(object)
}
