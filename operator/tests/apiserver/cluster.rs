//! A real Kubernetes control plane the way controller-runtime's envtest runs one: etcd and
//! kube-apiserver on loopback, in a temporary directory, with no kubelet, scheduler or
//! controller-manager (so no Pods, no ReplicaSets, no garbage collection).
//!
//! Binaries, by envtest's convention: the directory `KUBEBUILDER_ASSETS`, else the newest
//! `<version>-linux-amd64` directory under setup-envtest's data directory
//! (`$XDG_DATA_HOME/kubebuilder-envtest/k8s/`, by default `~/.local/share/...`), holding
//! `kube-apiserver` and `etcd`.
//!
//! Authentication: a static token in group `system:masters` for the test itself (and helm), and
//! ServiceAccount tokens from the TokenRequest API for the operator, which therefore runs with
//! exactly the RBAC the chart grants its ServiceAccount.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// Where the binaries are, or why there are none.
pub struct Assets {
    pub dir: PathBuf,
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
}

impl Assets {
    /// The envtest binaries, or a sentence saying where they were looked for.
    pub fn find() -> Result<Self, String> {
        let dir = match std::env::var_os("KUBEBUILDER_ASSETS").filter(|dir| !dir.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => newest_setup_envtest_dir().ok_or_else(|| {
                format!(
                    "no envtest binaries: KUBEBUILDER_ASSETS is unset and {} has no <version>-linux-amd64 directory (install them with `setup-envtest use`; see docs/operator.md)",
                    setup_envtest_root().display()
                )
            })?,
        };
        let kube_apiserver = dir.join("kube-apiserver");
        let etcd = dir.join("etcd");
        for binary in [&kube_apiserver, &etcd] {
            if !binary.is_file() {
                return Err(format!(
                    "no envtest binaries: {} is missing (setup-envtest puts kube-apiserver, etcd and kubectl there)",
                    binary.display()
                ));
            }
        }
        Ok(Self {
            dir,
            kube_apiserver,
            etcd,
        })
    }
}

fn setup_envtest_root() -> PathBuf {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(".local/share"));
    data.join("kubebuilder-envtest/k8s")
}

/// `1.36.2-linux-amd64` and the like, newest version first.
fn newest_setup_envtest_dir() -> Option<PathBuf> {
    let root = setup_envtest_root();
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_suffix("-linux-amd64")?;
            let parts = version
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u64>>>()?;
            Some((parts, entry.path()))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, path)| path)
}

/// A free port on 127.0.0.1 (free when asked; the processes bind it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// A running etcd and kube-apiserver; both are killed on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub url: String,
    ca_pem: Vec<u8>,
    processes: Vec<Child>,
    pub admin: Client,
    /// The API server's version (`/version`'s gitVersion).
    pub version: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The API server first, so it does not log etcd's disappearance at length.
        for child in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    let file = std::fs::File::create(dir.join(name))
        .with_context(|| format!("cannot create {name} in {}", dir.display()))?;
    Ok(Stdio::from(file))
}

