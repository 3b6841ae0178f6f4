//! `kubectl workspaces`: a kubectl plugin (found on PATH as `kubectl-workspaces`).

use clap::{Parser, Subcommand};
use workspace_operator::plugin::{self, ListArgs};

#[derive(Parser)]
#[command(name = "kubectl workspaces", version, about = "Workspaces, listed the way cloud workspace APIs list them")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List Workspaces with filters, sorting and pagination.
    List(ListArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            // One clear line, not a page of usage.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid arguments"));
            std::process::exit(2);
        }
    };
    let Command::List(args) = cli.command;
    let result = async {
        let (client, ns) = plugin::client(&args).await?;
        plugin::list(client, &ns, &args).await
    }
    .await;
    match result {
        Ok(r) => print!("{}", plugin::render(&r, args.output, args.all_namespaces)),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
