//! Reconcile scenarios against the fake API server in [`crate::fixtures`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use kube::core::{DeserializeGuard, ObjectMeta, error_boundary::InvalidObject};
use serde_json::{Value, json};

use super::*;
use crate::fixtures::{self, Call, Existing, NAME, NAMESPACE, World};

const JWT_VALUE: &str = "jwt-shared-secret-value";
const DATABASE_VALUE: &str = "postgres://app:database-password@db.team.svc/app";
const REDIS_VALUE: &str = "rediss://:redis-password@redis.example:6380";

fn guard(server: &CollabServer) -> Arc<DeserializeGuard<CollabServer>> {
    Arc::new(DeserializeGuard(Ok(server.clone())))
}

fn production_spec() -> Value {
    json!({
        "replicas": 2,
        "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } },
        "database": { "secretRef": { "name": "db" } },
        "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } },
    })
}

fn production_secrets() -> Vec<Value> {
    vec![
        fixtures::secret("jwt", &[("secret", JWT_VALUE)]),
        fixtures::secret("db", &[("DATABASE_URL", DATABASE_VALUE)]),
        fixtures::secret("redis", &[("url", REDIS_VALUE)]),
    ]
}

fn ready(replicas: i32) -> DeploymentStatus {
    DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..DeploymentStatus::default()
    }
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

