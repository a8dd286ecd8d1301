//! The operator's Prometheus metrics: reconcile runs, failures by error kind (a static label,
//! bounded), reconcile duration, and whether this replica leads.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `collab_operator_reconcile_runs_total`
    pub runs: IntCounter,
    /// `collab_operator_reconcile_failures_total{error}`
    pub failures: IntCounterVec,
    /// `collab_operator_reconcile_duration_seconds`
    pub duration: Histogram,
    /// `collab_operator_leader`: 1 while this replica runs the controller (holds the lease,
    /// or runs without leader election), else 0.
    pub leader: IntGauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let runs = IntCounter::with_opts(Opts::new(
            "collab_operator_reconcile_runs_total",
            "CollabServer reconciliations started",
        ))?;
        let failures = IntCounterVec::new(
            Opts::new(
                "collab_operator_reconcile_failures_total",
                "CollabServer reconciliations that failed, by error kind",
            ),
            &["error"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "collab_operator_reconcile_duration_seconds",
                "Time a CollabServer reconciliation took",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let leader = IntGauge::with_opts(Opts::new(
            "collab_operator_leader",
            "1 while this replica runs the controller (holds the lease), else 0",
        ))?;
        registry.register(Box::new(runs.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            runs,
            failures,
            duration,
            leader,
        })
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_by_kind() {
        let metrics = Metrics::new().expect("metrics register");
        metrics.runs.inc();
        metrics
            .failures
            .with_label_values(&["SecretNotFound"])
            .inc();
        metrics.duration.observe(0.2);
        let text = metrics.render();
        assert!(
            text.contains("collab_operator_reconcile_runs_total 1"),
            "{text}"
        );
        assert!(
            text.contains("collab_operator_reconcile_failures_total{error=\"SecretNotFound\"} 1"),
            "{text}"
        );
        assert!(text.contains("collab_operator_reconcile_duration_seconds_count 1"));
        assert!(text.contains("collab_operator_leader 0"), "{text}");
        metrics.leader.set(1);
        assert!(metrics.render().contains("collab_operator_leader 1"));
    }
}
