//! Leader election on a `coordination.k8s.io/v1` Lease (with the `kube-lease-manager` crate):
//! of the replicas of the operator, only the one holding the Lease runs the controller.
//!
//! ```text
//! standby ──(lease free or expired)──▶ leader ──(SIGTERM)──▶ controller stops ─▶ release ─▶ exit 0
//!    │                                    ├──(lease taken / not renewed in time)──▶ exit 1
//!    └──(SIGTERM)──▶ exit 0               └──(controller ends by itself)──▶ release ─▶ exit 1
//! ```
//!
//! A leader renews every `duration - grace` seconds. If it cannot renew for
//! [`LeaseSettings::renew_deadline`] (before the lease can expire and a standby take it), or it
//! finds the lease held by someone else, it drops the controller at once and [`run`] returns an
//! error, so the process exits and the pod restarts clean (client-go's convention): its caches,
//! backoffs and in-flight reconciles belong to a term that is over, and a fresh process is the
//! simplest way to be sure none of them acts again. It comes back as a standby.
//!
//! Renewals happen inside the lease manager; the lease client is wrapped ([`observed_client`])
//! so that every successful write of the Lease is recorded in [`Health`], which the renew
//! deadline and `/health` read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::client::Body;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use tokio_util::sync::CancellationToken;

use crate::controller::RunError;
use crate::health::Health;

/// Seconds a lease is valid after its last renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry at which the leader renews (so every 10 s).
pub const LEASE_GRACE_SECONDS: u64 = 5;
/// How long the leader waits for running reconciles to finish after SIGTERM before it releases
/// the lease anyway (within the pod's default 30 s grace period).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on the final release, so a dead API server does not hold the exit up.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between retries of a failed renewal or lease read.
const RETRY: Duration = Duration::from_secs(1);
/// Longest pause of a standby between failed attempts (1 s doubling).
const STANDBY_RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the leader checks its renew deadline.
const WATCHDOG: Duration = Duration::from_millis(500);

/// Which lease, who this replica is, and the lease timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// The holder identity: the pod name, else the hostname, else a random id.
    pub identity: String,
    pub duration_seconds: u64,
    pub grace_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lease timing: need 0 < grace ({grace}s) < duration ({duration}s)")]
    InvalidTiming { duration: u64, grace: u64 },

    #[error(
        "failed to read or create the Lease {lease} (the operator needs get, create, patch and update on leases in that namespace): {source}"
    )]
    Setup {
        lease: String,
        #[source]
        source: LeaseManagerError,
    },

    #[error("lost the Lease {lease}: another replica holds it; stopping so the pod restarts")]
    Lost { lease: String },

    #[error(
        "could not renew the Lease {lease} for {seconds}s (deadline {deadline}s); stopping before another replica can take it"
    )]
    RenewDeadline {
        lease: String,
        seconds: u64,
        deadline: u64,
    },

    #[error("the controller stopped: {0}")]
    Controller(#[source] RunError),

    #[error("the controller stopped without being asked to")]
    ControllerEnded,
}

impl LeaseSettings {
    /// Default timing ([`LEASE_DURATION_SECONDS`], [`LEASE_GRACE_SECONDS`]).
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        Self {
            name,
            namespace,
            identity,
            duration_seconds: LEASE_DURATION_SECONDS,
            grace_seconds: LEASE_GRACE_SECONDS,
        }
    }

    /// `namespace/name`, for logs and health.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }

    /// A leader that has not renewed for this long stops: after the renewal it missed
    /// (`duration - grace`) and before the lease expires (`duration`), half the grace early.
    pub fn renew_deadline(&self) -> Duration {
        self.duration()
            .saturating_sub(Duration::from_secs(self.grace_seconds) / 2)
    }

    /// The API path of the Lease.
    pub fn path(&self) -> String {
        format!(
            "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
            self.namespace, self.name
        )
    }

    fn params(&self) -> Result<LeaseParams, Error> {
        if self.grace_seconds == 0 || self.grace_seconds >= self.duration_seconds {
            return Err(Error::InvalidTiming {
                duration: self.duration_seconds,
                grace: self.grace_seconds,
            });
        }
        // The field manager is per identity (`kube-lease-manager-<identity>`): server-side
        // apply's conflict between two managers is what stops two replicas taking a free lease
        // at once.
        Ok(LeaseParams::new(
            self.identity.clone(),
            self.duration_seconds,
            self.grace_seconds,
        ))
    }
}

/// The holder identity: the pod name (`COLLAB_OPERATOR_POD_NAME`), else the hostname, else
/// `collab-operator-<random>`.
pub fn identity(pod_name: Option<&str>, hostname: Option<String>) -> String {
    let non_empty = |value: &str| {
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    };
    pod_name
        .and_then(non_empty)
        .or_else(|| hostname.as_deref().and_then(non_empty))
        .unwrap_or_else(|| {
            use rand::Rng as _;
            let suffix: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(12)
                .map(|byte| char::from(byte).to_ascii_lowercase())
                .collect();
            format!("collab-operator-{suffix}")
        })
}

/// This machine's hostname (`HOSTNAME`, else `/etc/hostname`), if any.
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
}

/// A client that sends through `client` and records in `health` the start of every successful
/// write (PATCH) of the Lease at `lease_path`: the lease manager's acquisitions and renewals.
pub fn observed_client(client: Client, lease_path: String, health: Arc<Health>) -> Client {
    let default_namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let client = client.clone();
        let health = health.clone();
        let is_lease_write =
            request.method() == http::Method::PATCH && request.uri().path() == lease_path;
        async move {
            let started = Instant::now();
            let response = client.send(request).await?;
            if is_lease_write && response.status().is_success() {
                health.renewed(started);
            }
            Ok::<_, kube::Error>(response)
        }
    });
    Client::new(service, default_namespace)
}

