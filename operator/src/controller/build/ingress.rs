//! The Ingress to the client Service (only with `spec.ingress.enabled`), with TLS for the host
//! when `tlsSecretName` is set. WebSockets need the controller to keep idle connections open
//! (ingress-nginx: `nginx.ingress.kubernetes.io/proxy-read-timeout`); those settings are the
//! user's annotations.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::metadata;
use crate::labels::Component;
use crate::names;
use crate::server_contract::HTTP_PORT_NAME;
use crate::validate::ValidatedCollabServer;

pub fn ingress(server: &ValidatedCollabServer) -> Option<Ingress> {
    let ingress = server.ingress.as_ref()?;
    let mut metadata = metadata(server, names::server(&server.name), Component::Server);
    if !ingress.annotations.is_empty() {
        metadata.annotations = Some(ingress.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ingress.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(ingress.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(ingress.path.clone()),
                        path_type: "Prefix".to_owned(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::server(&server.name),
                                port: Some(ServiceBackendPort {
                                    name: Some(HTTP_PORT_NAME.to_owned()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: ingress.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![ingress.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            default_backend: None,
        }),
        ..Ingress::default()
    })
}
