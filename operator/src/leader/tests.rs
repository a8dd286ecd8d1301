//! Lease handoffs between two candidates against a fake Lease API (one `tower_test::mock::pair`
//! per candidate, one stored Lease). The fake does what the API server does for the calls the
//! lease manager makes: GET, POST (create, 409 if it exists), server-side apply (409 when
//! another field manager owns a `holderIdentity` being changed, as the API server's field
//! ownership does without `force`), strategic merge patches (`null` removes a field), and
//! `metadata.resourceVersion` preconditions. Durations are short; nothing asserts timing (the
//! timeouts are hang guards).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

use super::*;

const NAMESPACE: &str = "ops";
const LEASE: &str = "collab-operator";
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The one Lease of the fake cluster, and a log of what happened, in order.
#[derive(Default)]
struct Cluster {
    lease: Option<Value>,
    /// Field manager owning `spec.holderIdentity`.
    holder_manager: Option<String>,
    resource_version: u64,
    /// `holder A`, `holder -`, `A leads`, `A stops`, `renewed A`, ...
    log: Vec<String>,
    /// Answer the PATCHes of this field manager with 500.
    failing: Option<String>,
}

type Shared = Arc<Mutex<Cluster>>;

fn log(cluster: &Shared, line: impl Into<String>) {
    cluster.lock().unwrap().log.push(line.into());
}

fn lines(cluster: &Shared) -> Vec<String> {
    cluster.lock().unwrap().log.clone()
}

fn holder(cluster: &Shared) -> Option<String> {
    cluster.lock().unwrap().lease.as_ref().and_then(|lease| {
        lease["spec"]["holderIdentity"]
            .as_str()
            .map(ToOwned::to_owned)
    })
}

fn status(code: u16, reason: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap(),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "code": code, "message": reason,
        }),
    )
}

fn answer(
    cluster: &mut Cluster,
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
    body: Value,
) -> (StatusCode, Value) {
    let collection = format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases");
    let item = format!("{collection}/{LEASE}");
    let manager = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("fieldManager="))
        .unwrap_or_default()
        .to_owned();
    match (method, path) {
        ("GET", p) if p == item => match &cluster.lease {
            Some(lease) => (StatusCode::OK, lease.clone()),
            None => status(404, "NotFound"),
        },
        ("POST", p) if p == collection => {
            if cluster.lease.is_some() {
                return status(409, "AlreadyExists");
            }
            let mut lease = body;
            cluster.resource_version += 1;
            lease["metadata"]["namespace"] = json!(NAMESPACE);
            lease["metadata"]["resourceVersion"] = json!(cluster.resource_version.to_string());
            if lease.get("spec").is_none_or(Value::is_null) {
                lease["spec"] = json!({});
            }
            cluster.lease = Some(lease.clone());
            (StatusCode::CREATED, lease)
        }
        ("PATCH", p) if p == item => {
            if cluster.failing.as_deref() == Some(manager.as_str()) {
                return status(500, "InternalError");
            }
            let Some(mut lease) = cluster.lease.clone() else {
                return status(404, "NotFound");
            };
            if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
                && lease["metadata"]["resourceVersion"].as_str() != Some(expected)
            {
                return status(409, "Conflict");
            }
            let before = lease["spec"]["holderIdentity"].as_str().map(str::to_owned);
            let patch = body["spec"].as_object().cloned().unwrap_or_default();
            let apply = content_type.starts_with("application/apply-patch");
            if apply
                && let Some(new_holder) = patch.get("holderIdentity").and_then(Value::as_str)
                && before.is_some()
                && before.as_deref() != Some(new_holder)
                && cluster.holder_manager.as_deref() != Some(manager.as_str())
                && !query.contains("force=true")
            {
                return status(409, "Conflict");
            }
            let spec = lease["spec"].as_object_mut().unwrap();
            for (key, value) in patch {
                if value.is_null() {
                    spec.remove(&key);
                    if key == "holderIdentity" {
                        cluster.holder_manager = None;
                    }
                } else {
                    if key == "holderIdentity" {
                        cluster.holder_manager = Some(manager.clone());
                    }
                    spec.insert(key, value);
                }
            }
            cluster.resource_version += 1;
            lease["metadata"]["resourceVersion"] = json!(cluster.resource_version.to_string());
            let after = lease["spec"]["holderIdentity"].as_str().map(str::to_owned);
            if after != before {
                cluster
                    .log
                    .push(format!("holder {}", after.as_deref().unwrap_or("-")));
            } else if let Some(after) = &after
                && body["spec"].get("renewTime").is_some()
                && manager.ends_with(after.as_str())
            {
                cluster.log.push(format!("renewed {after}"));
            }
            cluster.lease = Some(lease.clone());
            (StatusCode::OK, lease)
        }
        _ => panic!("unexpected request {method} {path}?{query}"),
    }
}

