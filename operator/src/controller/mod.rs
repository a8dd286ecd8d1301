//! The CollabServer controller. [`reconcile`] is the pipeline, one module per step:
//!
//! ```text
//! dereference (client, read)  referenced Secrets, managed Redis password, ServiceMonitor CRD
//! validate    (pure)          spec + dereferenced ─▶ ValidatedCollabServer
//! build       (pure)          ─▶ Resources<Prepared>
//! apply       (client, write) server-side apply, owner references, prune ─▶ Resources<Applied>
//! status      (client, write) conditions, counts, endpoint ─▶ status subresource
//! ```
//!
//! Any step's error becomes the `Reconciled=False` condition's reason and a Warning Event,
//! while `Available`, `Progressing` and `Degraded` keep describing the workloads (read again
//! after the failure); the object is requeued with exponential backoff (5 s doubling to 5 min). Nothing is deployed from a spec
//! that does not validate.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ObjectReference, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span};

use crate::crd::CollabServer;
use crate::labels;
use crate::metrics::Metrics;
use crate::scope::Scope;
use crate::validate::{self, OperatorDefaults};

/// Requeue after a successful reconcile (children's watches trigger sooner).
const RESYNC: Duration = Duration::from_secs(300);
const BACKOFF_START: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a failure is remembered without another one: twice the longest backoff, so an
/// object still failing keeps its count.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] dereference::Error),

    #[error(transparent)]
    Validate(#[from] validate::Error),

    #[error(transparent)]
    Apply(#[from] apply::Error),

    #[error(transparent)]
    Status(#[from] status::Error),

    #[error("the object does not match the CollabServer schema: {message}")]
    InvalidObject { message: String },

    #[error("the CollabServer has no metadata.uid, so children cannot be owned by it")]
    MissingUid,
}

impl Error {
    /// Static error kind: condition and Event reason, `error` label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Dereference(error) => error.kind(),
            Error::Validate(error) => error.kind(),
            Error::Apply(error) => error.kind(),
            Error::Status(error) => error.kind(),
            Error::InvalidObject { .. } => "InvalidObject",
            Error::MissingUid => "MissingUid",
        }
    }
}

/// Why `run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "the CollabServer CRD is not installed (kubectl apply -f crds/collabserver.yaml, or install the Helm chart)"
    )]
    CrdNotInstalled,
    #[error("failed to list CollabServers ({scope}): {source}")]
    ListCollabServers {
        scope: String,
        #[source]
        source: kube::Error,
    },
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub defaults: OperatorDefaults,
    /// The time conditions are stamped with (fixed in tests).
    pub clock: fn() -> Time,
    /// Consecutive failures per object, for the backoff.
    failures: Mutex<HashMap<String, Failure>>,
}

impl Context {
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        defaults: OperatorDefaults,
        pod_name: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: labels::MANAGER.to_owned(),
            instance: pod_name,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            defaults,
            clock: || Time(Timestamp::now()),
            failures: Mutex::default(),
        }
    }

    /// Backoff for an object that just failed: 5 s, doubling up to 5 min.
    fn backoff(&self, key: &str) -> Duration {
        self.backoff_at(key, Instant::now())
    }

    /// [`Context::backoff`] at a given time. Entries of objects that have not failed for
    /// [`FAILURE_MEMORY`] are dropped on the way (a deleted CollabServer never succeeds again,
    /// so `succeeded` would never remove it).
    fn backoff_at(&self, key: &str, now: Instant) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|_, failure| now.saturating_duration_since(failure.last) < FAILURE_MEMORY);
        let failure = failures.entry(key.to_owned()).or_insert(Failure {
            count: 0,
            last: now,
        });
        let delay = BACKOFF_START
            .saturating_mul(2u32.saturating_pow(failure.count))
            .min(BACKOFF_MAX);
        failure.count = failure.count.saturating_add(1);
        failure.last = now;
        delay
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Objects with a failure on record.
    #[cfg(test)]
    fn failing(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// Consecutive failures of one object.
struct Failure {
    count: u32,
    last: Instant,
}

/// Runs one controller per scope (the whole cluster, or each of `--watch-namespaces`)
/// concurrently, until `shutdown` is cancelled; then each stops taking new work and returns once
/// its running reconciles finish.
///
/// kube's `Controller` watches through one `Api`, so a list of namespaces is one controller per
/// namespace, each with its own watches and cache, sharing the [`Context`]. Every watch is in
/// the scope: CollabServers, the children the operator labels as its own, and two watches of
/// Secrets' metadata, for the operator's own Secrets and for Secrets labelled
/// [`labels::RELOAD_LABEL`]`=true`. Other referenced Secrets are read at each reconcile (at
/// least every [`RESYNC`]), not watched.
pub async fn run(
    context: Arc<Context>,
    scopes: &[Scope],
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    for scope in scopes {
        check_crd_installed(&context.client, scope).await?;
    }
    let controllers = scopes
        .iter()
        .map(|scope| run_scope(context.clone(), scope.clone(), shutdown.clone()));
    futures_util::future::join_all(controllers).await;
    Ok(())
}

/// The CRD is served (and the CollabServers of the scope can be listed).
async fn check_crd_installed(client: &Client, scope: &Scope) -> Result<(), RunError> {
    let servers: Api<DeserializeGuard<CollabServer>> = scope.api(client.clone());
    match servers.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(RunError::CrdNotInstalled),
        Err(other) => Err(RunError::ListCollabServers {
            scope: scope.describe().to_owned(),
            source: other,
        }),
    }
}

