//! `workspace-operator dev`: an API server — the local one, or with `--cluster real` the real
//! control plane built by `make control-plane` — with the CRDs and the chart's RBAC and default
//! WorkspaceClass installed and the operator running against it, or, with `--no-controller`, an
//! empty cluster as a fresh one is (so `helm install` of the chart works there unchanged).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use controlplane::ControlPlane;
use devcluster::{DevCluster, Handle};
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

/// Apply the chart's namespace, ServiceAccount, ClusterRole, Role and bindings, and its fence
/// (a ValidatingAdmissionPolicy), as `helm install` would (and nothing else of the chart: no
/// Deployment runs here).
pub async fn install_rbac(admin: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::core::ApiResource;
    let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}});
    Api::<Namespace>::all(admin.clone()).patch(OPERATOR_NAMESPACE, &dev_apply(), &Patch::Apply(&ns)).await?;
    use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
    let kinds = [
        (ApiResource::erase::<ServiceAccount>(&()), true),
        (ApiResource::erase::<Role>(&()), true),
        (ApiResource::erase::<RoleBinding>(&()), true),
        (ApiResource::erase::<ClusterRole>(&()), false),
        (ApiResource::erase::<ClusterRoleBinding>(&()), false),
        // The fence around the operator's rights (enforced by kube-apiserver, stored locally).
        (ApiResource::erase::<ValidatingAdmissionPolicy>(&()), false),
        (ApiResource::erase::<ValidatingAdmissionPolicyBinding>(&()), false),
    ];
    apply_chart_objects(admin, &kinds).await
}

/// Apply the chart's default WorkspaceClass, as `helm install` would (the CRDs first).
pub async fn install_default_class(admin: &kube::Client) -> anyhow::Result<()> {
    let kinds = [(kube::core::ApiResource::erase::<crate::crd::WorkspaceClass>(&()), false)];
    apply_chart_objects(admin, &kinds).await
}

fn dev_apply() -> PatchParams {
    PatchParams::apply("workspace-operator-dev").force()
}

/// Apply every object of these kinds (and whether each is namespaced) from the chart's
/// rendering.
async fn apply_chart_objects(admin: &kube::Client, kinds: &[(kube::core::ApiResource, bool)]) -> anyhow::Result<()> {
    use kube::core::DynamicObject;
    let params = dev_apply();
    let docs: Vec<serde_json::Value> =
        crate::yaml::from_str_multi(MANIFESTS).map_err(|e| anyhow::anyhow!("crds/operator/operator.yaml: {e}"))?;
    for doc in docs {
        let Some((resource, namespaced)) = kinds.iter().find(|(r, _)| doc["kind"] == r.kind.as_str()) else {
            continue;
        };
        let name = doc["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match namespaced {
            true => {
                let namespace = doc["metadata"]["namespace"].as_str().unwrap_or(OPERATOR_NAMESPACE);
                Api::namespaced_with(admin.clone(), namespace, resource)
            }
            false => Api::all_with(admin.clone(), resource),
        };
        api.patch(name, &params, &Patch::Apply(&doc))
            .await
            .with_context(|| format!("applying {} {name}", resource.kind))?;
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

/// Install (or update) both CRDs through the API, as a user would, and wait until they are
/// served.
pub async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    use crate::crd::WorkspaceClass;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(crate::labels::FIELD_MANAGER).force();
    for crd in [Workspace::crd(), WorkspaceClass::crd()] {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &params, &Patch::Apply(&crd)).await?;
        let established = kube::runtime::wait::conditions::is_crd_established();
        let wait = kube::runtime::wait::await_condition(crds.clone(), &name, established);
        tokio::time::timeout(std::time::Duration::from_secs(30), wait)
            .await
            .with_context(|| format!("CRD {name} to be established"))??;
    }
    Ok(())
}

/// What `dev` and the tests need of an API server, whichever it is.
pub trait ApiServer: Send + Sync {
    fn url(&self) -> &str;
    /// The admin's kubeconfig: a client certificate in `system:masters`.
    fn kubeconfig(&self) -> String;
    /// A kubeconfig whose client certificate says `user`, in `groups`.
    fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String;
    fn kubeconfig_with_token(&self, token: &str) -> String;
    /// A kube-rs client as the admin; build it inside the caller's runtime.
    fn client(&self) -> kube::Client;
    fn client_with_token(&self, token: &str) -> kube::Client;
}