/// A client whose requests the fake answers from `cluster`.
fn client(cluster: Shared) -> Client {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, reply) = answer(
                &mut cluster.lock().unwrap(),
                &method,
                &path,
                &query,
                &content_type,
                body,
            );
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    Client::new(service, "default")
}

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: LEASE.to_owned(),
        namespace: NAMESPACE.to_owned(),
        identity: identity.to_owned(),
        duration_seconds: 4,
        grace_seconds: 2,
    }
}

/// Sets the flag when dropped: whether the controller's future is gone.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Candidate {
    health: Arc<Health>,
    shutdown: CancellationToken,
    dropped: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

/// Starts a candidate whose "controller" logs `NAME leads`, runs until told to stop, then logs
/// `NAME stops`.
fn candidate(cluster: &Shared, name: &'static str) -> Candidate {
    let health = Arc::new(Health::new(Duration::from_secs(4), None));
    let shutdown = CancellationToken::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let task = {
        let cluster = cluster.clone();
        let health = health.clone();
        let shutdown = shutdown.clone();
        let dropped = dropped.clone();
        tokio::spawn(async move {
            let settings = settings(name);
            run(
                client(cluster.clone()),
                &settings,
                health,
                shutdown,
                move |stop| async move {
                    let _flag = DropFlag(dropped);
                    log(&cluster, format!("{name} leads"));
                    stop.cancelled().await;
                    log(&cluster, format!("{name} stops"));
                    Ok(())
                },
            )
            .await
        })
    };
    Candidate {
        health,
        shutdown,
        dropped,
        task,
    }
}

/// Waits (polling; the timeout is a hang guard) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(HANG_GUARD, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

fn has(cluster: &Shared, line: &str) -> bool {
    lines(cluster).iter().any(|logged| logged == line)
}

fn position(log: &[String], line: &str) -> usize {
    log.iter()
        .position(|logged| logged == line)
        .unwrap_or_else(|| panic!("{line:?} not in {log:?}"))
}

/// A leads and B stands by through A's renewals; A's start of shutdown stops its controller,
/// then releases; B takes the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_leader_releases_on_shutdown() {
    let cluster = Shared::default();
    let a = candidate(&cluster, "a");
    until("a leads", || has(&cluster, "a leads")).await;
    assert!(a.health.is_leading());
    assert_eq!(holder(&cluster).as_deref(), Some("a"));

    let b = candidate(&cluster, "b");
    until("b stands by", || {
        a.health.report(Instant::now()).is_ok()
            && b.health
                .report(Instant::now())
                .is_ok_and(|body| body.starts_with("standby"))
    })
    .await;
    // a renews while b waits; b does not take a lease that is held.
    let renewals = lines(&cluster)
        .iter()
        .filter(|line| *line == "renewed a")
        .count();
    until("a renews", || {
        lines(&cluster)
            .iter()
            .filter(|line| *line == "renewed a")
            .count()
            > renewals
    })
    .await;
    assert!(!b.health.is_leading());
    assert!(!has(&cluster, "b leads"));
    assert_eq!(holder(&cluster).as_deref(), Some("a"));

    a.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, a.task)
        .await
        .unwrap()
        .unwrap()
        .expect("a shuts down cleanly");
    assert!(a.dropped.load(Ordering::SeqCst));
    until("b leads", || has(&cluster, "b leads")).await;
    assert!(b.health.is_leading());
    assert_eq!(holder(&cluster).as_deref(), Some("b"));

    let log = lines(&cluster);
    assert!(
        position(&log, "a leads") < position(&log, "a stops"),
        "{log:?}"
    );
    assert!(
        position(&log, "a stops") < position(&log, "holder -"),
        "{log:?}"
    );
    assert!(
        position(&log, "holder -") < position(&log, "holder b"),
        "{log:?}"
    );
    assert!(
        position(&log, "holder b") < position(&log, "b leads"),
        "{log:?}"
    );

    b.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, b.task)
        .await
        .unwrap()
        .unwrap()
        .expect("b shuts down cleanly");
    assert_eq!(holder(&cluster), None, "b released the lease too");
}

