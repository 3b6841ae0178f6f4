//! `workspace-operator run`: the operator as deployed — metrics and health, waiting for the
//! CRD, optional leader election, graceful shutdown on SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use tracing::{info, warn};

use crate::controller::{self, Config, Settings};
use crate::leader::{Elector, FenceLayer, LeaseConfig};
use crate::metrics::{self, Metrics};

#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "METRICS_ADDR")]
    pub metrics_addr: SocketAddr,
    #[arg(long, value_enum, default_value = "text", env = "LOG_FORMAT")]
    pub log_format: crate::telemetry::LogFormat,
    /// The operator's own namespace, never enrolled into a workspace (default: the pod's).
    #[arg(long, env = "POD_NAMESPACE")]
    pub operator_namespace: Option<String>,
    /// Watch Workspaces in this namespace only (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Workspaces reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Threads that run the operator; 0 means one per core.
    #[arg(long, default_value_t = 1, env = "WORKER_THREADS", value_parser = clap::value_parser!(u16).range(..=64))]
    pub worker_threads: u16,
    /// Take a Lease before reconciling, so only one replica writes.
    #[arg(long)]
    pub leader_elect: bool,
    #[arg(long, default_value = "workspace-operator", env = "LEASE_NAME")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::telemetry::init(args.log_format);
    let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("workspace-operator-{}", uuid::Uuid::new_v4()));
    let mut kube_config = kube::Config::infer().await?;
    // Audit logs and API priority show which replica sent a request.
    let agent = format!("workspace-operator/{} ({identity})", env!("CARGO_PKG_VERSION"));
    kube_config.headers.push((hyper::header::USER_AGENT, hyper::header::HeaderValue::from_str(&agent)?));
    let client = Client::try_from(kube_config.clone())?;
    let metrics = Arc::new(Metrics::default());
    tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone()));
    wait_for_crd(&client).await;
    let elector = args.leader_elect.then(|| {
        Arc::new(Elector::new(client.clone(), LeaseConfig::new(&args.lease_namespace, &args.lease_name, &identity)))
    });
    let config = Config {
        settings: Settings { operator_namespace: args.operator_namespace.clone() },
        concurrency: args.concurrency,
        namespace: args.watch_namespace.clone(),
        metrics: Some(metrics.clone()),
        fence: elector.as_ref().map(|e| e.fence()),
    };
    metrics.set_ready(true);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    if let Some(e) = &elector {
        tokio::select! {
            _ = e.acquire() => {}
            _ = &mut shutdown => return Ok(()),
        }
        metrics.set_leader(true);
    }
    // The controller's writes go through the fence; the Elector's renewals do not.
    let controller_client = match &elector {
        Some(e) => kube::client::ClientBuilder::try_from(kube_config)?.with_layer(&FenceLayer(e.fence())).build(),
        None => client.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = controller::run_until(controller_client, config, async move {
        let _ = stop_rx.await;
    });
    tokio::pin!(run);
    // A task of its own, so the renewals are never queued behind the controller's work.
    let mut holder = elector.clone().map(|e| tokio::spawn(async move { e.hold().await }));
    let lost = async {
        match holder.as_mut() {
            Some(h) => drop(h.await),
            None => futures::future::pending().await,
        }
    };
    let mut exit_lost = false;
    tokio::select! {
        _ = &mut run => {}
        _ = &mut shutdown => info!("shutting down: finishing in-flight reconciles"),
        _ = lost => {
            warn!("leadership lost: stopping");
            exit_lost = true;
        }
    }
    // No renewal from here on, as the lease is about to be released or is lost already.
    if let Some(h) = &holder {
        h.abort();
    }
    let _ = stop_tx.send(());
    // Finish in-flight reconciles, within the pod's grace period.
    if tokio::time::timeout(Duration::from_secs(20), &mut run).await.is_err() {
        warn!("in-flight reconciles did not finish in time");
    }
    if let Some(e) = &elector {
        metrics.set_leader(false);
        if !exit_lost {
            e.release().await;
        }
    }
    if exit_lost {
        // Restarted by Kubernetes as a standby with clean caches.
        anyhow::bail!("lost the leader lease");
    }
    Ok(())
}

/// Wait for both CRDs (Workspace and WorkspaceClass) instead of crashing without them; /readyz
/// fails meanwhile.
async fn wait_for_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut logged = false;
    let mut waiting = vec!["workspaces.workspaces.dev", "workspaceclasses.workspaces.dev"];
    while let Some(name) = waiting.first() {
        match crds.get_opt(name).await {
            Ok(Some(crd)) if established(&crd) => {
                waiting.remove(0);
                continue;
            }
            Ok(_) if !logged => {
                warn!(crd = name, "waiting for the Workspace CRDs (install crds/workspace.yaml)");
                logged = true;
            }
            Err(e) if !logged => {
                warn!(error = %e, "waiting for the API server");
                logged = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Established" && c.status == "True"))
}

/// Resolves on SIGINT or SIGTERM (how Kubernetes stops a pod).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