fn run_openssl(args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context(
            "openssl is needed to make the ServiceAccount signing key (apt-get install openssl)",
        )?;
    if !output.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl Cluster {
    /// Starts etcd and kube-apiserver and waits until the API server is ready.
    pub async fn start(assets: &Assets) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("collab-envtest.")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let path = dir.path().to_path_buf();
        let mut processes = Vec::new();

        let etcd_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        processes.push(
            Command::new(&assets.etcd)
                .arg(format!("--data-dir={}", path.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
                ))
                .arg(format!(
                    "--initial-cluster=default=http://127.0.0.1:{peer_port}"
                ))
                .stdout(log_file(&path, "etcd.log")?)
                .stderr(log_file(&path, "etcd.log")?)
                .spawn()
                .with_context(|| format!("cannot start {}", assets.etcd.display()))?,
        );

        run_openssl(&["genrsa", "-out", "sa.key", "2048"], &path)?;
        run_openssl(
            &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"],
            &path,
        )?;
        let admin_token = format!("admin-{}", rand_suffix());
        std::fs::write(
            path.join("tokens.csv"),
            format!("{admin_token},envtest-admin,envtest-admin,\"system:masters\"\n"),
        )?;

        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let mut cluster_processes = processes;
        cluster_processes.push(
            Command::new(&assets.kube_apiserver)
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg(format!("--cert-dir={}", path.join("certs").display()))
                .arg(format!("--secure-port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg("--allow-privileged=true")
                // envtest's default: no token controller runs to fill ServiceAccount secrets.
                .arg("--disable-admission-plugins=ServiceAccount")
                // As on OpenShift and hardened clusters: setting blockOwnerDeletion needs
                // update on the owner's finalizers, so the chart's RBAC must grant it.
                .arg("--enable-admission-plugins=OwnerReferencesPermissionEnforcement")
                .arg(format!("--service-account-issuer={url}/"))
                .arg(format!(
                    "--service-account-key-file={}",
                    path.join("sa.pub").display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    path.join("sa.key").display()
                ))
                .arg(format!(
                    "--token-auth-file={}",
                    path.join("tokens.csv").display()
                ))
                .arg("--authorization-mode=RBAC")
                .stdout(log_file(&path, "kube-apiserver.log")?)
                .stderr(log_file(&path, "kube-apiserver.log")?)
                .spawn()
                .with_context(|| format!("cannot start {}", assets.kube_apiserver.display()))?,
        );

        // The serving certificate (with its CA) appears in --cert-dir once the server starts.
        let cert = path.join("certs/apiserver.crt");
        let deadline = Instant::now() + Duration::from_secs(60);
        let ca_pem = loop {
            // Complete once it ends with a certificate (the file holds the certificate and
            // the CA that signed it).
            if let Ok(pem) = std::fs::read(&cert)
                && pem.trim_ascii_end().ends_with(b"-----END CERTIFICATE-----")
            {
                break pem;
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver wrote no serving certificate within 60 s; its log: {}",
                    tail(&path.join("kube-apiserver.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let admin_kubeconfig =
            write_kubeconfig(&path, &url, &ca_pem, "admin", &admin_token, "default")?;
        let admin = client_from(&admin_kubeconfig).await?;
        let mut cluster = Self {
            dir,
            url,
            ca_pem,
            processes: cluster_processes,
            admin,
            version: String::new(),
        };
        cluster.wait_ready(deadline).await?;
        cluster.version = cluster.admin.apiserver_version().await?.git_version;
        Ok(cluster)
    }

    async fn wait_ready(&self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match self.admin.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                _ if Instant::now() > deadline => bail!(
                    "kube-apiserver was not ready within 60 s; its log: {}",
                    tail(&self.dir.path().join("kube-apiserver.log"))
                ),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The admin kubeconfig (group `system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// Writes `<name>.kubeconfig` with a bearer token, whose default namespace is `namespace`
    /// (as a pod's in-cluster configuration has its own), and returns its path.
    pub fn write_kubeconfig(
        &self,
        name: &str,
        token: &str,
        namespace: &str,
    ) -> anyhow::Result<PathBuf> {
        write_kubeconfig(
            self.dir.path(),
            &self.url,
            &self.ca_pem,
            name,
            token,
            namespace,
        )
    }

    /// A token of the ServiceAccount `namespace/name` from the TokenRequest API: what a pod of
    /// that ServiceAccount would have mounted.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<String> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.admin.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .with_context(|| {
                format!("cannot issue a token for ServiceAccount {namespace}/{name}")
            })?;
        issued
            .status
            .map(|status| status.token)
            .context("the TokenRequest came back without a token")
    }
}

fn write_kubeconfig(
    dir: &Path,
    url: &str,
    ca_pem: &[u8],
    name: &str,
    token: &str,
    namespace: &str,
) -> anyhow::Result<PathBuf> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut yaml = String::new();
    writeln!(yaml, "apiVersion: v1\nkind: Config")?;
    writeln!(
        yaml,
        "clusters:\n- name: envtest\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}"
    )?;
    writeln!(yaml, "users:\n- name: {name}\n  user:\n    token: {token}")?;
    writeln!(
        yaml,
        "contexts:\n- name: envtest\n  context:\n    cluster: envtest\n    user: {name}\n    namespace: {namespace}"
    )?;
    writeln!(yaml, "current-context: envtest")?;
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig)?;
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}

fn rand_suffix() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}
