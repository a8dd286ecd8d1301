#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use super::*;
use crate::fixtures;

const JWT: &str = "jwt-secret-value";

fn secrets() -> Dereferenced {
    Dereferenced::default()
        .with_secret("jwt", [("secret", JWT)])
        .with_secret("db", [("DATABASE_URL", "postgres://u:p@db/app")])
        .with_secret(
            "cnpg-app",
            [
                ("host", "pg-rw"),
                ("port", "5432"),
                ("dbname", "app"),
                ("username", "app"),
                ("password", "pw"),
                ("uri", "postgresql://app:pw@pg-rw:5432/app"),
            ],
        )
        .with_secret(
            "cnpg-parts",
            [("host", "pg-rw"), ("dbname", "zedi"), ("password", "pw")],
        )
        .with_secret("no-dbname", [("host", "pg-rw"), ("password", "pw")])
        .with_secret("api", [("secret", "api-secret")])
        .with_secret("hook", [("secret", "hook-secret")])
        .with_secret("mysql", [("DATABASE_URL", "mysql://u:secretpw@db/app")])
        .with_secret("garbage", [("DATABASE_URL", "hunter2-not-a-url")])
        .with_secret("redis", [("url", "rediss://:pw@redis:6380")])
        .with_secret("http-redis", [("url", "http://redis")])
}

fn base() -> Value {
    json!({
        "replicas": 1,
        "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } },
    })
}

fn with(mut spec: Value, patch: Value) -> Value {
    for (key, value) in patch.as_object().unwrap() {
        spec[key] = value.clone();
    }
    spec
}

fn run(spec: Value) -> Result<ValidatedCollabServer, Error> {
    run_with(spec, &secrets())
}

fn run_with(spec: Value, dereferenced: &Dereferenced) -> Result<ValidatedCollabServer, Error> {
    validate(
        &fixtures::collab_server(spec),
        dereferenced,
        &OperatorDefaults::default(),
    )
}

fn rejected(spec: Value) -> Error {
    run(spec).expect_err("the spec is rejected")
}

fn postgres() -> Value {
    json!({ "secretRef": { "name": "db" } })
}

fn external_redis() -> Value {
    json!({ "external": { "secretRef": { "name": "redis", "key": "url" } } })
}

#[test]
fn defaults_are_resolved_for_a_minimal_spec() {
    let server = run(base()).unwrap();
    assert_eq!(server.image, DEFAULT_SERVER_IMAGE);
    assert_eq!(server.port, 1234);
    assert_eq!(server.log_format, LogFormat::Json);
    assert_eq!(server.scaling, Scaling::Fixed { replicas: 1 });
    assert_eq!(
        server.shutdown,
        Shutdown {
            termination_grace_period_seconds: 35,
            server_timeout_seconds: 25
        }
    );
    assert_eq!(server.pod_disruption_budget, Some(IntOrString::Int(1)));
    assert_eq!(server.service_type, ServiceType::ClusterIP);
    assert_eq!(
        server.storage,
        Storage::Sqlite {
            size: Quantity("1Gi".into()),
            storage_class_name: None
        }
    );
    assert_eq!(
        server.auth,
        Auth::Tokens {
            keys: TokenKeys::SharedSecret(SecretRef {
                name: "jwt".into(),
                key: "secret".into()
            }),
            issuer: None,
            audience: None
        }
    );
    assert!(server.notes.is_empty());
    assert_eq!(server.endpoint(), "ws://docs.team.svc:1234");
    assert_eq!(
        server.owner.as_ref().map(|owner| owner.uid.as_str()),
        Some(fixtures::UID)
    );
}

#[test]
fn without_a_database_replicas_are_limited_to_one_with_a_note() {
    let server = run(with(base(), json!({ "replicas": 3 }))).unwrap();
    assert_eq!(server.scaling, Scaling::Fixed { replicas: 1 });
    assert_eq!(
        server.notes,
        vec![Note::ReplicasLimitedToOne { requested: 3 }]
    );
    // Omitted, the default agrees with the storage: one replica, nothing to note.
    let mut spec = base();
    spec.as_object_mut().unwrap().remove("replicas");
    assert_eq!(run(spec).unwrap().notes, vec![]);
}