type Changed<'a> = Pin<Box<dyn Future<Output = kube_lease_manager::Result<bool>> + Send + 'a>>;

/// Waits for the Lease, then runs `lead` (the controller) while holding it, until `shutdown`
/// is cancelled (Ok: the controller stopped and the lease was released) or leadership ends
/// otherwise (an error: the process should exit non-zero).
///
/// `lead` gets a token that is cancelled when it must stop gracefully; on a loss of leadership
/// its future is dropped instead, at once.
pub async fn run<F, Fut>(
    client: Client,
    settings: &LeaseSettings,
    health: Arc<Health>,
    shutdown: CancellationToken,
    lead: F,
) -> Result<(), Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    let lease = settings.lease();
    let params = settings.params()?;
    let client = observed_client(client, settings.path(), health.clone());
    let manager = LeaseManagerBuilder::new(client, &settings.name)
        .with_namespace(&settings.namespace)
        .with_parameters(params)
        .build()
        .await
        .map_err(|source| Error::Setup {
            lease: lease.clone(),
            source,
        })?;

    health.standby(&lease);
    tracing::info!(%lease, identity = %settings.identity, "waiting for the lease (standby)");
    if !wait_for_lease(&manager, &lease, &shutdown).await {
        tracing::info!(%lease, "shutting down as a standby");
        release(&manager, &lease).await;
        return Ok(());
    }

    health.leading(&lease, Instant::now());
    tracing::info!(%lease, identity = %settings.identity, "acquired the lease: this replica leads");
    let outcome = lead_while_holding(&manager, settings, &health, &shutdown, lead).await;
    match &outcome {
        Ok(()) => health.stopped("shut down"),
        Err(error) => health.stopped(error.to_string()),
    }
    if !matches!(outcome, Err(Error::Lost { .. })) {
        release(&manager, &lease).await;
    }
    outcome
}

/// Standby: true once this replica holds the lease, false if `shutdown` came first.
async fn wait_for_lease(manager: &LeaseManager, lease: &str, shutdown: &CancellationToken) -> bool {
    let mut pause = RETRY;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return false,
            result = manager.changed() => match result {
                Ok(true) => return true,
                Ok(false) => pause = RETRY,
                Err(error) => {
                    tracing::warn!(%lease, error = %error, retry_in = ?pause, "failed to read or take the lease");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = pause.saturating_mul(2).min(STANDBY_RETRY_MAX);
                }
            },
        }
    }
}

/// Leader: runs the controller and keeps the lease renewed until the controller stops or
/// leadership ends. Returns with the controller's future dropped.
async fn lead_while_holding<F, Fut>(
    manager: &LeaseManager,
    settings: &LeaseSettings,
    health: &Health,
    shutdown: &CancellationToken,
    lead: F,
) -> Result<(), Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), RunError>>,
{
    let lease = settings.lease();
    let deadline = settings.renew_deadline();
    let stop = CancellationToken::new();
    let mut controller = Box::pin(lead(stop.clone()));
    let mut changed: Changed<'_> = Box::pin(manager.changed());
    let mut watchdog = tokio::time::interval(WATCHDOG);
    let mut stopping: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            result = &mut controller => {
                return match (result, stopping) {
                    (Err(error), _) => Err(Error::Controller(error)),
                    (Ok(()), Some(_)) => Ok(()),
                    (Ok(()), None) => Err(Error::ControllerEnded),
                };
            }
            () = shutdown.cancelled(), if stopping.is_none() => {
                tracing::info!(%lease, "shutting down: stopping the controller, then releasing the lease");
                stop.cancel();
                stopping = Some(tokio::time::Instant::now() + STOP_TIMEOUT);
            }
            () = tokio::time::sleep_until(stopping.unwrap_or_else(tokio::time::Instant::now)), if stopping.is_some() => {
                tracing::warn!(%lease, "running reconciles did not finish in time; releasing the lease anyway");
                return Ok(());
            }
            result = &mut changed => match result {
                Ok(false) => {
                    tracing::error!(%lease, "the lease is held by another replica");
                    return Err(Error::Lost { lease });
                }
                Ok(true) => changed = Box::pin(manager.changed()),
                Err(error) => {
                    tracing::warn!(%lease, error = %error, "failed to renew the lease; retrying");
                    changed = Box::pin(async {
                        tokio::time::sleep(RETRY).await;
                        manager.changed().await
                    });
                }
            },
            _ = watchdog.tick() => {
                let since = health.since_renewal(Instant::now()).unwrap_or(Duration::MAX);
                if since > deadline {
                    tracing::error!(%lease, seconds = since.as_secs(), "the lease was not renewed in time");
                    return Err(Error::RenewDeadline {
                        lease,
                        seconds: since.as_secs(),
                        deadline: deadline.as_secs(),
                    });
                }
            }
        }
    }
}

/// Gives the lease up (best effort, bounded) so a standby takes over without waiting for it
/// to expire.
async fn release(manager: &LeaseManager, lease: &str) {
    match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
        Ok(Ok(())) => tracing::info!(%lease, "released the lease"),
        Ok(Err(error)) => tracing::warn!(%lease, error = %error, "failed to release the lease"),
        Err(_) => tracing::warn!(%lease, "timed out releasing the lease"),
    }
}

#[cfg(test)]
mod tests;
