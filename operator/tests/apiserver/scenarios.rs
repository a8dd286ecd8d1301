//! The steps, in order: the chart installed with helm; admission of every invalid spec;
//! reconciles by the operator running as the chart's ServiceAccount (cluster mode); leader
//! election between two operators; namespace mode; helm upgrade and uninstall.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Report;
use crate::chart::Release;
use crate::cluster::Cluster;
use crate::invalid_specs::invalid_cases;
use crate::operator::Operator;
use crate::support::{
    self, SETTLE, collab_servers, condition, create_collab_server, create_namespace, mark_ready,
    put_secret, wait_condition, wait_deployment, wait_for,
};

const CRD_NAME: &str = "collabservers.collab.zedi.dev";
const SYSTEM: &str = "collab-system";
const JWT_VALUE: &str = "jwt-S3cret-value-that-must-not-leak";
const DB_PASSWORD: &str = "db-S3cret-password-that-must-not-leak";
const API_SECRET: &str = "api-S3cret-that-must-not-leak";
const WEBHOOK_SECRET: &str = "webhook-S3cret-that-must-not-leak";
const RELOAD: (&str, &str) = ("collab.zedi.dev/reload", "true");

pub async fn run(cluster: &Cluster, helm: &Path) -> Report {
    let mut report = Report::default();
    let admin = &cluster.admin;
    let release = Release {
        helm: helm.to_path_buf(),
        kubeconfig: cluster.admin_kubeconfig(),
        name: "collab-operator".to_owned(),
        namespace: SYSTEM.to_owned(),
    };

    if !report
        .step(
            "helm install (cluster mode): the CRD is established",
            async {
                release.install(&[])?;
                crd_established(admin).await
            },
        )
        .await
    {
        // Nothing else can run without the chart's CRD and RBAC.
        return report;
    }
    report
        .step(
            "admission: every invalid spec is refused by its CEL rule",
            admission(admin),
        )
        .await;

    let mut leader = match Operator::start(cluster, &release, "collab-operator-a").await {
        Ok(operator) => operator,
        Err(error) => {
            report
                .step("the operator starts as the chart's ServiceAccount", async {
                    Err(error)
                })
                .await;
            return report;
        }
    };
    report
        .step("the operator takes the Lease and reports healthy", async {
            wait_for("the Lease held by collab-operator-a", SETTLE, || async {
                Ok(lease_holder(admin, SYSTEM, "collab-operator")
                    .await?
                    .filter(|holder| holder == "collab-operator-a"))
            })
            .await?;
            wait_for("/health 200", SETTLE, || async {
                Ok(leader.health().await.ok().filter(|(code, _)| *code == 200))
            })
            .await?;
            Ok(())
        })
        .await;
    report
        .step(
            "a minimal CollabServer is Available once its pods are ready, not before",
            minimal_available(admin),
        )
        .await;
    report
        .step(
            "every child is server-side applied with a controller owner reference; no secret value leaks",
            every_child(admin, &leader),
        )
        .await;
    report
        .step(
            "a rotated Secret rolls the pod template",
            rotated_secret(admin),
        )
        .await;
    report
        .step(
            "kubectl scale through the scale subresource reaches the Deployment",
            scale_subresource(admin),
        )
        .await;
    report
        .step("a child edited by hand is put back", drift_undone(admin))
        .await;
    report
        .step(
            "the HPA's replicas are not fought over",
            autoscaler_replicas_kept(admin),
        )
        .await;
    report
        .step(
            "a missing Secret is a condition, and no Deployment is made",
            missing_secret(admin),
        )
        .await;
    report
        .step(
            "no ServiceMonitor API: everything else reconciles and a condition says what was skipped",
            optional_apis(admin),
        )
        .await;
    report
        .step(
            "the operator logged no API error (403, 404) under the chart's RBAC",
            async { no_api_errors(&leader) },
        )
        .await;

    let mut standby = Operator::start(cluster, &release, "collab-operator-b").await;
    report
        .step(
            "leader election: the standby takes the Lease over within the lease duration once the leader dies",
            async {
                let standby = standby.as_mut().map_err(|error| anyhow::anyhow!("{error:#}"))?;
                failover(admin, &mut leader, standby).await
            },
        )
        .await;
    report
        .step("SIGTERM: the leader stops and releases the Lease", async {
            let standby = standby
                .as_mut()
                .map_err(|error| anyhow::anyhow!("{error:#}"))?;
            standby.terminate(Duration::from_secs(30)).await?;
            let holder = lease_holder(admin, SYSTEM, "collab-operator").await?;
            ensure!(
                holder.as_deref().unwrap_or_default().is_empty(),
                "the Lease is still held by {holder:?}"
            );
            no_api_errors(standby)
        })
        .await;
    drop(leader);
    drop(standby);

    report
        .step(
            "namespace mode: the chart's Roles suffice in the watched namespace, others are left alone",
            namespace_mode(cluster, helm),
        )
        .await;
    report
        .step(
            "helm upgrade changes the operator's environment; helm uninstall removes the RBAC and keeps the CRD",
            upgrade_and_uninstall(admin, &release),
        )
        .await;
    report
}

