//! Two Services: the client-facing one (WebSocket port, the spec's type and annotations) and
//! `<name>-metrics` (ClusterIP, metrics port), so a LoadBalancer never exposes metrics.

use k8s_openapi::{
    api::core::v1::{Service, ServicePort, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::metadata;
use crate::labels::{self, Component};
use crate::server_contract::{HTTP_PORT_NAME, METRICS_PORT_NAME};
use crate::validate::ValidatedCollabServer;
use crate::{names, server_contract};

pub fn client_service(server: &ValidatedCollabServer) -> Service {
    let mut metadata = metadata(server, names::server(&server.name), Component::Server);
    if !server.service_annotations.is_empty() {
        metadata.annotations = Some(server.service_annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(server.service_type.as_str().to_owned()),
            selector: Some(labels::selector(&server.name, Component::Server)),
            ports: Some(vec![port(HTTP_PORT_NAME, i32::from(server.port))]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn metrics_service(server: &ValidatedCollabServer) -> Service {
    let mut metadata = metadata(
        server,
        names::metrics_service(&server.name),
        Component::Server,
    );
    metadata
        .labels
        .get_or_insert_default()
        .insert(labels::METRICS_SERVICE_LABEL.to_owned(), "true".to_owned());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(labels::selector(&server.name, Component::Server)),
            ports: Some(vec![port(
                METRICS_PORT_NAME,
                i32::from(server_contract::METRICS_PORT),
            )]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}
