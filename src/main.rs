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
    /// Print the Workspace CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    match Cli::parse().command {
        Command::Crd => print!("{}", workspace_operator::crd::crd_yaml()),
    }
}