async fn crd_established(admin: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(admin.clone());
    wait_for("the CRD to be Established", SETTLE, || async {
        let crd = api.get(CRD_NAME).await?;
        let established = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established.then_some(()))
    })
    .await
}

async fn admission(admin: &Client) -> anyhow::Result<()> {
    create_namespace(admin, "admission").await?;
    let mut problems = Vec::new();
    let cases = invalid_cases();
    for case in &cases {
        match create_collab_server(admin, "admission", &case.name, case.spec.clone()).await {
            Ok(_) => problems.push(format!("{}: accepted {}", case.path, case.spec)),
            Err(kube::Error::Api(status)) => {
                let message = &status.message;
                if status.code != 422 {
                    problems.push(format!(
                        "{}: {} instead of 422: {message}",
                        case.path, status.code
                    ));
                } else if !message.contains(case.words) {
                    problems.push(format!(
                        "{}: the message lacks {:?}: {message}",
                        case.path, case.words
                    ));
                } else if !case.path.is_empty() && !message.contains(case.path) {
                    problems.push(format!(
                        "{}: the message names another field: {message}",
                        case.path
                    ));
                }
            }
            Err(other) => problems.push(format!("{}: {other}", case.path)),
        }
    }
    // And a valid one is accepted.
    create_collab_server(admin, "admission", "valid", crate::invalid_specs::base())
        .await
        .context("a valid CollabServer was refused")?;
    ensure!(
        problems.is_empty(),
        "{} of {} invalid specs were not refused as expected:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    Ok(())
}

async fn minimal_available(admin: &Client) -> anyhow::Result<()> {
    let ns = "minimal";
    create_namespace(admin, ns).await?;
    create_collab_server(
        admin,
        ns,
        "collab",
        json!({ "auth": { "allowAnonymous": true } }),
    )
    .await?;
    wait_deployment(admin, ns, "collab").await?;
    wait_condition(admin, ns, "collab", "Reconciled", "True").await?;
    let available = condition(admin, ns, "collab", "Available").await?;
    ensure!(
        available.as_ref().is_some_and(|c| c.status == "False"),
        "Available before any pod is ready: {available:?}"
    );
    mark_ready(admin, ns, "collab").await?;
    wait_condition(admin, ns, "collab", "Available", "True").await?;
    Ok(())
}

async fn every_child(admin: &Client, operator: &Operator) -> anyhow::Result<()> {
    let ns = "full";
    create_namespace(admin, ns).await?;
    put_secret(admin, ns, "jwt", &[("secret", JWT_VALUE)], &[RELOAD]).await?;
    let url = format!("postgres://collab:{DB_PASSWORD}@postgres.{ns}.svc:5432/collab");
    put_secret(admin, ns, "db", &[("DATABASE_URL", &url)], &[]).await?;
    put_secret(
        admin,
        ns,
        "features",
        &[("api", API_SECRET), ("webhook", WEBHOOK_SECRET)],
        &[],
    )
    .await?;
    let spec = json!({
        "auth": { "jwtSecretRef": { "name": "jwt", "key": "secret" } },
        "database": { "secretRef": { "name": "db" } },
        "redis": { "managed": {} },
        "autoscaling": { "enabled": true, "minReplicas": 2, "maxReplicas": 4 },
        "networkPolicy": { "enabled": true },
        "ingress": { "enabled": true, "host": "collab.example.com", "tlsSecretName": "collab-tls" },
        "monitoring": { "serviceMonitor": { "enabled": true } },
        "api": { "secretRef": { "name": "features", "key": "api" }, "adminOnly": true },
        "webhook": {
            "url": "https://hooks.example/collab",
            "secretRef": { "name": "features", "key": "webhook" },
            "events": ["change", "create"],
        },
        "limits": { "maxDocumentBytes": 67108864, "trustedProxies": ["10.0.0.0/8"] },
    });
    let server = create_collab_server(admin, ns, "collab", spec).await?;
    let uid = server.uid().context("no uid")?;
    wait_deployment(admin, ns, "collab").await?;
    wait_condition(admin, ns, "collab", "Reconciled", "True").await?;

    let mut problems = Vec::new();
    check_owned::<Deployment>(admin, ns, &["collab", "collab-redis"], &uid, &mut problems).await?;
    check_owned::<Service>(
        admin,
        ns,
        &["collab", "collab-metrics", "collab-redis"],
        &uid,
        &mut problems,
    )
    .await?;
    check_owned::<PodDisruptionBudget>(admin, ns, &["collab"], &uid, &mut problems).await?;
    check_owned::<HorizontalPodAutoscaler>(admin, ns, &["collab"], &uid, &mut problems).await?;
    check_owned::<NetworkPolicy>(admin, ns, &["collab", "collab-redis"], &uid, &mut problems)
        .await?;
    check_owned::<Ingress>(admin, ns, &["collab"], &uid, &mut problems).await?;
    check_owned::<Secret>(admin, ns, &["collab-redis"], &uid, &mut problems).await?;
    check_owned::<ServiceAccount>(admin, ns, &["collab", "collab-redis"], &uid, &mut problems)
        .await?;
    ensure!(problems.is_empty(), "{}", problems.join("\n"));

    // No secret value outside Secrets: not in ConfigMaps, annotations, the pod template's
    // literal environment or the operator's log.
    let redis_secret: Secret = Api::namespaced(admin.clone(), ns)
        .get("collab-redis")
        .await?;
    let redis_password = redis_secret
        .data
        .as_ref()
        .and_then(|data| data.get("password"))
        .map(|value| String::from_utf8_lossy(&value.0).into_owned())
        .context("the managed Redis Secret has no password")?;
    ensure!(redis_password.len() >= 16, "a short managed Redis password");
    let values = [
        JWT_VALUE,
        DB_PASSWORD,
        API_SECRET,
        WEBHOOK_SECRET,
        redis_password.as_str(),
    ];
    let mut places = Vec::new();
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), ns);
    for map in config_maps.list(&ListParams::default()).await? {
        places.push((
            format!("ConfigMap {}", map.name_any()),
            serde_json::to_string(&map)?,
        ));
    }
    for (kind, metas) in [
        ("Deployment", metadata_of::<Deployment>(admin, ns).await?),
        ("Service", metadata_of::<Service>(admin, ns).await?),
        ("Secret", metadata_of::<Secret>(admin, ns).await?),
        ("Ingress", metadata_of::<Ingress>(admin, ns).await?),
    ] {
        for meta in metas {
            let annotations = serde_json::to_string(&meta.annotations)?;
            let name = meta.name.unwrap_or_default();
            places.push((format!("annotations of {kind} {name}"), annotations));
        }
    }
    for name in ["collab", "collab-redis"] {
        let deployment = support::deployment(admin, ns, name)
            .await?
            .context("gone")?;
        let template = deployment.spec.context("no spec")?.template;
        places.push((
            format!("pod template of Deployment {name}"),
            serde_json::to_string(&template)?,
        ));
    }
    places.push(("the operator's log".to_owned(), operator.log()));
    places.push((
        "the CollabServer's status".to_owned(),
        serde_json::to_string(&collab_servers(admin, ns).get("collab").await?.data["status"])?,
    ));
    for (place, text) in &places {
        for value in values {
            ensure!(!text.contains(value), "a secret value is in {place}");
        }
    }

    for name in ["collab", "collab-redis"] {
        mark_ready(admin, ns, name).await?;
    }
    wait_condition(admin, ns, "collab", "Available", "True").await?;
    Ok(())
}

