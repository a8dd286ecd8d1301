//! Prometheus metrics: one registry, typed handles, bounded labels only (never a document name).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Message kinds counted in `collab_server_messages_total` (the `type` label).
const MESSAGE_KINDS: [&str; 11] = [
    "sync_step1",
    "sync_step2",
    "sync_update",
    "awareness",
    "auth",
    "query_awareness",
    "sync_reply",
    "stateless",
    "broadcast_stateless",
    "close",
    "sync_status",
];

pub struct Metrics {
    registry: Registry,
    /// Every metric family name this process exports (Vec metrics appear in `/metrics` only
    /// once a label value is used; dashboards are checked against this list).
    families: Vec<String>,
    /// Pre-resolved `messages_total` handles: `[in, out][kind]` (label lookups hash strings).
    message_counters: [[IntCounter; MESSAGE_KINDS.len()]; 2],
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub connections: IntGauge,
    pub connections_total: IntCounterVec,
    pub documents_loaded: IntGauge,
    pub document_sessions: IntGauge,
    pub messages: IntCounterVec,
    pub bytes: IntCounterVec,
    pub auth: IntCounterVec,
    pub document_load_duration: Histogram,
    pub update_apply_duration: Histogram,
    pub store_duration: HistogramVec,
    pub store_errors: IntCounterVec,
    pub log_rows_appended: IntCounter,
    pub store_commits: IntCounter,
    pub compactions: IntCounter,
    pub pending_updates: IntGauge,
    pub ack_duration: Histogram,
    pub fanout_drops: IntCounter,
    pub closes: IntCounterVec,
    pub relay_messages_in: IntCounter,
    pub relay_messages_out: IntCounter,
    pub relay_dropped: IntCounter,
    /// Relay messages of a document generation that a DELETE ended, dropped.
    pub relay_stale: IntCounter,
    pub relay_errors: IntCounter,
    /// 1 while a dependency answers, 0 while it does not (`dependency`: `store`, `relay`).
    pub dependency_up: IntGaugeVec,
    pub throttled: IntCounter,
    pub updates_refused: IntCounterVec,
    pub updates_quarantined: IntCounter,
    pub awareness_refused: IntCounter,
    pub api_requests: IntCounterVec,
    pub api_duration: HistogramVec,
    pub webhooks: IntCounterVec,
}

