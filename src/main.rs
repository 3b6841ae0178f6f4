//! The `workspace-operator` binary: thin wiring over the library.

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
    #[cfg(feature = "dev")]
    Dev(workspace_operator::dev::DevArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => workspace_operator::operator::run(args).await?,
        Command::Crd => print!("{}", workspace_operator::crd::crd_yaml()),
        #[cfg(feature = "dev")]
        Command::Dev(args) => workspace_operator::dev::run(args).await?,
    }
    Ok(())
}