async fn metadata_of<K>(admin: &Client, ns: &str) -> anyhow::Result<Vec<ObjectMeta>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(admin.clone(), ns);
    Ok(api
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|object| object.metadata)
        .collect())
}

/// Each named object exists, has a controller owner reference to `uid` that blocks the owner's
/// deletion (no garbage collector runs here to act on it; a real cluster's does), and was
/// written by the operator's server-side apply.
async fn check_owned<K>(
    admin: &Client,
    ns: &str,
    names: &[&str],
    uid: &str,
    problems: &mut Vec<String>,
) -> anyhow::Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(admin.clone(), ns);
    let kind = K::kind(&());
    for name in names {
        let Some(object) = api.get_metadata_opt(name).await? else {
            problems.push(format!("{kind} {name} is missing"));
            continue;
        };
        let owned = object.owner_references().iter().any(|owner| {
            owner.uid == uid
                && owner.kind == "CollabServer"
                && owner.controller == Some(true)
                && owner.block_owner_deletion == Some(true)
        });
        if !owned {
            problems.push(format!(
                "{kind} {name}: no controller owner reference blocking deletion: {:?}",
                object.owner_references()
            ));
        }
        let applied = object
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|entry| {
                entry.manager.as_deref() == Some("collab-operator")
                    && entry.operation.as_deref() == Some("Apply")
            });
        if !applied {
            problems.push(format!(
                "{kind} {name}: not server-side applied by collab-operator"
            ));
        }
    }
    Ok(())
}

