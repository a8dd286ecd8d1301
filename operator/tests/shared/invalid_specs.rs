//! CollabServers the CRD's CEL rules must refuse, each with the one rule that refuses it and
//! words of that rule's message. Shared by the CEL interpreter test (`tests/integration/cel.rs`)
//! and the real API server suite (`tests/apiserver`), which applies every case to a real
//! kube-apiserver.

#![allow(dead_code)]

use serde_json::{Value, json};

/// One invalid CollabServer.
pub struct InvalidCase {
    /// `metadata.name`.
    pub name: String,
    pub spec: Value,
    /// Path of the value whose rule refuses it (`spec.auth`; `` for the root rule).
    pub path: &'static str,
    /// Words of the rule's message.
    pub words: &'static str,
    /// The kind of error the operator's own validation gives (`None`: not checked there).
    pub kind: Option<&'static str>,
}

fn case(
    name: &str,
    spec: Value,
    path: &'static str,
    words: &'static str,
    kind: Option<&'static str>,
) -> InvalidCase {
    InvalidCase {
        name: name.to_owned(),
        spec,
        path,
        words,
        kind,
    }
}

/// A spec every rule accepts: HS256 tokens from the Secret `jwt`.
pub fn base() -> Value {
    json!({ "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } } })
}

/// `base()` with top-level spec fields replaced.
pub fn spec_with(patch: Value) -> Value {
    let mut spec = base();
    if let (Some(spec), Some(patch)) = (spec.as_object_mut(), patch.as_object()) {
        for (key, value) in patch {
            spec.insert(key.clone(), value.clone());
        }
    }
    spec
}

/// Every invalid case.
pub fn invalid_cases() -> Vec<InvalidCase> {
    let too_long = "a".repeat(collab_operator::names::MAX_INSTANCE_NAME_LENGTH + 1);
    vec![
        case(
            &too_long,
            base(),
            "",
            "at most 55 characters",
            Some("NameTooLong"),
        ),
        case(
            "collab",
            json!({}),
            "spec",
            "no token check is configured",
            Some("NoAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": {} }),
            "spec",
            "no token check",
            Some("NoAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "allowAnonymous": false } }),
            "spec",
            "no token check",
            Some("NoAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "jwtSecretRef": { "name": "j", "key": "k" }, "jwksUrl": "https://idp/jwks" } }),
            "spec.auth",
            "only one of jwtSecretRef, jwksUrl and cognito",
            Some("ConflictingAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "jwksUrl": "https://idp/jwks", "cognito": { "userPoolId": "p", "region": "r" } } }),
            "spec.auth",
            "only one of",
            Some("ConflictingAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "jwksUrl": "https://idp/jwks", "allowAnonymous": true } }),
            "spec.auth",
            "allowAnonymous is true but",
            Some("AnonymousWithAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "allowAnonymous": true, "issuer": "https://idp" } }),
            "spec.auth",
            "issuer and audience need",
            Some("ClaimsWithoutAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "allowAnonymous": true, "audience": "editor" } }),
            "spec.auth",
            "issuer and audience need",
            Some("ClaimsWithoutAuthentication"),
        ),
        case(
            "collab",
            json!({ "auth": { "jwksUrl": "idp/jwks.json" } }),
            "spec.auth.jwksUrl",
            "https:// or http://",
            Some("InvalidJwksUrl"),
        ),
        case(
            "collab",
            json!({ "auth": { "jwksUrl": "https://idp/jwks .json" } }),
            "spec.auth.jwksUrl",
            "https:// or http://",
            Some("InvalidJwksUrl"),
        ),
        case(
            "collab",
            json!({ "auth": { "cognito": { "userPoolId": " ", "region": "eu-west-1" } } }),
            "spec.auth.cognito.userPoolId",
            "must not be empty",
            Some("InvalidCognito"),
        ),
        case(
            "collab",
            json!({ "auth": { "cognito": { "userPoolId": "p", "region": "" } } }),
            "spec.auth.cognito.region",
            "must not be empty",
            Some("InvalidCognito"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "redis": { "external": { "secretRef": { "name": "r", "key": "url" } }, "managed": {} } }),
            ),
            "spec.redis",
            "only one of external and managed",
            Some("ConflictingRedis"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "redis": { "external": { "secretRef": { "name": "r", "key": "url" } }, "managed": { "enabled": true } } }),
            ),
            "spec.redis",
            "only one of external and managed",
            Some("ConflictingRedis"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "autoscaling": { "enabled": true, "minReplicas": 5, "maxReplicas": 3 } }),
            ),
            "spec.autoscaling",
            "maxReplicas must not be below minReplicas",
            Some("InvalidAutoscaling"),
        ),
        case(
            "collab",
            spec_with(json!({ "autoscaling": { "enabled": true, "minReplicas": 11 } })),
            "spec.autoscaling",
            "omitted, they are 10 and 2",
            Some("InvalidAutoscaling"),
        ),
        case(
            "collab",
            spec_with(json!({ "autoscaling": { "enabled": true, "maxReplicas": 1 } })),
            "spec.autoscaling",
            "maxReplicas must not be below minReplicas",
            Some("InvalidAutoscaling"),
        ),
        case(
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "150%" } })),
            "spec.podDisruptionBudget.maxUnavailable",
            "percentage from 0% to 100%",
            Some("InvalidPodDisruptionBudget"),
        ),
        case(
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": -1 } })),
            "spec.podDisruptionBudget.maxUnavailable",
            "non-negative number",
            Some("InvalidPodDisruptionBudget"),
        ),
        case(
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "abc" } })),
            "spec.podDisruptionBudget.maxUnavailable",
            "non-negative number",
            Some("InvalidPodDisruptionBudget"),
        ),
        case(
            "collab",
            spec_with(json!({ "podDisruptionBudget": { "maxUnavailable": "1" } })),
            "spec.podDisruptionBudget.maxUnavailable",
            "non-negative number",
            Some("InvalidPodDisruptionBudget"),
        ),
        case(
            "collab",
            spec_with(json!({ "port": 9090 })),
            "spec.port",
            "the metrics port",
            Some("InvalidPort"),
        ),
        case(
            "collab",
            spec_with(json!({ "terminationGracePeriodSeconds": 14 })),
            "spec.terminationGracePeriodSeconds",
            "at least 15",
            Some("TerminationGracePeriodTooShort"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "env": [{ "name": "A", "value": "1" }, { "name": "DATABASE_URL", "value": "postgres://x" }] }),
            ),
            "spec.env",
            "a variable the operator sets from the spec",
            Some("ReservedEnvironmentVariable"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "podTemplate": { "labels": { "app.kubernetes.io/instance": "other" } } }),
            ),
            "spec.podTemplate.labels",
            "app.kubernetes.io/instance, app.kubernetes.io/component",
            Some("ReservedPodMetadata"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "podTemplate": { "annotations": { "app.kubernetes.io/managed-by": "me" } } }),
            ),
            "spec.podTemplate.annotations",
            "app.kubernetes.io/managed-by are reserved for the operator",
            Some("ReservedPodMetadata"),
        ),
        case(
            "collab",
            spec_with(json!({ "podTemplate": { "labels": { "collab.zedi.dev/metrics": "x" } } })),
            "spec.podTemplate.labels",
            "keys under collab.zedi.dev/ are reserved",
            Some("ReservedPodMetadata"),
        ),
        case(
            "collab",
            spec_with(
                json!({ "podTemplate": { "annotations": { "collab.zedi.dev/config-hash": "x" } } }),
            ),
            "spec.podTemplate.annotations",
            "keys under collab.zedi.dev/ are reserved for the operator",
            Some("ReservedPodMetadata"),
        ),
        case(
            "collab",
            spec_with(json!({ "ingress": { "enabled": true } })),
            "spec.ingress",
            "host is required",
            Some("InvalidIngress"),
        ),
        case(
            "collab",
            spec_with(json!({ "ingress": { "enabled": true, "host": "" } })),
            "spec.ingress",
            "host is required",
            Some("InvalidIngress"),
        ),
        case(
            "collab",
            spec_with(json!({ "webhook": { "url": "hooks.example/collab" } })),
            "spec.webhook.url",
            "https:// or http://",
            Some("InvalidWebhookUrl"),
        ),
        case(
            "collab",
            spec_with(json!({ "ingress": { "enabled": true, "host": "h", "path": "sync" } })),
            "spec.ingress.path",
            "must start with /",
            Some("InvalidIngress"),
        ),
    ]
}
