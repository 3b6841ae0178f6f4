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

/// Where the operator runs, as the chart installs it: its ServiceAccount in its namespace, with
/// exactly the chart's RBAC (the rendering committed as `crds/operator/operator.yaml`).
pub const OPERATOR_NAMESPACE: &str = "workspace-system";
pub const OPERATOR_ACCOUNT: &str = "workspace-operator";
const MANIFESTS: &str = include_str!("../crds/operator/operator.yaml");

/// Apply the chart's namespace, ServiceAccount, ClusterRole, Role and bindings, as `helm
/// install` would (and nothing else of the chart: no Deployment runs here).
pub async fn install_rbac(admin: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let params = PatchParams::apply("workspace-operator-dev").force();
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}});
    Api::<Namespace>::all(admin.clone()).patch(OPERATOR_NAMESPACE, &params, &Patch::Apply(&ns)).await?;
    let docs: Vec<serde_json::Value> =
        crate::yaml::from_str_multi(MANIFESTS).map_err(|e| anyhow::anyhow!("crds/operator/operator.yaml: {e}"))?;
    for doc in docs {
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or(OPERATOR_NAMESPACE).to_string();
        match doc["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), &namespace);
                api.patch(&name, &params, &Patch::Apply(&doc)).await?;
            }
            "Role" => {
                let api: Api<Role> = Api::namespaced(admin.clone(), &namespace);
                api.patch(&name, &params, &Patch::Apply(&doc)).await?;
            }
            "RoleBinding" => {
                let api: Api<RoleBinding> = Api::namespaced(admin.clone(), &namespace);
                api.patch(&name, &params, &Patch::Apply(&doc)).await?;
            }
            "ClusterRole" => {
                Api::<ClusterRole>::all(admin.clone()).patch(&name, &params, &Patch::Apply(&doc)).await?;
            }
            "ClusterRoleBinding" => {
                Api::<ClusterRoleBinding>::all(admin.clone()).patch(&name, &params, &Patch::Apply(&doc)).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A token for the operator's ServiceAccount, from the TokenRequest API.
pub async fn operator_token(admin: &kube::Client, seconds: i64) -> anyhow::Result<String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), OPERATOR_NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(seconds), ..Default::default() },
        ..Default::default()
    };
    let answered = api.create_token_request(OPERATOR_ACCOUNT, &Default::default(), &request).await?;
    answered.status.map(|s| s.token).ok_or_else(|| anyhow::anyhow!("the TokenRequest returned no token"))
}

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
        // The operator runs as it does in a cluster: its ServiceAccount, the chart's RBAC. A
        // token that outlives any session: nothing here renews it as a kubelet would.
        install_rbac(&client).await.context("installing the operator's RBAC")?;
        let token = operator_token(&client, 365 * 24 * 3600).await.context("a token for the operator")?;
        let client = cluster.client_with_token(&token);
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