fn status_body(calls: &[Call]) -> &Value {
    &calls
        .iter()
        .find(|call| call.method == "PATCH" && call.path.ends_with("/status"))
        .expect("a status patch")
        .body["status"]
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|condition| condition["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn assert_no_secret_values(calls: &[Call], values: &[&str]) {
    for call in calls {
        let text = call.body.to_string();
        for value in values {
            assert!(
                !text.contains(value),
                "{} sent a Secret value: {text}",
                call.line()
            );
        }
    }
}

#[tokio::test]
async fn new_collab_server_is_applied_in_order_and_reported_available() {
    let server = fixtures::collab_server(production_spec());
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        deployment_status: Some(ready(2)),
        ..World::default()
    });

    let action = reconcile(guard(&server), context.clone())
        .await
        .expect("reconcile succeeds");
    assert_eq!(action, Action::requeue(RESYNC));
    let calls = fixtures::finish(context, api).await;

    let ns = format!("namespaces/{NAMESPACE}");
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET /api/v1/{ns}/secrets/db"),
            format!("GET /api/v1/{ns}/secrets/jwt"),
            format!("GET /api/v1/{ns}/secrets/redis"),
            // Discovery, not assumption: this cluster has no ServiceMonitor API ...
            "GET /apis/monitoring.coreos.com/v1".to_owned(),
            format!("PATCH /api/v1/{ns}/serviceaccounts/{NAME}"),
            format!("PATCH /api/v1/{ns}/services/{NAME}"),
            format!("PATCH /api/v1/{ns}/services/{NAME}-metrics"),
            format!("PATCH /apis/apps/v1/{ns}/deployments/{NAME}"),
            format!("PATCH /apis/apps/v1/{ns}/deployments/{NAME}"),
            format!("PATCH /apis/policy/v1/{ns}/poddisruptionbudgets/{NAME}"),
            format!("GET /api/v1/{ns}/secrets"),
            format!("GET /api/v1/{ns}/serviceaccounts"),
            format!("GET /api/v1/{ns}/configmaps"),
            format!("GET /apis/networking.k8s.io/v1/{ns}/networkpolicies"),
            format!("GET /api/v1/{ns}/services"),
            format!("GET /apis/apps/v1/{ns}/deployments"),
            format!("GET /apis/policy/v1/{ns}/poddisruptionbudgets"),
            format!("GET /apis/autoscaling/v2/{ns}/horizontalpodautoscalers"),
            format!("GET /apis/networking.k8s.io/v1/{ns}/ingresses"),
            // ... so no ServiceMonitor is listed to prune.
            format!("PATCH /apis/collab.zedi.dev/v1alpha1/{ns}/collabservers/{NAME}/status"),
            format!("POST /apis/events.k8s.io/v1/{ns}/events"),
        ]
    );

    let patches: Vec<&Call> = calls.iter().filter(|call| call.method == "PATCH").collect();
    for call in &patches {
        assert!(
            call.query.contains("force=true"),
            "{} not forced",
            call.line()
        );
        assert!(
            call.body["metadata"]["ownerReferences"].is_array()
                || call.path.ends_with("/status")
                || call.field_manager() == Some(apply::REPLICAS_FIELD_MANAGER),
            "{} has no owner reference",
            call.line()
        );
    }
    let deployment_applies: Vec<&&Call> = patches
        .iter()
        .filter(|call| call.path.ends_with(&format!("deployments/{NAME}")))
        .collect();
    assert_eq!(
        deployment_applies[0].field_manager(),
        Some(apply::FIELD_MANAGER)
    );
    assert!(deployment_applies[0].body["spec"].get("replicas").is_none());
    assert_eq!(
        deployment_applies[1].field_manager(),
        Some(apply::REPLICAS_FIELD_MANAGER)
    );
    assert_eq!(deployment_applies[1].body["spec"], json!({"replicas": 2}));

    let status = status_body(&calls);
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["replicas"], 2);
    assert_eq!(status["readyReplicas"], 2);
    assert_eq!(
        status["endpoint"],
        format!("ws://{NAME}.{NAMESPACE}.svc:1234")
    );
    assert_eq!(
        status["selector"],
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=docs,app.kubernetes.io/name=collab-server"
    );
    assert_eq!(condition(status, "Available")["status"], "True");
    assert_eq!(
        condition(status, "Available")["reason"],
        "ReplicasAvailable"
    );
    assert_eq!(
        condition(status, "Progressing")["reason"],
        "RolloutComplete"
    );
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(condition(status, "Reconciled")["status"], "True");
    assert_eq!(
        condition(status, "Reconciled")["reason"],
        "ReconcileSucceeded"
    );
    assert_eq!(
        condition(status, "Available")["lastTransitionTime"],
        "2026-01-02T03:04:05Z"
    );
    // The configuration is literal in the pod template, and the template names the
    // resourceVersions of the Secrets the pods read, nothing derived from their values.
    let deployment = &deployment_applies[0].body;
    let template = &deployment["spec"]["template"];
    let env = template["spec"]["containers"][0]["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|var| var["name"] == "PORT" && var["value"] == "1234")
    );
    assert!(env.iter().any(
        |var| var["name"] == "JWT_SECRET" && var["valueFrom"]["secretKeyRef"]["name"] == "jwt"
    ));
    assert!(template["spec"]["containers"][0].get("envFrom").is_none());
    assert_eq!(
        template["metadata"]["annotations"][crate::labels::SECRET_VERSIONS_ANNOTATION],
        "db:1,jwt:1,redis:1"
    );

    let event = calls.last().unwrap();
    assert_eq!(event.body["reason"], "Applied");
    assert_eq!(event.body["type"], "Normal");
    assert_no_secret_values(
        &calls[3..],
        &[JWT_VALUE, "database-password", "redis-password"],
    );
}