#[test]
fn database_url_key_is_found_without_naming_it() {
    let server = run(with(base(), json!({ "database": postgres() }))).unwrap();
    assert_eq!(
        server.storage,
        Storage::Postgres {
            connection: PostgresConnection::Url(SecretRef {
                name: "db".into(),
                key: "DATABASE_URL".into()
            }),
            ssl_mode: None
        }
    );
    // A CloudNativePG application Secret: `uri` wins over the parts.
    let server = run(with(
        base(),
        json!({ "database": { "secretRef": { "name": "cnpg-app" } } }),
    ))
    .unwrap();
    let Storage::Postgres {
        connection: PostgresConnection::Url(reference),
        ..
    } = server.storage
    else {
        panic!("expected a URL")
    };
    assert_eq!(reference.key, "uri");
}

#[test]
fn database_parts_use_the_keys_the_secret_has() {
    let server = run(with(
        base(),
        json!({ "database": { "secretRef": { "name": "cnpg-parts" }, "sslMode": "require" } }),
    ))
    .unwrap();
    let reference = |key: &str| SecretRef {
        name: "cnpg-parts".into(),
        key: key.into(),
    };
    assert_eq!(
        server.storage,
        Storage::Postgres {
            connection: PostgresConnection::Parts {
                host: reference("host"),
                database: DatabaseName::Secret(reference("dbname")),
                port: None,
                user: None,
                password: Some(reference("password")),
            },
            ssl_mode: Some("require".into())
        }
    );
}

