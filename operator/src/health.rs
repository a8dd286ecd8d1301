//! What `/health` reports: whether this replica's controller is alive. Written by
//! `main` and [`crate::leader`], read by [`crate::admin`], and mirrored in the
//! `collab_operator_leader` gauge.
//!
//! | Phase | `/health` |
//! |---|---|
//! | starting (before the controller or the election starts) | 200 `starting` |
//! | running without leader election | 200 `ok` |
//! | standby, waiting for the Lease | 200 `standby: ...` |
//! | leading, lease renewed within the lease duration | 200 `leader` |
//! | leading, lease not renewed within the lease duration | 503 |
//! | the controller stopped (or leadership was lost) | 503 with the reason |

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus::IntGauge;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    /// Leader election is off: the controller runs from the start.
    Running,
    Standby {
        lease: String,
    },
    Leading {
        lease: String,
    },
    Stopped {
        reason: String,
    },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// When the lease was last written successfully by this replica (acquired or renewed).
    renewed: Option<Instant>,
}

/// Shared liveness state of this replica.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    /// A leader that has not renewed for this long is unhealthy.
    lease_duration: Duration,
    /// `collab_operator_leader`, when metrics are registered.
    leader_gauge: Option<IntGauge>,
}

/// `/health`'s answer: healthy with a body, or unhealthy with a reason.
pub type Report = Result<String, String>;

impl Health {
    pub fn new(lease_duration: Duration, leader_gauge: Option<IntGauge>) -> Self {
        Self {
            state: Mutex::new(State {
                phase: Phase::Starting,
                renewed: None,
            }),
            lease_duration,
            leader_gauge,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        let leading = matches!(phase, Phase::Leading { .. } | Phase::Running);
        self.lock().phase = phase;
        if let Some(gauge) = &self.leader_gauge {
            gauge.set(i64::from(leading));
        }
    }

    /// Leader election is off and the controller runs.
    pub fn running(&self) {
        self.set(Phase::Running);
    }

    /// Waiting for `lease` (`namespace/name`).
    pub fn standby(&self, lease: &str) {
        self.set(Phase::Standby {
            lease: lease.to_owned(),
        });
    }

    /// This replica holds `lease` and runs the controller. `acquired` counts as the last
    /// renewal only when no write of the lease was observed (a restarted container that finds
    /// itself still the holder).
    pub fn leading(&self, lease: &str, acquired: Instant) {
        self.lock().renewed.get_or_insert(acquired);
        self.set(Phase::Leading {
            lease: lease.to_owned(),
        });
    }

    /// The controller no longer runs (an error, or leadership lost).
    pub fn stopped(&self, reason: impl Into<String>) {
        self.set(Phase::Stopped {
            reason: reason.into(),
        });
    }

    /// A successful write of the lease that started at `at`.
    pub fn renewed(&self, at: Instant) {
        let mut state = self.lock();
        if state.renewed.is_none_or(|previous| previous < at) {
            state.renewed = Some(at);
        }
    }

    /// How long ago the lease was last written successfully (None: never).
    pub fn since_renewal(&self, now: Instant) -> Option<Duration> {
        self.lock()
            .renewed
            .map(|renewed| now.saturating_duration_since(renewed))
    }

    /// Whether this replica holds the lease (or runs without one).
    pub fn is_leading(&self) -> bool {
        matches!(self.lock().phase, Phase::Leading { .. } | Phase::Running)
    }

    /// The `/health` answer at `now`.
    pub fn report(&self, now: Instant) -> Report {
        let state = self.lock();
        match &state.phase {
            Phase::Starting => Ok("starting".to_owned()),
            Phase::Running => Ok("ok".to_owned()),
            Phase::Standby { lease } => Ok(format!("standby: waiting for the lease {lease}")),
            Phase::Leading { lease } => {
                let since = state
                    .renewed
                    .map(|renewed| now.saturating_duration_since(renewed));
                match since {
                    Some(since) if since <= self.lease_duration => Ok("leader".to_owned()),
                    Some(since) => Err(format!(
                        "leader, but the lease {lease} was not renewed for {}s (lease duration {}s)",
                        since.as_secs(),
                        self.lease_duration.as_secs()
                    )),
                    None => Err(format!("leader, but the lease {lease} was never renewed")),
                }
            }
            Phase::Stopped { reason } => Err(format!("controller stopped: {reason}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn phases_report_as_documented() {
        let health = Health::new(LEASE, None);
        let start = Instant::now();
        assert_eq!(health.report(start), Ok("starting".to_owned()));
        health.standby("ops/collab-operator");
        assert_eq!(
            health.report(start),
            Ok("standby: waiting for the lease ops/collab-operator".to_owned())
        );
        assert!(!health.is_leading());
        health.leading("ops/collab-operator", start);
        assert!(health.is_leading());
        assert_eq!(health.report(start + LEASE), Ok("leader".to_owned()));
        let stale = health
            .report(start + LEASE + Duration::from_secs(1))
            .expect_err("not renewed within the lease duration");
        assert!(stale.contains("not renewed for 16s"), "{stale}");
        health.renewed(start + Duration::from_secs(10));
        assert_eq!(
            health.report(start + LEASE + Duration::from_secs(1)),
            Ok("leader".to_owned())
        );
        health.stopped("leadership lost");
        assert_eq!(
            health.report(start),
            Err("controller stopped: leadership lost".to_owned())
        );
        assert!(!health.is_leading());
    }

    #[test]
    fn an_older_renewal_does_not_move_the_time_back() {
        let health = Health::new(LEASE, None);
        let start = Instant::now();
        health.renewed(start + Duration::from_secs(5));
        health.renewed(start);
        assert_eq!(
            health.since_renewal(start + Duration::from_secs(6)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_gauge_follows_leadership() {
        let gauge = IntGauge::new("leader", "help").unwrap();
        let health = Health::new(LEASE, Some(gauge.clone()));
        health.running();
        assert_eq!(gauge.get(), 1);
        health.stopped("done");
        assert_eq!(gauge.get(), 0);
        health.leading("l", Instant::now());
        assert_eq!(gauge.get(), 1);
        health.standby("l");
        assert_eq!(gauge.get(), 0);
    }
}
