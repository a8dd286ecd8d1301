//! Command line: `collab-operator run`, `collab-operator crd` and `collab-operator ecs render`.
//! Every `run` flag has an environment variable (`COLLAB_OPERATOR_*`), which is how the Helm
//! chart sets them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;
use crate::validate::{DEFAULT_REDIS_IMAGE, DEFAULT_SERVER_IMAGE, OperatorDefaults};

#[derive(Debug, Parser)]
#[command(
    name = "collab-operator",
    version,
    about = "Kubernetes operator for collab-server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: reconcile CollabServers in every namespace (or those of
    /// --watch-namespaces), while holding the leader Lease.
    Run(RunArgs),
    /// Print the CollabServer CustomResourceDefinition as YAML.
    Crd,
    /// Amazon ECS (Fargate) definitions from a CollabServer, without a cluster.
    #[command(subcommand)]
    Ecs(EcsCommand),
}

#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// Write the AWS CLI `--cli-input-json` inputs (task definition, service, target group,
    /// autoscaling) or the Terraform configuration, and NOTES.md. Nothing is read from or sent
    /// to AWS.
    Render(EcsRenderArgs),
}

#[derive(Debug, Args)]
pub struct EcsRenderArgs {
    /// The CollabServer (YAML), validated as the operator would.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub collab_server: PathBuf,

    /// What only AWS knows (YAML): account, region, cluster, service, roles, network, target
    /// group, log group, task size and the ARNs behind the CollabServer's Secret keys.
    #[arg(long = "ecs", value_name = "FILE")]
    pub options: PathBuf,

    /// Directory to write the files into (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// `cli`: task-definition.json, service.json, service-update.json,
    /// target-group-*.json and, when autoscaled, scalable-target.json and scaling-policy-*.json;
    /// `terraform`: collab-server.tf.json and imports.tf.json.
    #[arg(long, value_enum, default_value_t = EcsFormat::Cli)]
    pub format: EcsFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EcsFormat {
    /// AWS CLI `--cli-input-json` inputs.
    Cli,
    /// Terraform JSON configuration (`*.tf.json`).
    Terraform,
}

impl From<EcsFormat> for crate::ecs::Format {
    fn from(format: EcsFormat) -> Self {
        match format {
            EcsFormat::Cli => crate::ecs::Format::Cli,
            EcsFormat::Terraform => crate::ecs::Format::Terraform,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Address of the `/health` and `/metrics` listener.
    #[arg(
        long,
        env = "COLLAB_OPERATOR_ADMIN_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_address: SocketAddr,

    /// Server image for CollabServers without `spec.image`.
    #[arg(long, env = "COLLAB_OPERATOR_SERVER_IMAGE", default_value = DEFAULT_SERVER_IMAGE)]
    pub server_image: String,

    /// Redis image for managed Redis without `spec.redis.managed.image`.
    #[arg(long, env = "COLLAB_OPERATOR_REDIS_IMAGE", default_value = DEFAULT_REDIS_IMAGE)]
    pub redis_image: String,

    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "COLLAB_OPERATOR_LOG", default_value = "info")]
    pub log_filter: String,

    /// Log format.
    #[arg(long, env = "COLLAB_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Name of this operator's pod, reported in Events and the holder identity of the leader
    /// Lease (the chart sets it from the downward API). Default: the hostname.
    #[arg(long, env = "COLLAB_OPERATOR_POD_NAME")]
    pub pod_name: Option<String>,

    /// Run the controller only while holding the Lease --lease-name, so that of several
    /// replicas one reconciles and the others stand by. `false` runs without a Lease (local
    /// development: never with more than one replica).
    #[arg(long, env = "COLLAB_OPERATOR_LEADER_ELECTION", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub leader_election: bool,

    /// Name of the coordination.k8s.io/v1 Lease of the leader election.
    #[arg(
        long,
        env = "COLLAB_OPERATOR_LEASE_NAME",
        default_value = "collab-operator"
    )]
    pub lease_name: String,

    /// Namespace of the Lease. Default: the client's namespace (in a pod, its own; the chart
    /// sets it from the downward API).
    #[arg(long, env = "COLLAB_OPERATOR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// Comma-separated namespaces to watch and reconcile CollabServers in (one controller per
    /// namespace). Empty: every namespace.
    #[arg(
        long,
        env = "COLLAB_OPERATOR_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NAMESPACES"
    )]
    pub watch_namespaces: Vec<String>,

    /// At start-up, server-side apply the operator's own CollabServer CRD (field manager
    /// `collab-operator`, forced), so that upgrading the operator upgrades the CRD. Needs
    /// get/create/patch on customresourcedefinitions.
    #[arg(long, env = "COLLAB_OPERATOR_APPLY_CRD", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub apply_crd: bool,
}