#[test]
fn each_invalid_spec_is_rejected_with_its_reason() {
    let database = json!({ "database": postgres(), "redis": external_redis() });
    let cases: Vec<(Value, &str)> = vec![
        (
            with(
                base(),
                json!({ "auth": { "jwtSecretRef": { "name": "nope", "key": "secret" } } }),
            ),
            "SecretNotFound",
        ),
        (
            with(
                base(),
                json!({ "auth": { "jwtSecretRef": { "name": "jwt", "key": "nope" } } }),
            ),
            "SecretKeyNotFound",
        ),
        (
            with(
                base(),
                json!({ "database": { "secretRef": { "name": "jwt" } } }),
            ),
            "DatabaseSecretWithoutConnection",
        ),
        (
            with(
                base(),
                json!({ "database": { "secretRef": { "name": "db", "key": "missing" } } }),
            ),
            "SecretKeyNotFound",
        ),
        (
            with(
                base(),
                json!({ "database": { "secretRef": { "name": "mysql" } } }),
            ),
            "UnsupportedDatabaseUrl",
        ),
        (
            with(
                base(),
                json!({ "database": { "secretRef": { "name": "db" }, "sslMode": "always" } }),
            ),
            "InvalidSslMode",
        ),
        (
            with(
                base(),
                json!({ "redis": { "external": { "secretRef": { "name": "http-redis", "key": "url" } } } }),
            ),
            "UnsupportedRedisUrl",
        ),
        (json!({ "replicas": 1 }), "NoAuthentication"),
        (with(base(), json!({ "auth": {} })), "NoAuthentication"),
        (
            with(
                base(),
                json!({ "auth": { "jwksUrl": "https://idp/jwks.json", "cognito": { "userPoolId": "p", "region": "r" } } }),
            ),
            "ConflictingAuthentication",
        ),
        (
            with(
                base(),
                json!({ "auth": { "jwksUrl": "https://idp/jwks.json", "allowAnonymous": true } }),
            ),
            "AnonymousWithAuthentication",
        ),
        (
            with(
                base(),
                json!({ "auth": { "allowAnonymous": true, "issuer": "https://idp" } }),
            ),
            "ClaimsWithoutAuthentication",
        ),
        (
            with(base(), json!({ "auth": { "jwksUrl": "idp/jwks.json" } })),
            "InvalidJwksUrl",
        ),
        (
            with(
                base(),
                json!({ "auth": { "cognito": { "userPoolId": " ", "region": "eu-west-1" } } }),
            ),
            "InvalidCognito",
        ),
        (
            with(
                base(),
                json!({ "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } }, "managed": {} } }),
            ),
            "ConflictingRedis",
        ),
        (
            with(base(), json!({ "replicas": 2, "database": postgres() })),
            "MultipleReplicasWithoutRedis",
        ),
        (
            with(
                base(),
                json!({ "database": postgres(), "autoscaling": { "enabled": true, "maxReplicas": 4 } }),
            ),
            "MultipleReplicasWithoutRedis",
        ),
        (
            with(base(), json!({ "redis": { "managed": {} } })),
            "ManagedRedisUnavailable",
        ),
        (with(base(), json!({ "replicas": -1 })), "InvalidReplicas"),
        (
            with(
                with(base(), database.clone()),
                json!({ "autoscaling": { "enabled": true, "minReplicas": 0 } }),
            ),
            "InvalidAutoscaling",
        ),
        (
            with(
                with(base(), database.clone()),
                json!({ "autoscaling": { "enabled": true, "minReplicas": 5, "maxReplicas": 3 } }),
            ),
            "InvalidAutoscaling",
        ),
        (
            with(
                with(base(), database.clone()),
                json!({ "autoscaling": { "enabled": true, "targetCPUUtilizationPercentage": 150 } }),
            ),
            "InvalidAutoscaling",
        ),
        (
            with(
                base(),
                json!({ "redis": external_redis(), "autoscaling": { "enabled": true } }),
            ),
            "AutoscalingWithoutDatabase",
        ),
        (
            with(
                with(base(), database.clone()),
                json!({
                    "autoscaling": { "enabled": true },
                    "resources": { "requests": { "memory": "256Mi" } },
                }),
            ),
            "AutoscalingWithoutCpuRequest",
        ),
        (with(base(), json!({ "port": 0 })), "InvalidPort"),
        (with(base(), json!({ "port": 9090 })), "InvalidPort"),
        (with(base(), json!({ "port": 70000 })), "InvalidPort"),
        (
            with(base(), json!({ "terminationGracePeriodSeconds": 14 })),
            "TerminationGracePeriodTooShort",
        ),
        (
            with(
                base(),
                json!({ "env": [{ "name": "DATABASE_URL", "value": "sqlite:///tmp/x" }] }),
            ),
            "ReservedEnvironmentVariable",
        ),
        (
            with(
                base(),
                json!({ "env": [{ "name": "EXTRA", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "k" } } }] }),
            ),
            "SecretNotFound",
        ),
        (
            with(
                base(),
                json!({ "podTemplate": { "labels": { "app.kubernetes.io/instance": "x" } } }),
            ),
            "ReservedPodMetadata",
        ),
        (
            with(
                base(),
                json!({ "podTemplate": { "annotations": { "collab.zedi.dev/config-hash": "x" } } }),
            ),
            "ReservedPodMetadata",
        ),
        (
            with(
                base(),
                json!({ "podDisruptionBudget": { "maxUnavailable": "half" } }),
            ),
            "InvalidPodDisruptionBudget",
        ),
        (
            with(
                base(),
                json!({ "podDisruptionBudget": { "maxUnavailable": -1 } }),
            ),
            "InvalidPodDisruptionBudget",
        ),
        (
            with(
                base(),
                json!({ "podDisruptionBudget": { "maxUnavailable": "150%" } }),
            ),
            "InvalidPodDisruptionBudget",
        ),
    ];
    for (spec, reason) in cases {
        let error = rejected(spec.clone());
        assert_eq!(error.kind(), reason, "{spec}: {error}");
    }
}

