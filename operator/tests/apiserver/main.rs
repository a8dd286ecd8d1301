//! collab-operator against a real Kubernetes API server: etcd and kube-apiserver started the way
//! controller-runtime's envtest starts them (see `cluster.rs` for where the binaries come from),
//! the chart installed with a real helm, and the real `collab-operator` binary run as the chart's
//! ServiceAccount with the environment the chart's Deployment gives it.
//!
//! Where no binaries are found the suite prints why and passes without running (the rest of the
//! test command still runs). `docs/operator.md` ("Testing against a real API server") says how
//! to get them and what is covered.
//!
//! The steps run in order on one API server (about 4 s to start, ~370 MB); each prints `ok` or
//! its error, and the run ends with `apiserver: N passed, N failed`. A failed step does not stop
//! the later ones (those that depend on it fail with their own message).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chart;
mod cluster;
#[path = "../shared/invalid_specs.rs"]
mod invalid_specs;
mod operator;
mod scenarios;
mod support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::time::Instant;

use futures_util::FutureExt as _;

/// Results of the steps run so far.
#[derive(Default)]
pub struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    /// Runs one step; a panic counts as a failure.
    pub async fn step<F>(&mut self, name: &str, step: F) -> bool
    where
        F: Future<Output = anyhow::Result<()>>,
    {
        let started = Instant::now();
        let outcome = AssertUnwindSafe(step).catch_unwind().await;
        let elapsed = started.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(())) => {
                println!("step {name} ... ok ({elapsed:.1} s)");
                self.passed += 1;
                true
            }
            Ok(Err(error)) => {
                println!("step {name} ... FAILED ({elapsed:.1} s)\n    {error:#}");
                self.failed.push(name.to_owned());
                false
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("step {name} ... FAILED (panicked: {message})");
                self.failed.push(name.to_owned());
                false
            }
        }
    }
}

fn main() -> ExitCode {
    let assets = match cluster::Assets::find() {
        Ok(assets) => assets,
        Err(why) => {
            println!("apiserver suite skipped: {why}");
            return ExitCode::SUCCESS;
        }
    };
    let helm = match chart::find_helm() {
        Ok(helm) => helm,
        Err(why) => {
            println!("apiserver suite skipped: {why}");
            return ExitCode::SUCCESS;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(async {
        let cluster = match cluster::Cluster::start(&assets).await {
            Ok(cluster) => cluster,
            Err(error) => {
                println!("apiserver suite: the control plane did not start: {error:#}");
                let mut report = Report::default();
                report.failed.push("start".to_owned());
                return report;
            }
        };
        println!(
            "apiserver suite: kube-apiserver {} with etcd from {}, helm {}",
            cluster.version,
            assets.dir.display(),
            helm.display()
        );
        let report = scenarios::run(&cluster, &helm).await;
        if !report.failed.is_empty() {
            // Keep the logs for a person to read: the temp dir goes with the cluster.
            let copy = std::env::temp_dir().join("collab-envtest-last-failure");
            let _ = std::fs::remove_dir_all(&copy);
            match copy_logs(cluster.dir.path(), &copy) {
                Ok(()) => println!("logs of the failed run: {}", copy.display()),
                Err(error) => println!("could not keep the logs: {error}"),
            }
        }
        report
    });
    println!(
        "\napiserver: {} passed, {} failed",
        report.passed,
        report.failed.len()
    );
    if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failed steps: {}", report.failed.join(", "));
        ExitCode::FAILURE
    }
}

fn copy_logs(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".log") {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