#[tokio::test]
async fn missing_secret_sets_the_failure_condition_and_applies_nothing() {
    let server = fixtures::collab_server(json!({
        "replicas": 1,
        "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } },
    }));
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        ..World::default()
    });

    let error = reconcile(guard(&server), context.clone())
        .await
        .expect_err("a missing Secret fails the reconcile");
    assert_eq!(error.kind(), "SecretNotFound");
    let action = error_policy(guard(&server), &error, context.clone());
    assert_eq!(action, Action::requeue(BACKOFF_START));
    assert!(
        context
            .metrics
            .render()
            .contains("collab_operator_reconcile_failures_total{error=\"SecretNotFound\"} 1")
    );
    let calls = fixtures::finish(context, api).await;

    let ns = format!("namespaces/{NAMESPACE}");
    assert_eq!(
        lines(&calls),
        vec![
            format!("GET /api/v1/{ns}/secrets/jwt"),
            "GET /apis/monitoring.coreos.com/v1".to_owned(),
            format!("GET /apis/apps/v1/{ns}/deployments/{NAME}"),
            format!("PATCH /apis/collab.zedi.dev/v1alpha1/{ns}/collabservers/{NAME}/status"),
            format!("POST /apis/events.k8s.io/v1/{ns}/events"),
        ]
    );
    let status = status_body(&calls);
    let reconciled = condition(status, "Reconciled");
    assert_eq!(reconciled["status"], "False");
    assert_eq!(reconciled["reason"], "SecretNotFound");
    assert!(
        reconciled["message"].as_str().unwrap().ends_with(
            "spec.auth.jwtSecretRef: Secret team/jwt not found: create it or correct the name"
        ),
        "{reconciled}"
    );
    // Nothing was ever deployed: that is what the workload conditions say.
    assert_eq!(condition(status, "Available")["status"], "False");
    assert_eq!(condition(status, "Available")["reason"], "NotDeployed");
    assert_eq!(condition(status, "Progressing")["status"], "False");
    assert_eq!(condition(status, "Degraded")["reason"], "NotDeployed");
    assert_eq!(status["observedGeneration"], 3);
    let event = &calls[4].body;
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "SecretNotFound");
}

#[tokio::test]
async fn spec_change_deletes_what_is_no_longer_wanted() {
    let mut spec = production_spec();
    spec["podDisruptionBudget"] = json!({ "enabled": false });
    let server = fixtures::collab_server(spec);
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        existing: vec![
            Existing {
                plural: "horizontalpodautoscalers",
                name: NAME,
                owned: true,
            },
            Existing {
                plural: "poddisruptionbudgets",
                name: NAME,
                owned: true,
            },
            Existing {
                plural: "deployments",
                name: "docs-redis",
                owned: true,
            },
            Existing {
                plural: "deployments",
                name: NAME,
                owned: true,
            },
            Existing {
                plural: "horizontalpodautoscalers",
                name: "hand-made",
                owned: false,
            },
        ],
        ..World::default()
    });

    reconcile(guard(&server), context.clone())
        .await
        .expect("reconcile succeeds");
    let calls = fixtures::finish(context, api).await;

    let ns = format!("namespaces/{NAMESPACE}");
    let deletes: Vec<String> = calls
        .iter()
        .filter(|call| call.method == "DELETE")
        .map(Call::line)
        .collect();
    assert_eq!(
        deletes,
        vec![
            format!("DELETE /apis/apps/v1/{ns}/deployments/docs-redis"),
            format!("DELETE /apis/policy/v1/{ns}/poddisruptionbudgets/{NAME}"),
            format!("DELETE /apis/autoscaling/v2/{ns}/horizontalpodautoscalers/{NAME}"),
        ]
    );
    assert!(
        !lines(&calls).contains(&format!(
            "PATCH /apis/policy/v1/{ns}/poddisruptionbudgets/{NAME}"
        )),
        "a disabled PodDisruptionBudget is not applied"
    );
    let deleted_events: Vec<&str> = calls
        .iter()
        .filter(|call| call.body["reason"] == "Deleted")
        .map(|call| call.body["note"].as_str().unwrap())
        .collect();
    assert_eq!(
        deleted_events,
        vec![
            "deleted Deployment docs-redis: the spec no longer asks for it",
            "deleted PodDisruptionBudget docs: the spec no longer asks for it",
            "deleted HorizontalPodAutoscaler docs: the spec no longer asks for it",
        ]
    );
}

