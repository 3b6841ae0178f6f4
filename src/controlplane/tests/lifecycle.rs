//! The harness's promises: a control plane that answers as a cluster does, and that leaves no
//! process behind, whether it is dropped or the thread that started it dies.

use std::time::{Duration, Instant};

use controlplane::{Background, Binaries, ControlPlane};

fn binaries() -> Binaries {
    Binaries::locate().expect("the control plane is built (make control-plane)")
}

/// Running: listed in /proc and not a zombie.
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses: "123 (etcd) S ...".
    stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z') && !rest.is_empty())
}

fn all_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| running(p)) {
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            pids.iter().filter(|&&p| running(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dropped_control_plane_leaves_no_process_behind() {
    let plane = Background::start(&binaries()).expect("starts");
    let pids = plane.pids();
    assert_eq!(pids.len(), 3, "etcd, kube-apiserver, kube-controller-manager");
    assert!(pids.iter().all(|&p| running(p)));
    let dir = plane.dir().to_path_buf();
    drop(plane);
    all_gone(&pids);
    assert!(!dir.exists(), "its files are removed");
}

#[test]
fn processes_die_with_the_thread_that_started_them() {
    let bins = binaries();
    // A test killed mid-way never drops its control plane: forget it, and end its thread.
    let pids = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let plane = rt.block_on(ControlPlane::start(&bins)).expect("starts");
        let pids = plane.pids();
        std::mem::forget(plane);
        pids
    })
    .join()
    .expect("the thread ends");
    all_gone(&pids);
}

#[test]
fn it_serves_the_release_it_was_built_from_with_rbac_and_the_controllers() {
    let plane = Background::start(&binaries()).expect("starts");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let admin = plane.client();
        let version = admin.apiserver_version().await.expect("/version");
        assert_eq!(version.git_version, plane.version());
        // The clusterrole-aggregation controller gave the bootstrap roles their rules.
        let roles: kube::Api<k8s_openapi::api::rbac::v1::ClusterRole> = kube::Api::all(admin.clone());
        let admin_role = roles.get("admin").await.expect("the admin ClusterRole");
        assert!(!admin_role.rules.unwrap_or_default().is_empty(), "admin has its aggregated rules");
        // A user with no binding is refused by RBAC.
        let nobody = plane.client_as("nobody", &[]);
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(nobody);
        let refused = namespaces.list(&Default::default()).await.expect_err("nobody may list namespaces");
        assert!(matches!(refused, kube::Error::Api(ref s) if s.code == 403), "{refused:?}");
    });
}
