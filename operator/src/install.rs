//! `--apply-crd`: the operator installs or upgrades its own CustomResourceDefinition at start-up
//! (server-side apply, field manager `collab-operator`, forced), because Helm installs a chart's
//! `crds/` once and never upgrades it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
};

use crate::labels;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "--apply-crd: not allowed to apply the CustomResourceDefinition {name} ({message}); grant the operator's ServiceAccount get, create and patch on customresourcedefinitions (the chart does when it sets --apply-crd), or run without --apply-crd and apply crds/collabserver.yaml yourself"
    )]
    Forbidden { name: String, message: String },

    #[error("--apply-crd: failed to apply the CustomResourceDefinition {name}: {source}")]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("the CustomResourceDefinition has no name")]
    Unnamed,
}

/// The parameters of the apply: the operator's field manager, forced (the operator owns its CRD).
pub fn patch_params() -> PatchParams {
    PatchParams::apply(labels::MANAGER).force()
}

/// Server-side applies `crd` and returns the stored object.
pub async fn apply_crd(
    client: Client,
    crd: &CustomResourceDefinition,
) -> Result<CustomResourceDefinition, Error> {
    let name = crd.metadata.name.clone().ok_or(Error::Unnamed)?;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    match api.patch(&name, &patch_params(), &Patch::Apply(crd)).await {
        Ok(applied) => {
            tracing::info!(
                crd = %applied.name_any(),
                resource_version = applied.resource_version().unwrap_or_default(),
                "applied the CustomResourceDefinition"
            );
            Ok(applied)
        }
        Err(kube::Error::Api(status)) if status.code == 403 => Err(Error::Forbidden {
            name,
            message: status.message,
        }),
        Err(source) => Err(Error::Apply { name, source }),
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    /// Answers one request with `status` and `reply`, returning what was asked.
    async fn one_call(
        status: StatusCode,
        reply: Value,
    ) -> (Result<(), Error>, String, String, Value) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let (request, send) = handle.next_request().await.expect("one request");
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
            (method, uri, body)
        });
        let result = apply_crd(client, &crate::crd::crd()).await.map(|_| ());
        let (method, uri, body) = server.await.unwrap();
        (result, method, uri, body)
    }

    #[tokio::test]
    async fn the_crd_is_server_side_applied_with_force_as_collab_operator() {
        let crd = serde_json::to_value(crate::crd::crd()).unwrap();
        let (result, method, uri, body) = one_call(StatusCode::OK, crd.clone()).await;
        result.expect("applied");
        assert_eq!(method, "PATCH");
        assert!(
            uri.starts_with(
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/collabservers.collab.zedi.dev?"
            ),
            "{uri}"
        );
        assert!(uri.contains("fieldManager=collab-operator"), "{uri}");
        assert!(uri.contains("force=true"), "{uri}");
        assert_eq!(body, crd);
    }

    #[tokio::test]
    async fn a_forbidden_apply_says_what_permission_is_missing() {
        let (result, ..) = one_call(
            StatusCode::FORBIDDEN,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "Forbidden", "code": 403,
                "message": "customresourcedefinitions.apiextensions.k8s.io \"collabservers.collab.zedi.dev\" is forbidden",
            }),
        )
        .await;
        let error = result.expect_err("forbidden");
        assert!(matches!(error, Error::Forbidden { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("get, create and patch on customresourcedefinitions"),
            "{message}"
        );
    }
}
