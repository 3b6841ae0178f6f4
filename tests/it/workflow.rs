//! The developer's commands as the README gives them: `make dev` (the binary it runs), `make
//! plugin`, and a build after the tests that has nothing left to do.

use std::io::{Read, Write};
use std::process::Command;

use crate::common::Dev;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A command as a user's shell would run it: without the variables cargo sets for a test.
fn from_a_shell(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().current_dir(ROOT);
    for keep in ["PATH", "HOME", "RUSTUP_HOME", "CARGO_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    cmd
}

#[test]
fn a_build_after_the_tests_recompiles_nothing() {
    let out = from_a_shell("cargo").args(["build", "--bins"]).output().expect("cargo build");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("Compiling"), "`make dev` would rebuild:\n{err}");
}

#[test]
fn make_plugin_installs_a_plugin_kubectl_lists_cleanly() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let out = from_a_shell("make")
        .args(["plugin", "PROFILE=dev"])
        .arg(format!("PREFIX={}", prefix.path().display()))
        .output()
        .expect("make plugin");
    assert!(out.status.success(), "make plugin: {}", String::from_utf8_lossy(&out.stderr));
    let path = format!("{}/bin:{}", prefix.path().display(), std::env::var("PATH").unwrap_or_default());
    let list = Command::new("kubectl").args(["plugin", "list"]).env("PATH", &path).output().expect("kubectl");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "kubectl plugin list: {text}{}", String::from_utf8_lossy(&list.stderr));
    assert!(text.contains(&format!("{}/bin/kubectl-workspaces", prefix.path().display())), "{text}");
    let help =
        Command::new("kubectl").args(["workspaces", "list", "--help"]).env("PATH", &path).output().expect("kubectl");
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--sort-by"));
}

#[test]
fn dev_prints_an_absolute_kubeconfig_and_serves_the_operators_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let args = ["--listen", "127.0.0.1:0", "--metrics-addr", &metrics.to_string(), "--kubeconfig", "sub/kc"];
    let dev = Dev::start(dir.path(), &args, "Operator metrics at");
    let printed = &dev.printed;
    let kubeconfig = dir.path().join("sub/kc");
    assert!(printed.contains(&format!("export KUBECONFIG={}", kubeconfig.display())), "{printed}");
    assert!(printed.contains(&format!("http://{metrics}/metrics")), "{printed}");
    let scrape = crate::common::eventually("the metrics endpoint", Duration::from_secs(10), || {
        let mut s = std::net::TcpStream::connect(metrics).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    });
    assert!(scrape.starts_with("HTTP/1.1 200") && scrape.contains("workspace_operator_reconciles_total"), "{scrape}");
}

/// The README's quick start, run line by line as a user pastes it, against `workspace-operator
/// dev` (with the plugin put on PATH instead of `make plugin`'s release build).
#[test]
fn the_quick_start_works_as_written() {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).expect("README");
    let start = readme.find("In another shell").expect("the quick start's second block");
    let block = readme[start..].split("```sh\n").nth(1).and_then(|b| b.split("```").next()).expect("a sh block");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(format!("{ROOT}/crds"), dir.path().join("crds")).expect("link crds");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-workspaces"), bin.join("kubectl-workspaces")).expect("link");
    let args = ["--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--kubeconfig", ".dev/kubeconfig"];
    let _dev = Dev::start(dir.path(), &args, "Operator metrics at");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let mut script = String::from("set -e\n");
    for line in block.lines().filter(|l| !l.starts_with("make plugin")) {
        script.push_str(line);
        script.push('\n');
    }
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("HOME", dir.path())
        .output()
        .expect("bash");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the quick start failed:\n{script}\n{text}");
    for seen in ["workspace.workspaces.dev/basic condition met", "workspace-admins", "Provisioned", "1 of 1 workspaces"]
    {
        assert!(text.contains(seen), "{seen:?} not in the quick start's output:\n{text}");
    }
}
