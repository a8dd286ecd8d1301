//! The real `collab-operator` binary, run as a pod of the chart's Deployment would run it:
//! its arguments and environment from the Deployment the chart installed (the downward API
//! resolved for a made-up pod name), a kubeconfig holding a token of the chart's ServiceAccount
//! (so only the chart's RBAC applies) and the release namespace as its own. The one change: the
//! admin listener binds a free loopback port instead of `0.0.0.0:8080`, so two operators can run
//! side by side.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

use crate::chart::{self, Release};
use crate::cluster::{self, Cluster};

pub struct Operator {
    pub pod_name: String,
    pub admin_port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Operator {
    /// Starts the operator of `release` as pod `pod_name`.
    pub async fn start(
        cluster: &Cluster,
        release: &Release,
        pod_name: &str,
    ) -> anyhow::Result<Self> {
        let deployment = release.deployment(&cluster.admin).await?;
        let spec = chart::pod_spec(&deployment, pod_name)?;
        let token = cluster
            .service_account_token(&release.namespace, &spec.service_account)
            .await?;
        let kubeconfig = cluster.write_kubeconfig(pod_name, &token, &release.namespace)?;
        let admin_port = cluster::free_port()?;
        let log = cluster.dir.path().join(format!("{pod_name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_collab-operator"));
        command
            .args(&spec.args)
            .env_clear()
            .env("KUBECONFIG", &kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        for (name, value) in &spec.env {
            command.env(name, value);
        }
        command.env(
            "COLLAB_OPERATOR_ADMIN_ADDRESS",
            format!("127.0.0.1:{admin_port}"),
        );
        let child = command.spawn().context("cannot start collab-operator")?;
        Ok(Self {
            pod_name: pod_name.to_owned(),
            admin_port,
            log,
            child: Some(child),
        })
    }

    /// What the operator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: a crash, no Lease released.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (what Kubernetes sends), then waits up to `timeout` for the exit.
    pub async fn terminate(&mut self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("cannot run kill")?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                self.child = None;
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.kill();
        anyhow::bail!("the operator did not exit within {timeout:?} of SIGTERM")
    }

    /// `/health` of the admin listener: status code and body.
    pub async fn health(&self) -> anyhow::Result<(u16, String)> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/health", self.admin_port)).await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}