impl RunArgs {
    pub fn defaults(&self) -> OperatorDefaults {
        OperatorDefaults {
            server_image: self.server_image.clone(),
            redis_image: self.redis_image.clone(),
        }
    }

    /// The Lease's namespace: `--lease-namespace` unless empty, else `default` (the client's).
    pub fn lease_namespace_or(&self, default: &str) -> String {
        self.lease_namespace
            .as_deref()
            .map(str::trim)
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(default)
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_to_the_operator_version_server_image() {
        let cli = Cli::try_parse_from(["collab-operator", "run"]).expect("parses");
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(
            args.defaults().server_image,
            format!("collab-server:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(args.admin_address.port(), 8080);
        assert!(args.leader_election);
        assert_eq!(args.lease_name, "collab-operator");
        assert_eq!(args.lease_namespace, None);
        assert!(args.watch_namespaces.is_empty());
        assert!(!args.apply_crd);
    }

    fn run_args(extra: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(["collab-operator", "run"].iter().chain(extra)).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run");
        };
        args
    }

    #[test]
    fn run_takes_the_leader_election_and_scope_flags() {
        let args = run_args(&[
            "--leader-election",
            "false",
            "--lease-name",
            "ops",
            "--lease-namespace",
            "collab-system",
            "--watch-namespaces",
            "team-a,team-b",
            "--apply-crd=true",
        ]);
        assert!(!args.leader_election);
        assert_eq!(args.lease_name, "ops");
        assert_eq!(args.lease_namespace.as_deref(), Some("collab-system"));
        assert_eq!(args.watch_namespaces, ["team-a", "team-b"]);
        assert!(args.apply_crd);
        assert_eq!(
            crate::scope::scopes(&args.watch_namespaces).unwrap(),
            [
                crate::scope::Scope::Namespace("team-a".to_owned()),
                crate::scope::Scope::Namespace("team-b".to_owned())
            ]
        );
        assert_eq!(args.lease_namespace_or("default"), "collab-system");

        // What an empty environment variable gives (the chart may set them empty).
        let empty = run_args(&["--watch-namespaces", "", "--lease-namespace", ""]);
        assert_eq!(
            crate::scope::scopes(&empty.watch_namespaces).unwrap(),
            [crate::scope::Scope::Cluster]
        );
        assert_eq!(empty.lease_namespace_or("default"), "default");

        let error = Cli::try_parse_from(["collab-operator", "run", "--leader-election", "maybe"])
            .expect_err("not a boolean");
        assert!(error.to_string().contains("leader-election"), "{error}");
    }

    #[test]
    fn ecs_render_takes_both_files_and_defaults_to_the_current_directory() {
        let cli = Cli::try_parse_from([
            "collab-operator",
            "ecs",
            "render",
            "-f",
            "collabserver.yaml",
            "--ecs",
            "ecs.yaml",
        ])
        .expect("parses");
        let Command::Ecs(EcsCommand::Render(args)) = cli.command else {
            panic!("expected ecs render");
        };
        assert_eq!(args.collab_server, PathBuf::from("collabserver.yaml"));
        assert_eq!(args.options, PathBuf::from("ecs.yaml"));
        assert_eq!(args.out, PathBuf::from("."));
        assert_eq!(args.format, EcsFormat::Cli);
        let missing = Cli::try_parse_from(["collab-operator", "ecs", "render", "-f", "x.yaml"])
            .expect_err("--ecs is required");
        assert!(missing.to_string().contains("--ecs"), "{missing}");
    }

    #[test]
    fn ecs_render_takes_the_terraform_format_and_refuses_others() {
        let base = [
            "collab-operator",
            "ecs",
            "render",
            "-f",
            "a.yaml",
            "--ecs",
            "b.yaml",
        ];
        let cli = Cli::try_parse_from(base.iter().chain(&["--format", "terraform"])).unwrap();
        let Command::Ecs(EcsCommand::Render(args)) = cli.command else {
            panic!("expected ecs render");
        };
        assert_eq!(args.format, EcsFormat::Terraform);
        let error = Cli::try_parse_from(base.iter().chain(&["--format", "cloudformation"]))
            .expect_err("unknown format");
        assert!(error.to_string().contains("terraform"), "{error}");
    }
}
