use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use collab_operator::{
    admin,
    cli::{Cli, Command, EcsCommand, EcsRenderArgs, RunArgs},
    controller::{self, Context},
    crd, ecs,
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
        Command::Ecs(EcsCommand::Render(args)) => ecs_render(&args),
    }
}

fn ecs_render(args: &EcsRenderArgs) -> anyhow::Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let server = ecs::parse_collab_server(&read(&args.collab_server)?)
        .with_context(|| format!("{} is not a CollabServer", args.collab_server.display()))?;
    let options = ecs::EcsOptions::from_yaml(&read(&args.options)?)
        .with_context(|| format!("{} is not an ecs.yaml", args.options.display()))?;
    let rendered = ecs::render(&server, &options).with_context(|| {
        format!(
            "failed to render ECS definitions from {} and {}",
            args.collab_server.display(),
            args.options.display()
        )
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("failed to create {}", args.out.display()))?;
    for (name, contents) in rendered.files(args.format.into())? {
        let path = args.out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
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