#[test]
fn rejections_say_what_to_do_and_never_reveal_secret_values() {
    let error = rejected(with(
        base(),
        json!({ "auth": { "jwtSecretRef": { "name": "jwt", "key": "nope" } } }),
    ));
    assert_eq!(
        error.to_string(),
        "spec.auth.jwtSecretRef: Secret jwt has no key nope (its keys: secret)"
    );
    let error = rejected(with(
        base(),
        json!({ "database": { "secretRef": { "name": "mysql" } } }),
    ));
    assert_eq!(
        error.to_string(),
        "spec.database: Secret mysql key DATABASE_URL does not hold a postgres:// or postgresql:// URL (scheme mysql://)"
    );
    let error = rejected(with(
        base(),
        json!({ "database": { "secretRef": { "name": "garbage" } } }),
    ));
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(error.to_string().ends_with("(not a URL)"), "{error}");
    let error = rejected(with(
        base(),
        json!({ "replicas": 3, "database": postgres() }),
    ));
    assert_eq!(
        error.to_string(),
        "3 replicas need spec.redis (external or managed): without it replicas cannot see each other's edits; set replicas: 1 or configure redis"
    );
    assert_eq!(
        rejected(json!({})).to_string(),
        "spec.auth: no token check is configured: set jwtSecretRef, jwksUrl or cognito, or set allowAnonymous: true to let anyone read and write every document"
    );
}

#[test]
fn anonymous_access_must_be_asked_for() {
    let server = run(json!({ "replicas": 1, "auth": { "allowAnonymous": true } })).unwrap();
    assert_eq!(server.auth, Auth::Anonymous);
}

#[test]
fn grace_period_sets_the_server_shutdown_timeout() {
    let server = run(with(
        base(),
        json!({ "terminationGracePeriodSeconds": 100 }),
    ))
    .unwrap();
    assert_eq!(server.shutdown.server_timeout_seconds, 90);
    let server = run(with(base(), json!({ "terminationGracePeriodSeconds": 15 }))).unwrap();
    assert_eq!(server.shutdown.server_timeout_seconds, 5);
}

#[test]
fn secret_versions_follow_the_referenced_secrets_not_their_values() {
    let spec = with(base(), json!({ "database": postgres() }));
    let at = |jwt: &str, db: &str| {
        secrets()
            .with_resource_version("jwt", jwt)
            .with_resource_version("db", db)
    };
    let before = run_with(spec.clone(), &at("10", "20"))
        .unwrap()
        .secret_versions;
    assert_eq!(before, "db:20,jwt:10", "every Secret the pods read, sorted");
    assert_eq!(
        run_with(spec.clone(), &at("10", "20"))
            .unwrap()
            .secret_versions,
        before,
        "stable"
    );
    // A write to a referenced Secret rolls the pods.
    assert_ne!(
        run_with(spec.clone(), &at("11", "20"))
            .unwrap()
            .secret_versions,
        before
    );
    // Nothing derived from a value is published: a different value at the same version
    // gives the same annotation.
    let other_value = secrets()
        .with_secret("jwt", [("secret", "another-secret-value")])
        .with_resource_version("jwt", "10")
        .with_resource_version("db", "20");
    let versions = run_with(spec.clone(), &other_value)
        .unwrap()
        .secret_versions;
    assert_eq!(versions, before);
    assert!(!versions.contains(JWT) && !versions.contains("another-secret-value"));
    // A Secret the spec does not read does not count.
    let unrelated = at("10", "20")
        .with_secret("elsewhere", [("k", "v")])
        .with_resource_version("elsewhere", "99");
    assert_eq!(run_with(spec, &unrelated).unwrap().secret_versions, before);
}

#[test]
fn optional_env_secrets_may_be_absent() {
    let server = run(with(
        base(),
        json!({ "env": [
            { "name": "COLLAB_SERVER_MAX_CONNECTIONS", "value": "500" },
            { "name": "EXTRA", "valueFrom": { "secretKeyRef": { "name": "absent", "key": "k", "optional": true } } },
        ] }),
    ))
    .unwrap();
    assert_eq!(server.extra_env.len(), 2);
}

