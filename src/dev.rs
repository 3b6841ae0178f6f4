//! `workspace-operator dev`: the local API server with the Workspace CRD installed and the
//! operator running against it, or, with `--no-controller`, an empty cluster as a fresh one is
//! (so `helm install` of the chart works there unchanged).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use devcluster::DevCluster;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::crd::Workspace;
use crate::metrics::Metrics;

/// Install (or update) the Workspace CRD through the API, as a user would.
pub async fn install_crd(client: &kube::Client) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Workspace::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(&name, &PatchParams::apply(crate::labels::FIELD_MANAGER).force(), &Patch::Apply(&crd)).await?;
    Ok(())
}

#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write a kubeconfig for kubectl, Helm and kube-rs.
    #[arg(long, default_value = ".dev/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Serve an empty cluster: no Workspace CRD, no controller.
    #[arg(long)]
    pub no_controller: bool,
    /// Address of the operator's /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    crate::telemetry::init(crate::telemetry::LogFormat::Text);
    let DevArgs { listen, kubeconfig, no_controller, metrics_addr } = args;
    let kubeconfig = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    let kubeconfig = kubeconfig.as_path();
    let cluster = DevCluster::start(listen).await.with_context(|| format!("listening on {listen}"))?;
    if let Some(dir) = kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(kubeconfig, cluster.kubeconfig()).with_context(|| format!("writing {}", kubeconfig.display()))?;
    let client = cluster.client();
    println!("Local API server at {}", cluster.url());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    let operator = if no_controller {
        None
    } else {
        install_crd(&client).await.context("installing the Workspace CRD")?;
        let metrics = Arc::new(Metrics::default());
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("serving metrics on {metrics_addr} (choose another with --metrics-addr)"))?;
        println!("Operator metrics at http://{metrics_addr}/metrics (probes: /healthz, /readyz)");
        tokio::spawn(crate::metrics::serve_on(listener, metrics.clone()));
        metrics.set_ready(true);
        let config = crate::controller::Config { metrics: Some(metrics), ..Default::default() };
        Some(tokio::spawn(async move { crate::controller::run(client, config).await }))
    };
    crate::operator::shutdown_signal().await;
    if let Some(op) = operator {
        op.abort();
    }
    Ok(())
}
