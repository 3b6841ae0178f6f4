//! The `workspace-operator` binary: thin wiring over the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A Kubernetes operator that provisions, deactivates and tears down Workspaces.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (in-cluster config, or KUBECONFIG).
    Run(workspace_operator::operator::RunArgs),
    /// Print the Workspace CustomResourceDefinition as YAML.
    Crd,
    /// Run a local Kubernetes API server (plus the operator) for trying things out.
    Dev {
        /// Address to listen on (loopback).
        #[arg(long, default_value = "127.0.0.1:6443")]
        listen: SocketAddr,
        /// Where to write a kubeconfig for kubectl, Helm and kube-rs.
        #[arg(long, default_value = ".dev/kubeconfig")]
        kubeconfig: PathBuf,
        /// Serve the API only; do not run the Workspace controller.
        #[arg(long)]
        no_controller: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => workspace_operator::operator::run(args).await?,
        Command::Crd => print!("{}", workspace_operator::crd::crd_yaml()),
        Command::Dev { listen, kubeconfig, no_controller } => {
            workspace_operator::telemetry::init(workspace_operator::telemetry::LogFormat::Text);
            workspace_operator::dev::run(listen, &kubeconfig, !no_controller).await?;
        }
    }
    Ok(())
}
