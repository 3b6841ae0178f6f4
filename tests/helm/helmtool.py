"""Drive Helm's own engine (helm-python-sdk) for the Rust tests: one JSON result on stdout."""
import json
import sys

import helm_python


def main(argv):
    cmd = argv[1]
    if cmd == "lint":
        print(json.dumps(helm_python.lint(argv[2], json.loads(argv[3]), strict=True, kube_version="v1.33.0")))
    elif cmd == "render":
        chart = helm_python.Chart.load(argv[2])
        print(json.dumps(chart.render(json.loads(argv[3]), name=argv[4], namespace=argv[5], is_install=True)))
    elif cmd in ("install", "upgrade"):
        kubeconfig, chart, name, ns, values = argv[2], argv[3], argv[4], argv[5], json.loads(argv[6])
        cfg = helm_python.Config(kubeconfig_path=kubeconfig, namespace=ns)
        action = cfg.install if cmd == "install" else cfg.upgrade
        kwargs = {"namespace": ns}
        if cmd == "install":
            kwargs["create_namespace"] = True
        release = action(chart, name, values, **kwargs)
        print(json.dumps({"version": release.get("version"), "status": release.get("info", {}).get("status") if isinstance(release.get("info"), dict) else release.get("status")}))
    elif cmd == "uninstall":
        cfg = helm_python.Config(kubeconfig_path=argv[2], namespace=argv[4])
        cfg.uninstall(argv[3])
        print(json.dumps({"ok": True}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except helm_python.HelmError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