fn secret_versions(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("collab.zedi.dev/secret-versions")
        .cloned()
}

async fn rotated_secret(admin: &Client) -> anyhow::Result<()> {
    let ns = "full";
    let before = support::deployment(admin, ns, "collab")
        .await?
        .context("no Deployment full/collab")?;
    let before = secret_versions(&before).context("no secret-versions annotation")?;
    put_secret(
        admin,
        ns,
        "jwt",
        &[("secret", "a-rotated-jwt-secret")],
        &[RELOAD],
    )
    .await?;
    wait_for("the pod template to change", SETTLE, || async {
        let now = support::deployment(admin, ns, "collab")
            .await?
            .context("gone")?;
        Ok(secret_versions(&now).filter(|versions| *versions != before))
    })
    .await?;
    Ok(())
}

fn replicas(deployment: &Deployment) -> Option<i32> {
    deployment.spec.as_ref()?.replicas
}

async fn scale_subresource(admin: &Client) -> anyhow::Result<()> {
    // Replicas need a database and Redis (SQLite serves one pod).
    let ns = "full";
    put_secret(
        admin,
        ns,
        "redis",
        &[("url", "redis://redis.example:6379")],
        &[],
    )
    .await?;
    create_collab_server(
        admin,
        ns,
        "scaled",
        json!({
            "auth": { "allowAnonymous": true },
            "database": { "secretRef": { "name": "db" } },
            "redis": { "external": { "secretRef": { "name": "redis", "key": "url" } } },
            "replicas": 2,
        }),
    )
    .await?;
    wait_deployment(admin, ns, "scaled").await?;
    collab_servers(admin, ns)
        .patch_scale(
            "scaled",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await
        .context("kubectl scale (the scale subresource) failed")?;
    wait_for("the Deployment to have 3 replicas", SETTLE, || async {
        let now = support::deployment(admin, ns, "scaled")
            .await?
            .context("gone")?;
        Ok((replicas(&now) == Some(3)).then_some(()))
    })
    .await?;
    // The status's selector serves `kubectl scale` and autoscalers.
    let scale = collab_servers(admin, ns).get_scale("scaled").await?;
    ensure!(
        scale
            .status
            .as_ref()
            .and_then(|s| s.selector.as_deref())
            .is_some(),
        "the scale subresource has no selector: {scale:?}"
    );
    Ok(())
}

fn image(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

async fn drift_undone(admin: &Client) -> anyhow::Result<()> {
    let ns = "minimal";
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let original = image(&deployments.get("collab").await?);
    // `kubectl set image` by a person.
    deployments
        .patch(
            "collab",
            &PatchParams {
                field_manager: Some("kubectl-set".to_owned()),
                ..PatchParams::default()
            },
            &Patch::Json::<()>(serde_json::from_value(json!([
                { "op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "example.com/other:1" }
            ]))?),
        )
        .await?;
    wait_for("the image to be put back", SETTLE, || async {
        let now = deployments.get("collab").await?;
        Ok((image(&now) == original).then_some(()))
    })
    .await?;
    Ok(())
}

async fn autoscaler_replicas_kept(admin: &Client) -> anyhow::Result<()> {
    let ns = "full";
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    // What the HPA controller does: write the scale subresource as kube-controller-manager.
    deployments
        .patch_scale(
            "collab",
            &PatchParams {
                field_manager: Some("kube-controller-manager".to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "spec": { "replicas": 3 } })),
        )
        .await?;
    // A spec change makes the operator apply the Deployment again.
    collab_servers(admin, ns)
        .patch(
            "collab",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "podTemplate": { "annotations": { "example.com/touched": "1" } } } })),
        )
        .await?;
    wait_for(
        "the operator to apply the new pod annotation",
        SETTLE,
        || async {
            let now = deployments.get("collab").await?;
            let touched = now
                .spec
                .as_ref()
                .and_then(|spec| spec.template.metadata.as_ref())
                .and_then(|meta| meta.annotations.as_ref())
                .is_some_and(|annotations| annotations.contains_key("example.com/touched"));
            Ok(touched.then_some(now))
        },
    )
    .await
    .and_then(|now| {
        ensure!(
            replicas(&now) == Some(3),
            "the operator set the autoscaled Deployment's replicas back to {:?}",
            replicas(&now)
        );
        Ok(())
    })
}