#[tokio::test]
async fn managed_redis_keeps_the_password_it_already_stored() {
    const STORED: &str = "StoredPassword0123456789abcdef";
    let mut spec = production_spec();
    spec["redis"] = json!({ "managed": {} });
    let server = fixtures::collab_server(spec);
    let mut secrets = production_secrets();
    secrets.push(fixtures::secret(
        "docs-redis",
        &[("password", STORED), ("url", "x")],
    ));
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets,
        ..World::default()
    });

    reconcile(guard(&server), context.clone())
        .await
        .expect("reconcile succeeds");
    let calls = fixtures::finish(context, api).await;

    let applied_secret = calls
        .iter()
        .find(|call| call.method == "PATCH" && call.path.ends_with("/secrets/docs-redis"))
        .expect("the Redis Secret is applied");
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(applied_secret.body.clone()).unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0, STORED.as_bytes());
    assert_eq!(
        String::from_utf8(data["url"].0.clone()).unwrap(),
        format!("redis://:{STORED}@docs-redis.team.svc:6379")
    );
    // The password reaches Redis and the server only through secretKeyRef.
    assert_no_secret_values(
        &calls
            .iter()
            .filter(|call| !call.path.ends_with("/secrets/docs-redis"))
            .cloned()
            .collect::<Vec<_>>(),
        &[STORED],
    );
    let status = status_body(&calls);
    assert_eq!(
        condition(status, "Available")["reason"],
        "NoReplicasAvailable"
    );
    assert_eq!(condition(status, "Progressing")["status"], "True");
}

#[tokio::test]
async fn malformed_object_gets_a_condition_instead_of_a_crash() {
    let server = fixtures::collab_server(json!({ "allowAnonymous": true }));
    let invalid = Arc::new(DeserializeGuard::<CollabServer>(Err(InvalidObject {
        error: "spec.replicas: invalid type: string \"two\", expected i32".to_owned(),
        metadata: ObjectMeta {
            name: Some(NAME.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            generation: Some(7),
            ..ObjectMeta::default()
        },
    })));
    let (context, api) = fixtures::context(World {
        server: Some(server),
        ..World::default()
    });

    let error = reconcile(invalid, context.clone())
        .await
        .expect_err("invalid objects fail");
    assert_eq!(error.kind(), "InvalidObject");
    let calls = fixtures::finish(context, api).await;

    assert_eq!(calls.len(), 3, "{:?}", lines(&calls));
    let status = status_body(&calls);
    assert_eq!(status["observedGeneration"], 7);
    assert_eq!(condition(status, "Reconciled")["reason"], "InvalidObject");
    assert!(
        condition(status, "Reconciled")["message"]
            .as_str()
            .unwrap()
            .contains("expected i32")
    );
}

#[tokio::test]
async fn paused_collab_server_only_reports_that_it_is_paused() {
    let mut spec = production_spec();
    spec["paused"] = json!(true);
    let server = fixtures::collab_server(spec);
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        ..World::default()
    });

    let action = reconcile(guard(&server), context.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let calls = fixtures::finish(context, api).await;

    assert_eq!(calls.len(), 1, "{:?}", lines(&calls));
    let status = status_body(&calls);
    assert_eq!(condition(status, "Progressing")["reason"], "Paused");
    assert_eq!(condition(status, "Available")["status"], "Unknown");
}

#[tokio::test]
async fn service_monitor_is_applied_when_its_crd_is_served() {
    let mut spec = production_spec();
    spec["monitoring"] =
        json!({ "serviceMonitor": { "enabled": true, "labels": { "release": "prom" } } });
    let server = fixtures::collab_server(spec);
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        service_monitor_crd: true,
        ..World::default()
    });

    reconcile(guard(&server), context.clone()).await.unwrap();
    let calls = fixtures::finish(context, api).await;

    let monitor = calls
        .iter()
        .find(|call| call.method == "PATCH" && call.path.contains("/servicemonitors/"))
        .expect("the ServiceMonitor is applied");
    assert_eq!(
        monitor.path,
        format!("/apis/monitoring.coreos.com/v1/namespaces/{NAMESPACE}/servicemonitors/{NAME}")
    );
    assert_eq!(monitor.body["metadata"]["labels"]["release"], "prom");
    assert_eq!(monitor.body["spec"]["endpoints"][0]["port"], "metrics");
}

