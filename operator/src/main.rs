use std::io::Write as _;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use collab_operator::{
    admin,
    cli::{Cli, Command, RunArgs},
    controller::{self, Context},
    crd,
    metrics::Metrics,
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            let yaml = crd::crd_yaml().context("failed to render the CRD")?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("failed to write the CRD to stdout")
        }
        Command::Run(args) => run(args).await,
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(&args.log_filter, args.log_format).map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default()
        .await
        .context("failed to configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
    let context = Arc::new(Context::new(
        client,
        metrics.clone(),
        args.defaults(),
        args.pod_name.clone(),
    ));
    tracing::info!(server_image = %args.server_image, "collab-operator starting");
    tokio::select! {
        result = controller::run(context) => result.context("controller stopped")?,
        result = admin::serve(args.admin_address, metrics) => {
            result.with_context(|| format!("admin listener on {} failed", args.admin_address))?
        }
    }
    tracing::info!("collab-operator stopped");
    Ok(())
}
