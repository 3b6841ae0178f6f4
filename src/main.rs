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

/// jemalloc rather than the system's malloc. The operator's memory is a long-lived cache built
/// during bursts of short-lived buffers (a fleet created at once, a cold start over a backlog);
/// glibc's malloc kept the pages those buffers freed between the cache's entries, and the RSS
/// ended 10–30% above the heap, by how the burst fell (see docs/performance.md).
/// jemalloc's size-class slabs keep the two apart. Unix only: it is poorly supported on Windows.
#[cfg(unix)]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc returns freed pages on its own schedule only while something allocates: an idle
/// operator kept what its last burst freed (a tenant's Workspaces with 200 KB annotations left
/// it 20 MiB larger, for good). A background thread purges them while it is idle, and handing
/// them back outright (`muzzy_decay_ms:0`, not MADV_FREE) makes the RSS say so.
#[cfg(unix)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true,muzzy_decay_ms:0".as_ptr());

/// jemalloc reads its options through a `const char *` named `malloc_conf`.
#[cfg(unix)]
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, immutable C string.
#[cfg(unix)]
unsafe impl Sync for MallocConf {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    runtime(&cli.command)?.block_on(async {
        match cli.command {
            Command::Run(args) => workspace_operator::operator::run(args).await?,
            Command::Crd => print!("{}", workspace_operator::crd::crd_yaml()),
            #[cfg(feature = "dev")]
            Command::Dev(args) => workspace_operator::dev::run(args).await?,
        }
        Ok(())
    })
}

/// The operator runs on one thread unless told otherwise. Its work is short steps between
/// network waits, and it is mostly waiting: over a backlog it keeps a core well under busy. On
/// more threads those steps land on whichever worker is awake, and waking a sleeping worker
/// for each one cost more CPU than the steps (see docs/performance.md).
fn runtime(command: &Command) -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match command {
        Command::Run(args) => usize::from(args.worker_threads),
        Command::Crd => 1,
        #[cfg(feature = "dev")]
        Command::Dev(_) => 0,
    };
    match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        0 => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
}