#[test]
fn backoff_doubles_per_failure_up_to_five_minutes() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let (context, _api) = fixtures::context(World::default());
    let delays: Vec<u64> = (0..8)
        .map(|_| context.backoff("team/docs").as_secs())
        .collect();
    assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
    context.succeeded("team/docs");
    assert_eq!(context.backoff("team/docs").as_secs(), 5);
    assert_eq!(context.backoff("team/other").as_secs(), 5);
}

#[test]
fn failures_of_objects_that_stopped_failing_are_forgotten() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let (context, _api) = fixtures::context(World::default());
    let start = std::time::Instant::now();
    context.backoff_at("team/deleted", start);
    context.backoff_at("team/docs", start);
    assert_eq!(context.failing(), 2);
    // Still failing every 5 minutes: the count is kept.
    let later = start + BACKOFF_MAX;
    assert_eq!(context.backoff_at("team/docs", later), BACKOFF_START * 2);
    // The deleted object's entry goes once it has not failed for FAILURE_MEMORY.
    let much_later = start + FAILURE_MEMORY + Duration::from_secs(1);
    assert_eq!(
        context.backoff_at("team/docs", much_later),
        BACKOFF_START * 4
    );
    assert_eq!(context.failing(), 1);
}

#[tokio::test]
async fn an_unchanged_spec_is_reapplied_without_an_applied_event() {
    let mut server = fixtures::collab_server(production_spec());
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        deployment_status: Some(ready(2)),
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let first = fixtures::finish(context, api).await;
    let status: crate::crd::CollabServerStatus =
        serde_json::from_value(status_body(&first).clone()).unwrap();
    assert!(status.applied_hash.is_some());

    server.status = Some(status);
    let (context, api) = fixtures::context_at(
        World {
            server: Some(server.clone()),
            secrets: production_secrets(),
            deployment_status: Some(ready(2)),
            ..World::default()
        },
        fixtures::later_time,
    );
    reconcile(guard(&server), context.clone()).await.unwrap();
    let second = fixtures::finish(context, api).await;

    assert!(
        second.iter().all(|call| !call.path.contains("/events")),
        "no Event when nothing changed: {:?}",
        lines(&second)
    );
    // Unchanged conditions keep their transition time.
    assert_eq!(
        condition(status_body(&second), "Available")["lastTransitionTime"],
        "2026-01-02T03:04:05Z"
    );
    // A rotated Secret (a new resourceVersion) changes the pod template: the pods roll and an
    // Event says so.
    let mut rotated = production_secrets();
    rotated[0] = fixtures::secret_at("jwt", "2", &[("secret", "rotated-jwt-value")]);
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: rotated,
        deployment_status: Some(ready(2)),
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let third = fixtures::finish(context, api).await;
    assert_eq!(third.last().unwrap().body["reason"], "Applied");
}

fn deployment_condition(type_: &str, status: &str, reason: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        ..DeploymentCondition::default()
    }
}

#[tokio::test]
async fn a_failed_apply_leaves_available_as_the_pods_are() {
    let server = fixtures::collab_server(production_spec());
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        deployment_status: Some(ready(2)),
        deployment_exists: true,
        fail_patch: Some("/services/docs-metrics"),
        ..World::default()
    });

    let error = reconcile(guard(&server), context.clone())
        .await
        .expect_err("the apply fails");
    assert_eq!(error.kind(), "ApplyFailed");
    let calls = fixtures::finish(context, api).await;

    let status = status_body(&calls);
    assert_eq!(condition(status, "Available")["status"], "True");
    assert_eq!(
        condition(status, "Available")["reason"],
        "ReplicasAvailable"
    );
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(condition(status, "Reconciled")["status"], "False");
    assert_eq!(condition(status, "Reconciled")["reason"], "ApplyFailed");
    assert_eq!(status["readyReplicas"], 2);
    let event = calls.last().unwrap();
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "ApplyFailed");
}