async fn missing_secret(admin: &Client) -> anyhow::Result<()> {
    let ns = "missing";
    create_namespace(admin, ns).await?;
    create_collab_server(
        admin,
        ns,
        "collab",
        json!({ "auth": { "jwtSecretRef": { "name": "absent", "key": "secret" } } }),
    )
    .await?;
    let reconciled = wait_condition(admin, ns, "collab", "Reconciled", "False").await?;
    ensure!(
        reconciled.reason == "SecretNotFound" && reconciled.message.contains("absent"),
        "Reconciled: {reconciled:?}"
    );
    ensure!(
        support::deployment(admin, ns, "collab").await?.is_none(),
        "a Deployment was made from a spec whose Secret is missing"
    );
    Ok(())
}

async fn optional_apis(admin: &Client) -> anyhow::Result<()> {
    let ns = "full";
    let monitor = wait_for("a condition about the ServiceMonitor", SETTLE, || async {
        let object = collab_servers(admin, ns).get("collab").await?;
        let conditions = object.data["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(conditions
            .into_iter()
            .find(|c| c["reason"] == "ServiceMonitorUnavailable"))
    })
    .await?;
    ensure!(
        monitor["message"]
            .as_str()
            .unwrap_or_default()
            .contains("monitoring.coreos.com"),
        "{monitor}"
    );
    let reconciled = condition(admin, ns, "collab", "Reconciled").await?;
    ensure!(
        reconciled.as_ref().is_some_and(|c| c.status == "True"),
        "without the ServiceMonitor API the reconcile failed: {reconciled:?}"
    );
    Ok(())
}

/// No line of the operator's log reports a refused or missing API (what RBAC or a missing CRD
/// would give).
fn no_api_errors(operator: &Operator) -> anyhow::Result<()> {
    let log = operator.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| {
            let lower = line.to_lowercase();
            lower.contains("forbidden")
                || lower.contains("404 page not found")
                || lower.contains("listfailed")
                || lower.contains("\"code\":403")
        })
        .collect();
    let shown: Vec<String> = errors
        .iter()
        .take(5)
        .map(|line| line.chars().take(600).collect())
        .collect();
    ensure!(
        errors.is_empty(),
        "{} API errors in the log of {}, the first:\n{}",
        errors.len(),
        operator.pod_name,
        shown.join("\n")
    );
    Ok(())
}

async fn lease_holder(admin: &Client, ns: &str, name: &str) -> anyhow::Result<Option<String>> {
    let leases: Api<Lease> = Api::namespaced(admin.clone(), ns);
    Ok(leases
        .get_opt(name)
        .await?
        .and_then(|lease| lease.spec)
        .map(|spec| spec.holder_identity.unwrap_or_default()))
}