/// `connections_total{protocol}`.
const PROTOCOLS: [&str; 2] = ["hocuspocus", "y-websocket"];
/// `socket_closes_total{reason}`: `connection::writer::close_label` and the admission refusals.
const CLOSE_REASONS: [&str; 12] = [
    "normal",
    "invalid_payload",
    "policy",
    "shutdown",
    "reset",
    "unauthorized",
    "timeout",
    "too_big",
    "protocol",
    "other",
    "connection_limit",
    "address_limit",
];
/// `auth_total{outcome}`: granted, and every `auth::Denied::kind`.
const AUTH_OUTCOMES: [&str; 7] = [
    "granted",
    "missing_token",
    "expired",
    "invalid_token",
    "unknown_key",
    "document_not_allowed",
    "keys_unavailable",
];
/// `store_duration_seconds{operation}`: the operations `storage::Instrumented` times.
const STORE_OPERATIONS: [&str; 11] = [
    "load",
    "append",
    "compact",
    "list",
    "delete",
    "create_version",
    "versions",
    "version",
    "delete_version",
    "record_activity",
    "activity",
];
/// `api_requests_total{route}`: every route label of `api::authenticate`.
const API_ROUTES: [&str; 14] = [
    "list",
    "read",
    "replace",
    "delete",
    "apply",
    "create_version",
    "versions",
    "read_version",
    "delete_version",
    "restore",
    "activity",
    "revoke",
    "revocations",
    "other",
];
/// `store_errors_total{kind}`: every `storage::StoreError::kind`.
const STORE_ERROR_KINDS: [&str; 14] = [
    "connect",
    "migrate",
    "load",
    "append",
    "compact",
    "corrupt",
    "list",
    "delete",
    "unreachable",
    "data_directory",
    "superseded",
    "versions",
    "activity",
    "revocations",
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let name = |n: &str| format!("collab_server_{n}");
        let connections =
            IntGauge::new(name("connections"), "Open WebSocket connections").expect("valid metric");
        let connections_total = IntCounterVec::new(
            Opts::new(
                name("connections_total"),
                "WebSocket connections accepted, by protocol",
            ),
            &["protocol"],
        )
        .expect("valid metric");
        let documents_loaded = IntGauge::new(name("documents_loaded"), "Documents held in memory")
            .expect("valid metric");
        let document_sessions = IntGauge::new(
            name("document_sessions"),
            "Document subscriptions across all sockets",
        )
        .expect("valid metric");
        let messages = IntCounterVec::new(
            Opts::new(
                name("messages_total"),
                "Protocol messages, by direction and type",
            ),
            &["direction", "type"],
        )
        .expect("valid metric");
        let bytes = IntCounterVec::new(
            Opts::new(name("bytes_total"), "WebSocket payload bytes, by direction"),
            &["direction"],
        )
        .expect("valid metric");
        let auth = IntCounterVec::new(
            Opts::new(name("auth_total"), "Document authentication outcomes"),
            &["outcome"],
        )
        .expect("valid metric");
        let document_load_duration = Histogram::with_opts(
            HistogramOpts::new(
                name("document_load_duration_seconds"),
                "Time to load a document",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let update_apply_duration = Histogram::with_opts(
            HistogramOpts::new(
                name("update_apply_duration_seconds"),
                "Time to apply one client update to the document",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let store_duration = HistogramVec::new(
            HistogramOpts::new(name("store_duration_seconds"), "Storage operation latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )
        .expect("valid metric");
        let store_errors = IntCounterVec::new(
            Opts::new(name("store_errors_total"), "Storage errors, by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let log_rows_appended = IntCounter::new(
            name("log_rows_appended_total"),
            "Updates appended to the durable update log",
        )
        .expect("valid metric");
        let store_commits = IntCounter::new(
            name("store_commits_total"),
            "Transactions that made appended updates durable (SQLite and PostgreSQL: one WAL flush each, \
             shared by every document it wrote); log_rows_appended_total / this = rows per commit",
        )
        .expect("valid metric");
        let compactions = IntCounter::new(
            name("compactions_total"),
            "Update logs folded into document snapshots",
        )
        .expect("valid metric");
        let pending_updates = IntGauge::new(
            name("pending_updates"),
            "Updates applied in memory but not yet durable (not acknowledged)",
        )
        .expect("valid metric");
        let ack_duration = Histogram::with_opts(
            HistogramOpts::new(
                name("ack_duration_seconds"),
                "Time from receiving an update to acknowledging it as durable",
            )
            // Finer than the other latencies: this is the durability promise's price.
            .buckets(prometheus::exponential_buckets(0.00005, 1.5, 28).expect("valid buckets")),
        )
        .expect("valid metric");
        let fanout_drops = IntCounter::new(
            name("fanout_queue_drops_total"),
            "Sockets disconnected because their outbound queue was full",
        )
        .expect("valid metric");
        let counter = |n: &str, help: &str| IntCounter::new(name(n), help).expect("valid metric");
        let relay_messages_in = counter(
            "relay_messages_received_total",
            "Messages from peer replicas through Redis (our own echoes excluded)",
        );
        let relay_messages_out = counter(
            "relay_messages_published_total",
            "Messages published to peer replicas through Redis",
        );
        let relay_dropped = counter(
            "relay_messages_dropped_total",
            "Relay messages dropped (queue full or reader behind); healed by the next resync",
        );
        let relay_stale = counter(
            "relay_messages_stale_total",
            "Relay messages of a deleted document's earlier generation, dropped unapplied",
        );
        let relay_errors = counter(
            "relay_errors_total",
            "Failed Redis publishes and subscriptions, and malformed relay messages",
        );
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                name("dependency_up"),
                "1 while a dependency answers, 0 while it does not: store (the database, as /ready last saw it) and relay (Redis connection)",
            ),
            &["dependency"],
        )
        .expect("valid metric");
        // The store answered before the server started serving (it does not start otherwise).
        dependency_up.with_label_values(&["store"]).set(1);
        let throttled = counter(
            "throttled_total",
            "Times a socket's reads were paused for exceeding its message or byte rate",
        );
        let updates_quarantined = counter(
            "updates_quarantined_total",
            "Stored updates that could not be integrated when loading a document: kept aside, not served",
        );
        let awareness_refused = counter(
            "awareness_refused_total",
            "Awareness entries dropped: another session's client id, or over the per-session or per-document cap",
        );
        let updates_refused = IntCounterVec::new(
            Opts::new(
                name("updates_refused_total"),
                "Client updates refused, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in [
            "document_too_large",
            "invalid",
            "conflicting_ids",
            "pending_full",
        ] {
            updates_refused.with_label_values(&[reason]);
        }
        let api_requests = IntCounterVec::new(
            Opts::new(
                name("api_requests_total"),
                "Document API requests, by route and status code",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let api_duration = HistogramVec::new(
            HistogramOpts::new(
                name("api_request_duration_seconds"),
                "Document API request time, by route (writes include being stored)",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let webhooks = IntCounterVec::new(
            Opts::new(
                name("webhook_deliveries_total"),
                "Webhook deliveries, by event and outcome (sent, failed after retries, dropped: queue full)",
            ),
            &["event", "outcome"],
        )
        .expect("valid metric");
        // Every route from the first scrape, so a dashboard's rate is 0, not "no data".
        for route in API_ROUTES {
            api_requests.with_label_values(&[route, "200"]);
            api_duration.with_label_values(&[route]);
        }
        for event in [
            "change",
            "connect",
            "disconnect",
            "create",
            "version.created",
            "version.restored",
        ] {
            for outcome in ["sent", "failed", "dropped"] {
                webhooks.with_label_values(&[event, outcome]);
            }
        }
        let closes = IntCounterVec::new(
            Opts::new(
                name("socket_closes_total"),
                "Sockets closed by the server, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");

        // Every label value a dashboard may group by exists from the first scrape (at 0), so
        // panels show 0 rather than "No data".
        for protocol in PROTOCOLS {
            connections_total.with_label_values(&[protocol]);
        }
        for reason in CLOSE_REASONS {
            closes.with_label_values(&[reason]);
        }
        for outcome in AUTH_OUTCOMES {
            auth.with_label_values(&[outcome]);
        }
        for operation in STORE_OPERATIONS {
            store_duration.with_label_values(&[operation]);
        }
        for kind in STORE_ERROR_KINDS {
            store_errors.with_label_values(&[kind]);
        }

        let mut families = Vec::new();
        for collector in [
            Box::new(connections.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_total.clone()),
            Box::new(documents_loaded.clone()),
            Box::new(document_sessions.clone()),
            Box::new(messages.clone()),
            Box::new(bytes.clone()),
            Box::new(auth.clone()),
            Box::new(document_load_duration.clone()),
            Box::new(update_apply_duration.clone()),
            Box::new(store_duration.clone()),
            Box::new(store_errors.clone()),
            Box::new(log_rows_appended.clone()),
            Box::new(store_commits.clone()),
            Box::new(compactions.clone()),
            Box::new(pending_updates.clone()),
            Box::new(ack_duration.clone()),
            Box::new(fanout_drops.clone()),
            Box::new(relay_messages_in.clone()),
            Box::new(relay_messages_out.clone()),
            Box::new(relay_dropped.clone()),
            Box::new(relay_stale.clone()),
            Box::new(relay_errors.clone()),
            Box::new(dependency_up.clone()),
            Box::new(closes.clone()),
            Box::new(throttled.clone()),
            Box::new(updates_refused.clone()),
            Box::new(updates_quarantined.clone()),
            Box::new(awareness_refused.clone()),
            Box::new(api_requests.clone()),
            Box::new(api_duration.clone()),
            Box::new(webhooks.clone()),
        ] {
            families.extend(collector.desc().iter().map(|desc| desc.fq_name.clone()));
            registry
                .register(collector)
                .expect("metric registered once");
        }
        let build_info = IntGaugeVec::new(
            Opts::new(name("build_info"), "Always 1; the version of this build"),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let mut extra: Vec<Box<dyn prometheus::core::Collector>> = vec![Box::new(build_info)];
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
        #[cfg(target_os = "linux")]
        extra.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        for collector in extra {
            families.extend(collector.desc().iter().map(|desc| desc.fq_name.clone()));
            registry
                .register(collector)
                .expect("metric registered once");
        }
        let counters_for = |direction: &str| {
            MESSAGE_KINDS.map(|kind| messages.with_label_values(&[direction, kind]))
        };
        let message_counters = [counters_for("in"), counters_for("out")];
        let bytes_in = bytes.with_label_values(&["in"]);
        let bytes_out = bytes.with_label_values(&["out"]);
        Self {
            registry,
            families,
            message_counters,
            bytes_in,
            bytes_out,
            connections,
            connections_total,
            documents_loaded,
            document_sessions,
            messages,
            bytes,
            auth,
            document_load_duration,
            update_apply_duration,
            store_duration,
            store_errors,
            log_rows_appended,
            store_commits,
            compactions,
            pending_updates,
            ack_duration,
            fanout_drops,
            closes,
            relay_messages_in,
            relay_messages_out,
            relay_dropped,
            relay_stale,
            relay_errors,
            dependency_up,
            throttled,
            updates_refused,
            updates_quarantined,
            awareness_refused,
            api_requests,
            api_duration,
            webhooks,
        }
    }

    /// The names of every metric family (histograms without their `_bucket`/`_sum`/`_count`).
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Counts `n` messages of `kind` (one of [`Message::kind`](crate::protocol::Message::kind)).
    pub fn messages(&self, direction: Direction, kind: &'static str, n: u64) {
        match MESSAGE_KINDS.iter().position(|k| *k == kind) {
            Some(index) => self.message_counters[direction as usize][index].inc_by(n),
            None => self
                .messages
                .with_label_values(&[direction.label(), kind])
                .inc_by(n),
        }
    }

    pub fn message(&self, direction: Direction, kind: &'static str) {
        self.messages(direction, kind, 1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In = 0,
    Out = 1,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_the_collab_server_prefix() {
        let metrics = Metrics::new();
        metrics.message(Direction::In, "sync_update");
        metrics.messages(Direction::Out, "sync_update", 3);
        metrics.auth.with_label_values(&["denied"]).inc();
        let text = metrics.render();
        assert!(
            text.contains("collab_server_messages_total{direction=\"in\",type=\"sync_update\"} 1")
        );
        assert!(text.contains("collab_server_auth_total{outcome=\"denied\"} 1"));
        assert!(text.contains("# TYPE collab_server_connections gauge"));
        assert!(text.contains(&format!(
            "collab_server_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
    }

    /// The dashboards' queries select targets only by labels every Prometheus set-up gives them:
    /// `instance` (and `namespace`, which a regex `.*` also matches where it is absent, as in
    /// Compose). A job name (`collab-server` in Compose, the metrics Service's name under the
    /// operator's ServiceMonitor) or a pod label would leave panels empty on one of them.
    #[test]
    fn dashboards_select_by_labels_both_set_ups_have() {
        for (_, expr) in dashboard_exprs() {
            for target_label in ["job", "pod", "service", "container", "endpoint"] {
                for operator in ["=", "=~", "!=", "!~"] {
                    let selector = format!("{target_label}{operator}\"");
                    assert!(
                        !expr.contains(&selector),
                        "{expr} selects by {target_label}, which Compose and Kubernetes set differently"
                    );
                }
            }
        }
    }

    /// The shipped alert rules query only metrics that exist, and the chart's copy is the same
    /// file.
    #[test]
    fn alert_rules_query_metrics_that_exist() {
        let metrics = Metrics::new();
        let known = metrics.family_names();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let rules = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml"))
            .expect("alert rules");
        let chart = std::fs::read_to_string(
            root.join("charts/collab-operator/files/collab-server-alerts.yml"),
        )
        .expect("the chart's alert rules");
        assert_eq!(rules, chart, "the chart ships the same rules");
        let mut checked = 0;
        for line in rules.lines() {
            let Some(expr) = line.trim().strip_prefix("expr: ") else {
                continue;
            };
            for name in metric_names(expr) {
                let base = family(&name, known);
                assert!(known.iter().any(|k| k == base), "{base} in {expr}");
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} metric references found");
    }

    /// Every metric family has a panel (issue 24: a family nobody charts is found out only in an
    /// incident).
    #[test]
    fn every_metric_family_has_a_panel() {
        let metrics = Metrics::new();
        let known = metrics.family_names();
        let queried: std::collections::HashSet<String> = dashboard_exprs()
            .iter()
            .flat_map(|(_, expr)| metric_names(expr))
            .map(|name| family(&name, known).to_owned())
            .collect();
        let missing: Vec<&String> = metrics
            .family_names()
            .iter()
            .filter(|family| family.starts_with("collab_server_") && !queried.contains(*family))
            .collect();
        assert!(missing.is_empty(), "no panel queries {missing:?}");
    }

    /// Every series the shipped Grafana dashboards query exists (a renamed metric would leave
    /// a panel silently empty).
    #[test]
    fn dashboards_query_only_metrics_that_exist() {
        let metrics = Metrics::new();
        let known = metrics.family_names();
        // What the first scrape of a fresh process holds: every queried series must be there.
        let first_scrape = metrics.render();
        let has_series = |name: &str| {
            first_scrape.lines().any(|line| {
                line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
            })
        };
        let mut checked = 0;
        for (path, expr) in dashboard_exprs() {
            for name in metric_names(&expr) {
                let base = family(&name, known);
                assert!(
                    known.iter().any(|k| k == base),
                    "{}: {name} is not exported (known: {known:?})",
                    path.display()
                );
                assert!(
                    has_series(&name),
                    "{}: {name} has no series in the first scrape (initialise its labels)",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} metric references found");
    }

    /// Every query of every shipped dashboard, with the dashboard's path.
    fn dashboard_exprs() -> Vec<(std::path::PathBuf, String)> {
        let dashboards =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&dashboards).expect("dashboards folder") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("dashboard");
            let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
            let mut exprs = Vec::new();
            collect_exprs(&dashboard, &mut exprs);
            all.extend(exprs.into_iter().map(|expr| (path.clone(), expr)));
        }
        all
    }

    /// The family a queried series belongs to: a histogram's `_bucket`, `_sum` and `_count`
    /// belong to the histogram, where that is a known family.
    fn family<'a>(name: &'a str, known: &[String]) -> &'a str {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| known.iter().any(|k| k == base))
            .unwrap_or(name)
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => collect_exprs(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }

    /// Identifiers in a PromQL expression that name our metrics or process metrics.
    fn metric_names(expr: &str) -> Vec<String> {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("collab_server_") || word.starts_with("process_"))
            .map(str::to_owned)
            .collect()
    }
}