#[tokio::test]
async fn a_failed_reconcile_still_reports_a_stuck_rollout() {
    let server = fixtures::collab_server(production_spec());
    let stuck = DeploymentStatus {
        conditions: Some(vec![deployment_condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
        )]),
        updated_replicas: Some(1),
        ..ready(2)
    };
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        deployment_status: Some(stuck),
        deployment_exists: true,
        ..World::default()
    });
    reconcile(guard(&server), context.clone())
        .await
        .expect_err("the Secrets are missing");
    let calls = fixtures::finish(context, api).await;
    let status = status_body(&calls);
    assert_eq!(condition(status, "Progressing")["reason"], "RolloutStuck");
    assert_eq!(condition(status, "Degraded")["reason"], "RolloutStuck");
    assert_eq!(condition(status, "Available")["status"], "True");
    assert_eq!(condition(status, "Reconciled")["reason"], "SecretNotFound");
}

#[tokio::test]
async fn unreadable_workloads_keep_the_previous_conditions() {
    let mut server = fixtures::collab_server(production_spec());
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        deployment_status: Some(ready(2)),
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let first = fixtures::finish(context, api).await;
    server.status = Some(serde_json::from_value(status_body(&first).clone()).unwrap());

    let (context, api) = fixtures::context_at(
        World {
            server: Some(server.clone()),
            fail_get_deployments: true,
            ..World::default()
        },
        fixtures::later_time,
    );
    reconcile(guard(&server), context.clone())
        .await
        .expect_err("the Secrets are missing");
    let calls = fixtures::finish(context, api).await;
    let status = status_body(&calls);
    let available = condition(status, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["lastTransitionTime"], "2026-01-02T03:04:05Z");
    let reconciled = condition(status, "Reconciled");
    assert_eq!(reconciled["status"], "False");
    assert_eq!(reconciled["lastTransitionTime"], "2026-01-02T04:00:00Z");
    // Why the workloads are unknown is said, not swallowed (a real API server's 403 under
    // too narrow RBAC looked exactly like this).
    let message = reconciled["message"].as_str().unwrap();
    assert!(
        message.contains("the workloads could not be read"),
        "{message}"
    );
}

#[tokio::test]
async fn managed_redis_readiness_is_part_of_the_conditions() {
    let mut spec = production_spec();
    spec["redis"] = json!({ "managed": {} });
    let server = fixtures::collab_server(spec);
    let not_ready = DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(1),
        updated_replicas: Some(1),
        ..DeploymentStatus::default()
    };
    for (redis, degraded) in [(not_ready, "RedisUnavailable"), (ready(1), "AsExpected")] {
        let (context, api) = fixtures::context(World {
            server: Some(server.clone()),
            secrets: production_secrets(),
            deployment_status: Some(ready(2)),
            redis_status: Some(redis),
            ..World::default()
        });
        reconcile(guard(&server), context.clone()).await.unwrap();
        let calls = fixtures::finish(context, api).await;
        let status = status_body(&calls);
        assert_eq!(condition(status, "Degraded")["reason"], degraded);
        assert_eq!(condition(status, "Available")["status"], "True");
    }
}