impl ApiServer for Handle {
    fn url(&self) -> &str {
        Handle::url(self)
    }
    fn kubeconfig(&self) -> String {
        Handle::kubeconfig(self)
    }
    fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        Handle::kubeconfig_as(self, user, groups)
    }
    fn kubeconfig_with_token(&self, token: &str) -> String {
        Handle::kubeconfig_with_token(self, token)
    }
    fn client(&self) -> kube::Client {
        Handle::client(self)
    }
    fn client_with_token(&self, token: &str) -> kube::Client {
        Handle::client_with_token(self, token)
    }
}

impl ApiServer for ControlPlane {
    fn url(&self) -> &str {
        ControlPlane::url(self)
    }
    fn kubeconfig(&self) -> String {
        ControlPlane::kubeconfig(self)
    }
    fn kubeconfig_as(&self, user: &str, groups: &[&str]) -> String {
        ControlPlane::kubeconfig_as(self, user, groups)
    }
    fn kubeconfig_with_token(&self, token: &str) -> String {
        ControlPlane::kubeconfig_with_token(self, token)
    }
    fn client(&self) -> kube::Client {
        ControlPlane::client(self)
    }
    fn client_with_token(&self, token: &str) -> kube::Client {
        ControlPlane::client_with_token(self, token)
    }
}

/// Which API server `dev` runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterKind {
    /// The local API server, in this process: starts in a second.
    #[default]
    Local,
    /// etcd, kube-apiserver and kube-controller-manager built from the Kubernetes sources
    /// (`make control-plane`; K8S_VERSION chooses the release).
    Real,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DevArgs {
    /// The API server to run.
    #[arg(long, value_enum, default_value_t = ClusterKind::Local)]
    pub cluster: ClusterKind,
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
    let DevArgs { cluster: kind, listen, kubeconfig, no_controller, metrics_addr } = args;
    let kubeconfig = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
    let kubeconfig = kubeconfig.as_path();
    // Held from the start: the server started next picks free ports of its own.
    let metrics_listener = match no_controller {
        true => None,
        false => Some(
            tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("serving metrics on {metrics_addr} (choose another with --metrics-addr)"))?,
        ),
    };
    // Either server lives until this function returns; `cluster` is whichever runs.
    let (local, real);
    let cluster: &dyn ApiServer = match kind {
        ClusterKind::Local => {
            local = DevCluster::start(listen).await.with_context(|| format!("listening on {listen}"))?;
            local.handle()
        }
        ClusterKind::Real => {
            let binaries = controlplane::Binaries::locate()?;
            println!("Starting Kubernetes {} (etcd, kube-apiserver, kube-controller-manager)", binaries.version);
            real = ControlPlane::start_on(&binaries, listen).await.context("starting the real control plane")?;
            println!("  its files and logs: {}", real.dir().display());
            &real
        }
    };
    if let Some(dir) = kubeconfig.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(kubeconfig, cluster.kubeconfig()).with_context(|| format!("writing {}", kubeconfig.display()))?;
    let client = cluster.client();
    let what = match kind {
        ClusterKind::Local => "Local API server",
        ClusterKind::Real => "kube-apiserver",
    };
    println!("{what} at {}", cluster.url());
    println!("  export KUBECONFIG={}", kubeconfig.display());
    let operator = if let Some(listener) = metrics_listener {
        install_crds(&client).await.context("installing the CRDs")?;
        // The operator runs as it does in a cluster: its ServiceAccount, the chart's RBAC. A
        // token that outlives any session: nothing here renews it as a kubelet would.
        install_default_class(&client).await.context("installing the default WorkspaceClass")?;
        install_rbac(&client).await.context("installing the operator's RBAC")?;
        let token = operator_token(&client, 365 * 24 * 3600).await.context("a token for the operator")?;
        let client = cluster.client_with_token(&token);
        let metrics = Arc::new(Metrics::default());
        println!("Operator metrics at http://{metrics_addr}/metrics (probes: /healthz, /readyz)");
        tokio::spawn(crate::metrics::serve_on(listener, metrics.clone()));
        metrics.set_ready(true);
        let settings = crate::controller::Settings { operator_namespace: Some(OPERATOR_NAMESPACE.into()) };
        let config = crate::controller::Config { metrics: Some(metrics), settings, ..Default::default() };
        Some(tokio::spawn(async move { crate::controller::run(client, config).await }))
    } else {
        None
    };
    crate::operator::shutdown_signal().await;
    if let Some(op) = operator {
        op.abort();
    }
    Ok(())
}
