//! Command line: `collab-operator run`, `collab-operator crd` and `collab-operator ecs render`.
//! Every `run` flag has an environment variable (`COLLAB_OPERATOR_*`), which is how the Helm
//! chart sets them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::controller::validate::{DEFAULT_REDIS_IMAGE, DEFAULT_SERVER_IMAGE, OperatorDefaults};
use crate::telemetry::LogFormat;

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
    /// Run the controller: reconcile CollabServers in every namespace.
    Run(RunArgs),
    /// Print the CollabServer CustomResourceDefinition as YAML.
    Crd,
    /// Amazon ECS (Fargate) definitions from a CollabServer, without a cluster.
    #[command(subcommand)]
    Ecs(EcsCommand),
}

#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// Write task-definition.json, service.json, service-update.json and NOTES.md (AWS CLI
    /// `--cli-input-json` inputs). Nothing is read from or sent to AWS.
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

    /// Name of this operator's pod, reported in Events (the chart sets it from the downward API).
    #[arg(long, env = "COLLAB_OPERATOR_POD_NAME")]
    pub pod_name: Option<String>,
}

impl RunArgs {
    pub fn defaults(&self) -> OperatorDefaults {
        OperatorDefaults {
            server_image: self.server_image.clone(),
            redis_image: self.redis_image.clone(),
        }
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
        let missing = Cli::try_parse_from(["collab-operator", "ecs", "render", "-f", "x.yaml"])
            .expect_err("--ecs is required");
        assert!(missing.to_string().contains("--ecs"), "{missing}");
    }
}