#[tokio::test]
async fn an_immutable_volume_change_is_a_condition_and_the_rest_is_applied() {
    let server = fixtures::collab_server(json!({
        "auth": { "allowAnonymous": true },
        "sqlite": { "storageClassName": "fast" },
    }));
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        deployment_status: Some(ready(1)),
        invalid_patch: Some("/persistentvolumeclaims/docs-data"),
        ..World::default()
    });
    reconcile(guard(&server), context.clone())
        .await
        .expect("the reconcile goes on past the volume");
    let calls = fixtures::finish(context, api).await;
    assert!(
        lines(&calls).contains(&format!(
            "PATCH /apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}"
        )),
        "the Deployment is applied: {:?}",
        lines(&calls)
    );
    let status = status_body(&calls);
    let degraded = condition(status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "VolumeUnchanged");
    assert!(degraded["message"].as_str().unwrap().contains("immutable"));
    assert_eq!(condition(status, "Reconciled")["status"], "True");
    assert_eq!(condition(status, "Available")["status"], "True");
}

#[tokio::test]
async fn a_minimal_collab_server_becomes_available_not_degraded() {
    let server = fixtures::collab_server(json!({ "auth": { "allowAnonymous": true } }));
    let complete = DeploymentStatus {
        conditions: Some(vec![deployment_condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
        )]),
        ..ready(1)
    };
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        deployment_status: Some(complete),
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let calls = fixtures::finish(context, api).await;
    let replicas = calls
        .iter()
        .find(|call| call.field_manager() == Some(apply::REPLICAS_FIELD_MANAGER))
        .expect("the replicas are applied");
    assert_eq!(replicas.body["spec"]["replicas"], 1);
    let status = status_body(&calls);
    assert_eq!(condition(status, "Available")["status"], "True");
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(condition(status, "Degraded")["reason"], "AsExpected");
    assert_eq!(
        condition(status, "Progressing")["reason"],
        "RolloutComplete"
    );
    assert_eq!(condition(status, "Reconciled")["status"], "True");
}

#[tokio::test]
async fn ingress_and_network_policy_are_applied_and_pruned_when_dropped() {
    let mut spec = production_spec();
    spec["ingress"] =
        json!({ "enabled": true, "host": "docs.example.com", "tlsSecretName": "docs-tls" });
    spec["networkPolicy"] = json!({ "enabled": true });
    let server = fixtures::collab_server(spec);
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let calls = fixtures::finish(context, api).await;
    let ns = format!("namespaces/{NAMESPACE}");
    let ingress = calls
        .iter()
        .find(|call| {
            call.line() == format!("PATCH /apis/networking.k8s.io/v1/{ns}/ingresses/{NAME}")
        })
        .expect("the Ingress is applied");
    assert_eq!(ingress.body["spec"]["tls"][0]["secretName"], "docs-tls");
    assert_eq!(
        ingress.body["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        NAME
    );
    assert!(lines(&calls).contains(&format!(
        "PATCH /apis/networking.k8s.io/v1/{ns}/networkpolicies/{NAME}"
    )));

    // Dropped from the spec: both are deleted.
    let server = fixtures::collab_server(production_spec());
    let (context, api) = fixtures::context(World {
        server: Some(server.clone()),
        secrets: production_secrets(),
        existing: vec![
            Existing {
                plural: "ingresses",
                name: NAME,
                owned: true,
            },
            Existing {
                plural: "networkpolicies",
                name: NAME,
                owned: true,
            },
            Existing {
                plural: "configmaps",
                name: "docs-config",
                owned: true,
            },
        ],
        ..World::default()
    });
    reconcile(guard(&server), context.clone()).await.unwrap();
    let calls = fixtures::finish(context, api).await;
    let deletes: Vec<String> = calls
        .iter()
        .filter(|call| call.method == "DELETE")
        .map(Call::line)
        .collect();
    assert_eq!(
        deletes,
        vec![
            format!("DELETE /api/v1/{ns}/configmaps/docs-config"),
            format!("DELETE /apis/networking.k8s.io/v1/{ns}/networkpolicies/{NAME}"),
            format!("DELETE /apis/networking.k8s.io/v1/{ns}/ingresses/{NAME}"),
        ]
    );
}