/// The label selectors of the two Secret watches: the operator's own Secrets, and those users
/// label for reload.
pub fn secret_watch_selectors() -> [String; 2] {
    [
        labels::managed_selector_string(),
        labels::reload_selector_string(),
    ]
}

async fn run_scope(context: Arc<Context>, scope: Scope, shutdown: CancellationToken) {
    let client = context.client.clone();
    let servers: Api<DeserializeGuard<CollabServer>> = scope.api(client.clone());
    let controller = Controller::new(servers, watcher::Config::default().any_semantic());
    let store = controller.store();
    let owned = watcher::Config::default().labels(&labels::managed_selector_string());
    let mut controller = controller
        .owns(scope.api::<Deployment>(client.clone()), owned.clone())
        .owns(scope.api::<Service>(client.clone()), owned.clone())
        .owns(
            scope.api::<PodDisruptionBudget>(client.clone()),
            owned.clone(),
        )
        .owns(
            scope.api::<HorizontalPodAutoscaler>(client.clone()),
            owned.clone(),
        )
        .owns(scope.api::<NetworkPolicy>(client.clone()), owned.clone())
        .owns(scope.api::<Ingress>(client.clone()), owned);
    // Metadata only, and only labelled Secrets: the operator never holds the values of Secrets
    // it does not use, nor the metadata of Secrets nobody asked it to watch.
    for selector in secret_watch_selectors() {
        let store = store.clone();
        let secrets: Api<PartialObjectMeta<Secret>> = scope.api(client.clone());
        controller = controller.watches(
            secrets,
            watcher::Config::default().labels(&selector),
            move |secret| servers_using_secret(&store, &secret),
        );
    }
    tracing::info!(scope = scope.describe(), "controller started");
    let controller = controller
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(error = %error, "controller event");
            }
        });
    // kube's graceful shutdown waits for the CollabServer cache to be ready, because no
    // reconcile starts before it is; asked to stop before then (an unreachable API server at
    // start-up), there is nothing to wait for.
    let before_ready = async move {
        shutdown.cancelled().await;
        if store.wait_until_ready().now_or_never().is_none() {
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = controller => {}
        () = before_ready => {}
    }
    tracing::info!(scope = scope.describe(), "controller stopped");
}

