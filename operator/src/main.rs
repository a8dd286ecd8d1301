use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use collab_operator::{
    admin,
    cli::{Cli, Command, EcsCommand, EcsRenderArgs, RunArgs},
    controller::{self, Context},
    crd, ecs,
    health::Health,
    install, leader,
    metrics::Metrics,
    scope::{self, Scope},
    telemetry,
};
use tokio_util::sync::CancellationToken;

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
    let scopes = scope::scopes(&args.watch_namespaces)?;
    let client = kube::Client::try_default()
        .await
        .context("failed to configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
    let health = Arc::new(Health::new(
        Duration::from_secs(leader::LEASE_DURATION_SECONDS),
        Some(metrics.leader.clone()),
    ));
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let identity = leader::identity(args.pod_name.as_deref(), leader::hostname());
    let context = Arc::new(Context::new(
        client.clone(),
        metrics.clone(),
        args.defaults(),
        Some(identity.clone()),
    ));
    let scope_names: Vec<&str> = scopes.iter().map(Scope::describe).collect();
    tracing::info!(
        server_image = %args.server_image,
        scopes = ?scope_names,
        leader_election = args.leader_election,
        "collab-operator starting"
    );

    let work = async {
        if args.apply_crd {
            install::apply_crd(client.clone(), &crd::crd()).await?;
        }
        if args.leader_election {
            let namespace = args.lease_namespace_or(client.default_namespace());
            let settings = leader::LeaseSettings::new(args.lease_name.clone(), namespace, identity);
            leader::run(
                client.clone(),
                &settings,
                health.clone(),
                shutdown.clone(),
                |stop| controller::run(context, &scopes, stop),
            )
            .await?;
        } else {
            tracing::warn!("leader election is off: run one replica only");
            health.running();
            let result = controller::run(context, &scopes, shutdown.clone()).await;
            health.stopped(match &result {
                Ok(()) => "shut down".to_owned(),
                Err(error) => error.to_string(),
            });
            result.context("controller stopped")?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = work => result?,
        result = admin::serve(args.admin_address, metrics, health.clone()) => {
            result.with_context(|| format!("admin listener on {} failed", args.admin_address))?
        }
    }
    tracing::info!("collab-operator stopped");
    Ok(())
}

/// Cancels `shutdown` on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => tracing::info!("SIGINT: shutting down"),
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        },
    }
    shutdown.cancel();
}