#[test]
fn service_monitor_without_its_crd_is_a_note_not_an_error() {
    let spec = with(
        base(),
        json!({ "monitoring": { "serviceMonitor": { "enabled": true } } }),
    );
    let server = run(spec.clone()).unwrap();
    assert_eq!(server.service_monitor, ServiceMonitorPlan::CrdMissing);
    assert_eq!(server.notes, vec![Note::ServiceMonitorCrdMissing]);
    let mut with_crd = secrets();
    with_crd.service_monitor_crd = true;
    assert_eq!(
        run_with(spec, &with_crd).unwrap().service_monitor,
        ServiceMonitorPlan::Create {
            interval: "30s".into(),
            labels: BTreeMap::new()
        }
    );
}

#[test]
fn declared_secrets_validate_without_values() {
    // Outside a cluster (ECS) only key names are known: shape checks are skipped.
    let declared = Dereferenced::default()
        .with_declared_secret("jwt", ["secret"])
        .with_declared_secret("db", ["DATABASE_URL"])
        .with_declared_secret("redis", ["url"]);
    let server = run_with(
        with(
            base(),
            json!({ "replicas": 2, "database": postgres(), "redis": external_redis() }),
        ),
        &declared,
    )
    .unwrap();
    assert_eq!(server.scaling, Scaling::Fixed { replicas: 2 });
    assert_eq!(secret_refs(&server).len(), 3);
}

#[test]
fn autoscaling_defaults() {
    let server = run(with(
        base(),
        json!({ "database": postgres(), "redis": external_redis(), "autoscaling": { "enabled": true } }),
    ))
    .unwrap();
    assert_eq!(
        server.scaling,
        Scaling::Autoscaled {
            min_replicas: 2,
            max_replicas: 10,
            target_cpu_utilization_percentage: 70,
            scale_down_stabilization_window_seconds: 600,
            connections_per_pod: None,
        }
    );
}

#[test]
fn a_collab_server_without_a_name_is_rejected() {
    let mut server = fixtures::collab_server(base());
    server.metadata.name = None;
    let error = validate(&server, &secrets(), &OperatorDefaults::default()).unwrap_err();
    assert_eq!(error, Error::MissingName);
}

#[test]
fn a_name_too_long_for_the_derived_names_is_rejected() {
    let mut server = fixtures::collab_server(base());
    let longest = "a".repeat(names::MAX_INSTANCE_NAME_LENGTH);
    server.metadata.name = Some(longest.clone());
    let validated = validate(&server, &secrets(), &OperatorDefaults::default()).unwrap();
    assert_eq!(validated.name, longest);

    let too_long = format!("{longest}b");
    server.metadata.name = Some(too_long.clone());
    let error = validate(&server, &secrets(), &OperatorDefaults::default()).unwrap_err();
    assert_eq!(error.kind(), "NameTooLong");
    assert_eq!(error, Error::NameTooLong { name: too_long });
    assert!(
        error
            .to_string()
            .contains("has 56 characters, more than 55"),
        "{error}"
    );
}