/// The CollabServers that refer to a Secret.
fn servers_using_secret(
    store: &Store<DeserializeGuard<CollabServer>>,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<DeserializeGuard<CollabServer>>> {
    let name = secret.name_any();
    let namespace = secret.namespace();
    store
        .state()
        .into_iter()
        .filter(|guard| guard.namespace() == namespace)
        .filter(|guard| {
            guard
                .0
                .as_ref()
                .is_ok_and(|server| crate::dereferenced::referenced_secrets(server).contains(&name))
        })
        .map(|guard| ObjectRef::from_obj(&*guard))
        .collect()
}

fn object_key<K: ResourceExt>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// Reconciles one CollabServer.
pub async fn reconcile(
    object: Arc<DeserializeGuard<CollabServer>>,
    context: Arc<Context>,
) -> Result<Action, Error> {
    let (name, namespace) = status::name_and_namespace(&*object);
    let span = info_span!("reconcile", name = %name, namespace = %namespace);
    async move {
        context.metrics.runs.inc();
        let _timer = context.metrics.duration.start_timer();
        let result = match &object.0 {
            Ok(server) => reconcile_server(server, &context).await,
            Err(invalid) => Err(Error::InvalidObject {
                message: invalid.error.clone(),
            }),
        };
        match result {
            Ok(action) => {
                context.succeeded(&object_key(&*object));
                Ok(action)
            }
            Err(error) => {
                report_failure(&object, &error, &context).await;
                Err(error)
            }
        }
    }
    .instrument(span)
    .await
}

/// The pipeline for a well-formed CollabServer.
async fn reconcile_server(server: &CollabServer, context: &Context) -> Result<Action, Error> {
    let client = &context.client;
    let (name, namespace) = status::name_and_namespace(server);
    let previous = status::Previous {
        status: server.status.as_ref(),
        generation: server.metadata.generation,
        now: (context.clock)(),
    };
    if server.spec.paused {
        status::patch(client, &namespace, &name, &status::paused(&previous)).await?;
        return Ok(Action::await_change());
    }
    let owner_uid = server.uid().ok_or(Error::MissingUid)?;

    // 1. dereference (client: reads Secrets and discovery)
    let dereferenced = dereference::dereference(client, server).await?;
    // 2. validate (pure)
    let validated = validate::validate(server, &dereferenced, &context.defaults)?;
    // 3. build (pure)
    let prepared = build::build(&validated);
    let prepared_hash = prepared.hash();
    // 4. apply (client: server-side apply, then prune)
    let target = apply::Target {
        client,
        namespace: &namespace,
        instance: &name,
        owner_uid: &owner_uid,
        service_monitors_served: dereferenced.service_monitor_crd,
    };
    let apply::Outcome {
        applied,
        deleted,
        warnings,
    } = apply::apply(&target, prepared).await?;
    // 5. status (client: status subresource)
    let new_status = status::applied(&previous, &validated, &applied, &prepared_hash, &warnings);
    status::patch(client, &namespace, &name, &new_status).await?;

    let previous_hash = server
        .status
        .as_ref()
        .and_then(|s| s.applied_hash.as_deref());
    if previous_hash != Some(prepared_hash.as_str()) {
        publish(
            context,
            server,
            EventType::Normal,
            "Applied",
            format!(
                "applied the spec (configuration {}): Deployment {name}, endpoint {}",
                prepared_hash,
                validated.endpoint()
            ),
            None,
        )
        .await;
    }
    for object in deleted {
        // The deleted object as `related`, so each deletion is its own Event rather than one
        // series.
        let related = ObjectReference {
            api_version: Some(object.api_version.clone()),
            kind: Some(object.kind.clone()),
            name: Some(object.name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectReference::default()
        };
        publish(
            context,
            server,
            EventType::Normal,
            "Deleted",
            format!(
                "deleted {} {}: the spec no longer asks for it",
                object.kind, object.name
            ),
            Some(related),
        )
        .await;
    }
    Ok(Action::requeue(RESYNC))
}

/// Condition and Warning Event for a failed reconcile.
async fn report_failure(object: &DeserializeGuard<CollabServer>, error: &Error, context: &Context) {
    let (name, namespace) = status::name_and_namespace(object);
    let previous_status = object
        .0
        .as_ref()
        .ok()
        .and_then(|server| server.status.as_ref());
    let previous = status::Previous {
        status: previous_status,
        generation: object.meta().generation,
        now: (context.clock)(),
    };
    let message = error.to_string();
    tracing::warn!(error = %message, kind = error.kind(), "reconcile failed");
    if !matches!(error, Error::Status(_)) {
        let managed_redis = object
            .0
            .as_ref()
            .is_ok_and(crate::dereferenced::wants_managed_redis);
        let (workloads, message) =
            match status::observe(&context.client, &namespace, &name, managed_redis).await {
                Ok(workloads) => (Some(workloads), message.clone()),
                Err(read_error) => {
                    tracing::warn!(error = %read_error, "cannot read the workloads for the status");
                    let message =
                        format!("{message}; the workloads could not be read: {read_error}");
                    (None, message)
                }
            };
        let failed = status::failed(&previous, &name, workloads.as_ref(), error.kind(), &message);
        if let Err(patch_error) = status::patch(&context.client, &namespace, &name, &failed).await {
            tracing::warn!(error = %patch_error, "failed to record the failure in the status");
        }
    }
    let reference = object.object_ref(&());
    let event = Event {
        type_: EventType::Warning,
        reason: error.kind().to_owned(),
        note: Some(truncate(message)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(event_error) = context.recorder.publish(&event, &reference).await {
        tracing::warn!(error = %event_error, "failed to publish an event");
    }
}

async fn publish(
    context: &Context,
    server: &CollabServer,
    type_: EventType,
    reason: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(truncate(note)),
        action: "Reconcile".to_owned(),
        secondary: related,
    };
    if let Err(error) = context
        .recorder
        .publish(&event, &server.object_ref(&()))
        .await
    {
        tracing::warn!(error = %error, "failed to publish an event");
    }
}

/// Events notes are limited to 1 kB.
fn truncate(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 1000;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// Counts the failure and requeues with backoff.
pub fn error_policy(
    object: Arc<DeserializeGuard<CollabServer>>,
    error: &Error,
    context: Arc<Context>,
) -> Action {
    context
        .metrics
        .failures
        .with_label_values(&[error.kind()])
        .inc();
    Action::requeue(context.backoff(&object_key(&*object)))
}

#[cfg(test)]
mod run_tests;
#[cfg(test)]
mod tests;