/// A leader that dies without releasing: its lease expires and the standby takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_leaders_lease_expires() {
    let cluster = Shared::default();
    let a = candidate(&cluster, "a");
    until("a leads", || has(&cluster, "a leads")).await;
    let b = candidate(&cluster, "b");
    until("b stands by", || {
        b.health
            .report(Instant::now())
            .is_ok_and(|body| body.starts_with("standby"))
    })
    .await;

    // The leader's process dies: no graceful stop, no release.
    a.task.abort();
    until("b leads", || has(&cluster, "b leads")).await;
    assert_eq!(holder(&cluster).as_deref(), Some("b"));
    assert!(!has(&cluster, "a stops"), "a never stopped gracefully");

    b.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, b.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A leader that finds the lease held by someone else drops its controller at once and
/// returns an error (the process exits); it does not wait for the controller to stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_finds_the_lease_taken_drops_its_controller_and_fails() {
    let cluster = Shared::default();
    let a = candidate(&cluster, "a");
    until("a leads", || has(&cluster, "a leads")).await;
    {
        let mut cluster = cluster.lock().unwrap();
        let lease = cluster.lease.as_mut().unwrap();
        lease["spec"]["holderIdentity"] = json!("intruder");
        cluster.holder_manager = Some("kube-lease-manager-intruder".to_owned());
    }
    let error = tokio::time::timeout(HANG_GUARD, a.task)
        .await
        .unwrap()
        .unwrap()
        .expect_err("leadership lost");
    assert!(matches!(error, Error::Lost { .. }), "{error}");
    assert!(a.dropped.load(Ordering::SeqCst));
    assert!(!has(&cluster, "a stops"), "dropped, not stopped gracefully");
    assert_eq!(holder(&cluster).as_deref(), Some("intruder"));
    let report = a.health.report(Instant::now()).expect_err("unhealthy");
    assert!(report.contains("lost the Lease"), "{report}");
}

/// A leader whose renewals fail stops before its lease can expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_stops_before_its_lease_expires() {
    let cluster = Shared::default();
    let a = candidate(&cluster, "a");
    until("a leads", || has(&cluster, "a leads")).await;
    cluster.lock().unwrap().failing = Some("kube-lease-manager-a".to_owned());
    let error = tokio::time::timeout(HANG_GUARD, a.task)
        .await
        .unwrap()
        .unwrap()
        .expect_err("renew deadline");
    assert!(matches!(error, Error::RenewDeadline { .. }), "{error}");
    assert!(a.dropped.load(Ordering::SeqCst));
    assert!(a.health.report(Instant::now()).is_err());
}

/// A standby told to shut down returns without ever running the controller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_shuts_down_without_leading() {
    let cluster = Shared::default();
    let a = candidate(&cluster, "a");
    until("a leads", || has(&cluster, "a leads")).await;
    let b = candidate(&cluster, "b");
    until("b stands by", || {
        b.health
            .report(Instant::now())
            .is_ok_and(|body| body.starts_with("standby"))
    })
    .await;
    b.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, b.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!has(&cluster, "b leads"));
    assert_eq!(holder(&cluster).as_deref(), Some("a"));
    a.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, a.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn the_identity_is_the_pod_name_then_the_hostname_then_random() {
    assert_eq!(
        identity(Some("op-7d9f"), Some("host".to_owned())),
        "op-7d9f"
    );
    assert_eq!(identity(Some(" "), Some("host\n".to_owned())), "host");
    assert_eq!(identity(None, Some("host".to_owned())), "host");
    let random = identity(None, None);
    assert!(random.starts_with("collab-operator-"), "{random}");
    assert_ne!(random, identity(None, None));
}

#[test]
fn the_renew_deadline_falls_between_the_renewal_and_the_expiry() {
    let settings = LeaseSettings::new("l".to_owned(), "ns".to_owned(), "me".to_owned());
    let renewal = Duration::from_secs(LEASE_DURATION_SECONDS - LEASE_GRACE_SECONDS);
    assert!(settings.renew_deadline() > renewal);
    assert!(settings.renew_deadline() < settings.duration());
    assert_eq!(settings.lease(), "ns/l");
    assert_eq!(
        settings.path(),
        "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"
    );
    let bad = LeaseSettings {
        grace_seconds: 15,
        ..settings
    };
    assert!(matches!(bad.params(), Err(Error::InvalidTiming { .. })));
}