#[test]
fn omitted_replicas_follow_storage_and_relay() {
    // Without `replicas`: one pod without a database or without Redis (no warning), two with
    // both.
    let minimal = json!({ "auth": { "allowAnonymous": true } });
    let server = run(minimal.clone()).unwrap();
    assert_eq!(server.scaling, Scaling::Fixed { replicas: 1 });
    assert!(server.notes.is_empty(), "{:?}", server.notes);
    let database_only = with(minimal.clone(), json!({ "database": postgres() }));
    assert_eq!(
        run(database_only.clone()).unwrap().scaling,
        Scaling::Fixed { replicas: 1 }
    );
    let scaled_out = with(
        database_only,
        json!({ "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } } }),
    );
    assert_eq!(
        run(scaled_out).unwrap().scaling,
        Scaling::Fixed {
            replicas: DEFAULT_REPLICAS
        }
    );
    // Asked for explicitly, more than one without a database is still a note.
    let asked = run(with(minimal, json!({ "replicas": 3 }))).unwrap();
    assert_eq!(
        asked.notes,
        vec![Note::ReplicasLimitedToOne { requested: 3 }]
    );
}

#[test]
fn ingress_and_network_policy_are_resolved() {
    let server = run(with(
        base(),
        json!({
            "ingress": { "enabled": true, "host": " docs.example.com ", "tlsSecretName": "tls" },
            "networkPolicy": { "enabled": true, "from": [{ "podSelector": {} }] },
        }),
    ))
    .unwrap();
    let ingress = server.ingress.unwrap();
    assert_eq!(ingress.host, "docs.example.com");
    assert_eq!(ingress.path, "/");
    assert_eq!(ingress.tls_secret_name.as_deref(), Some("tls"));
    let policy = server.network_policy.unwrap();
    assert_eq!(policy.clients_from.len(), 1);
    assert!(policy.metrics_from.is_empty());
    let disabled = run(with(
        base(),
        json!({ "ingress": { "enabled": false, "host": "" }, "networkPolicy": {} }),
    ))
    .unwrap();
    assert!(disabled.ingress.is_none() && disabled.network_policy.is_none());
    for (ingress, kind) in [
        (json!({ "enabled": true, "host": "" }), "InvalidIngress"),
        (
            json!({ "enabled": true, "host": "a.example", "path": "api" }),
            "InvalidIngress",
        ),
    ] {
        assert_eq!(
            rejected(with(base(), json!({ "ingress": ingress }))).kind(),
            kind
        );
    }
}

#[test]
fn autoscaling_window_and_connections_are_checked() {
    let spec = |autoscaling: Value| {
        with(
            base(),
            json!({
                "database": postgres(),
                "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } },
                "autoscaling": autoscaling,
            }),
        )
    };
    for bad in [
        json!({ "enabled": true, "scaleDownStabilizationWindowSeconds": 3601 }),
        json!({ "enabled": true, "scaleDownStabilizationWindowSeconds": -1 }),
        json!({ "enabled": true, "connectionsPerPod": 0 }),
    ] {
        assert_eq!(
            rejected(spec(bad.clone())).kind(),
            "InvalidAutoscaling",
            "{bad}"
        );
    }
    let server = run(spec(json!({ "enabled": true, "scaleDownStabilizationWindowSeconds": 0, "connectionsPerPod": 1 }))).unwrap();
    assert!(matches!(
        server.scaling,
        Scaling::Autoscaled {
            scale_down_stabilization_window_seconds: 0,
            connections_per_pod: Some(1),
            ..
        }
    ));
}

#[test]
fn database_parts_without_a_database_name_are_refused() {
    let error = rejected(with(
        base(),
        json!({ "database": { "secretRef": { "name": "no-dbname" } } }),
    ));
    assert_eq!(error.kind(), "DatabaseNameMissing");
    assert!(error.to_string().contains("databaseName"), "{error}");
    // An RDS-managed secret has no dbname: the spec names the database.
    let server = run(with(
        base(),
        json!({ "database": { "secretRef": { "name": "no-dbname" }, "databaseName": "zedi" } }),
    ))
    .unwrap();
    let Storage::Postgres {
        connection: PostgresConnection::Parts { database, .. },
        ..
    } = server.storage
    else {
        panic!("expected parts")
    };
    assert_eq!(database, DatabaseName::Literal("zedi".into()));
    let twice = rejected(with(
        base(),
        json!({ "database": { "secretRef": { "name": "cnpg-parts" }, "databaseName": "zedi" } }),
    ));
    assert_eq!(twice.kind(), "DatabaseNameTwice");
}

#[test]
fn server_features_become_the_servers_variables() {
    let server = run(with(
        base(),
        json!({
            "api": { "secretRef": { "name": "api", "key": "secret" }, "adminOnly": true },
            "webhook": {
                "url": "https://hooks.example/collab",
                "secretRef": { "name": "hook", "key": "secret" },
                "events": ["change", "connect", "change"],
            },
            "demo": false,
            "limits": {
                "maxDocumentBytes": 1048576,
                "maxConnectionsPerIp": 50,
                "messagesPerSecond": 100,
                "trustedProxies": ["10.0.0.0/16", "10.1.0.0/16"],
            },
        }),
    ))
    .unwrap();
    let env: Vec<(&str, String)> = crate::server_env::environment(&server)
        .into_iter()
        .map(|variable| {
            let value = match variable.value {
                crate::server_env::EnvValue::Literal(value) => value,
                crate::server_env::EnvValue::Secret(reference) => {
                    format!("secret:{}/{}", reference.name, reference.key)
                }
            };
            (variable.name, value)
        })
        .collect();
    for expected in [
        ("COLLAB_SERVER_API_SECRET", "secret:api/secret"),
        ("COLLAB_SERVER_API_ADMIN_ONLY", "true"),
        ("COLLAB_SERVER_WEBHOOK_URL", "https://hooks.example/collab"),
        ("COLLAB_SERVER_WEBHOOK_SECRET", "secret:hook/secret"),
        ("COLLAB_SERVER_WEBHOOK_EVENTS", "change,connect"),
        ("COLLAB_SERVER_DEMO", "false"),
        ("COLLAB_SERVER_MAX_DOCUMENT_BYTES", "1048576"),
        ("COLLAB_SERVER_MAX_CONNECTIONS_PER_IP", "50"),
        ("COLLAB_SERVER_RATE_MESSAGES_PER_SEC", "100"),
        ("COLLAB_SERVER_TRUSTED_PROXIES", "10.0.0.0/16,10.1.0.0/16"),
    ] {
        assert!(
            env.contains(&(expected.0, expected.1.to_owned())),
            "{expected:?} not in {env:?}"
        );
    }
    // A Secret the features read rolls the pods like every other.
    assert!(
        server.secret_versions.contains("api"),
        "{}",
        server.secret_versions
    );
    assert!(
        server.secret_versions.contains("hook"),
        "{}",
        server.secret_versions
    );
    // Nothing set that the spec did not ask for.
    let plain = run(base()).unwrap();
    assert!(
        crate::server_env::environment(&plain)
            .iter()
            .all(|variable| !variable.name.starts_with("COLLAB_SERVER_API")
                && !variable.name.starts_with("COLLAB_SERVER_WEBHOOK")
                && variable.name != "COLLAB_SERVER_DEMO")
    );
}

#[test]
fn a_variable_set_by_a_field_and_by_env_is_refused() {
    let error = rejected(with(
        base(),
        json!({
            "limits": { "maxConnections": 100 },
            "env": [{ "name": "COLLAB_SERVER_MAX_CONNECTIONS", "value": "5" }],
        }),
    ));
    assert_eq!(error.kind(), "VariableSetTwice");
    assert!(error.to_string().contains("spec.limits"), "{error}");
    // Without the field, env may still set it (as before the fields existed).
    run(with(
        base(),
        json!({ "env": [{ "name": "COLLAB_SERVER_MAX_CONNECTIONS", "value": "5" }] }),
    ))
    .unwrap();
}

#[test]
fn feature_secrets_must_exist_and_webhook_urls_must_be_http() {
    let missing = rejected(with(
        base(),
        json!({ "api": { "secretRef": { "name": "absent", "key": "secret" } } }),
    ));
    assert_eq!(missing.kind(), "SecretNotFound");
    assert!(
        missing.to_string().contains("spec.api.secretRef"),
        "{missing}"
    );
    let url = rejected(with(
        base(),
        json!({ "webhook": { "url": "hooks.example/collab" } }),
    ));
    assert_eq!(url.kind(), "InvalidWebhookUrl");
}