async fn failover(
    admin: &Client,
    leader: &mut Operator,
    standby: &mut Operator,
) -> anyhow::Result<()> {
    // The standby is up and stands by.
    wait_for("the standby's /health", SETTLE, || async {
        Ok(standby.health().await.ok())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        lease_holder(admin, SYSTEM, "collab-operator")
            .await?
            .as_deref()
            == Some("collab-operator-a"),
        "the Lease changed hands while the leader ran"
    );
    leader.kill();
    let killed = Instant::now();
    let lease = Duration::from_secs(collab_operator::leader::LEASE_DURATION_SECONDS);
    // The lease duration, plus the standby's retry interval and a margin for a busy machine.
    wait_for(
        "collab-operator-b to hold the Lease",
        lease + Duration::from_secs(15),
        || async {
            Ok(lease_holder(admin, SYSTEM, "collab-operator")
                .await?
                .filter(|holder| holder == "collab-operator-b"))
        },
    )
    .await?;
    println!(
        "    the standby took the Lease {:.1} s after the leader was killed (lease {} s)",
        killed.elapsed().as_secs_f64(),
        lease.as_secs()
    );
    // And it reconciles.
    create_collab_server(
        admin,
        "minimal",
        "after-failover",
        json!({ "auth": { "allowAnonymous": true } }),
    )
    .await?;
    wait_deployment(admin, "minimal", "after-failover").await?;
    no_api_errors(standby)
}

async fn namespace_mode(cluster: &Cluster, helm: &Path) -> anyhow::Result<()> {
    let admin = &cluster.admin;
    for ns in ["team-a", "team-b"] {
        create_namespace(admin, ns).await?;
    }
    let release = Release {
        helm: helm.to_path_buf(),
        kubeconfig: cluster.admin_kubeconfig(),
        name: "scoped".to_owned(),
        namespace: "collab-scoped".to_owned(),
    };
    release.install(&["watchNamespaces={team-a}"])?;
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team-a");
    ensure!(
        !roles.list(&ListParams::default()).await?.items.is_empty(),
        "the chart made no Role in the watched namespace"
    );
    let operator = Operator::start(cluster, &release, "scoped-a").await?;
    for ns in ["team-a", "team-b"] {
        create_collab_server(
            admin,
            ns,
            "collab",
            json!({ "auth": { "allowAnonymous": true } }),
        )
        .await?;
    }
    wait_deployment(admin, "team-a", "collab").await?;
    mark_ready(admin, "team-a", "collab").await?;
    wait_condition(admin, "team-a", "collab", "Available", "True").await?;
    ensure!(
        support::deployment(admin, "team-b", "collab")
            .await?
            .is_none(),
        "the namespaced operator reconciled a CollabServer outside its namespaces"
    );
    let status = collab_servers(admin, "team-b").get("collab").await?.data["status"].clone();
    ensure!(
        status.is_null(),
        "team-b's CollabServer got a status: {status}"
    );
    no_api_errors(&operator)?;
    // helm uninstall while the operator still runs (its Role and Lease permission go first),
    // then SIGTERM: it exits, and says once that it could not release the Lease.
    let mut operator = operator;
    release.uninstall()?;
    operator.terminate(Duration::from_secs(40)).await?;
    let log = operator.log();
    let lease_lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("lease") && line.to_lowercase().contains("forbidden"))
        .collect();
    ensure!(
        lease_lines.len() <= 1,
        "{} lines about the forbidden Lease, the first: {:?}",
        lease_lines.len(),
        lease_lines.first()
    );
    Ok(())
}

async fn upgrade_and_uninstall(admin: &Client, release: &Release) -> anyhow::Result<()> {
    release.upgrade(&["logFilter=debug"])?;
    let deployment = release.deployment(admin).await?;
    let spec = crate::chart::pod_spec(&deployment, "x")?;
    let env: BTreeMap<_, _> = spec.env.into_iter().collect();
    ensure!(
        env.get("COLLAB_OPERATOR_LOG").map(String::as_str) == Some("debug"),
        "helm upgrade did not reach the Deployment: {env:?}"
    );
    release.uninstall()?;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    if roles.get_opt(&release.fullname()).await?.is_some() {
        bail!("the ClusterRole outlived helm uninstall");
    }
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    ensure!(
        crds.get_opt(CRD_NAME).await?.is_some(),
        "helm uninstall removed the CRD (and with it every CollabServer)"
    );
    Ok(())
}
