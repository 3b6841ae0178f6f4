//! `workspace-operator dev`: the local API server with the Workspace CRD installed and,
//! unless told otherwise, the operator running against it.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::crd::Workspace;
use crate::devcluster::DevCluster;

/// Install (or update) the Workspace CRD through the API, as a user would.
pub async fn install_crd(client: &kube::Client) -> Result<(), kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Workspace::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(&name, &PatchParams::apply("workspace-operator").force(), &Patch::Apply(&crd)).await?;
    Ok(())
}

pub async fn run(listen: SocketAddr, kubeconfig: &Path, controller: bool) -> anyhow::Result<()> {
    let cluster = DevCluster::start(listen).await.with_context(|| format!("listening on {listen}"))?;
    if let Some(dir) = kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(kubeconfig, cluster.kubeconfig()).with_context(|| format!("writing {}", kubeconfig.display()))?;
    let client = cluster.client();
    install_crd(&client).await.context("installing the Workspace CRD")?;
    println!("Local API server at {}; run: export KUBECONFIG={}", cluster.url(), kubeconfig.display());
    let operator = controller.then(|| {
        let client = client.clone();
        tokio::spawn(async move { crate::controller::run(client, crate::controller::Config::default()).await })
    });
    shutdown_signal().await;
    if let Some(op) = operator {
        op.abort();
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
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
