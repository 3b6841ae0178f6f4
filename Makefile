# workspace-operator — run `make help` for the targets.
CARGO ?= cargo
KUBECONFIG_DEV ?= .dev/kubeconfig
# Where `make dev` serves the API (6443 is often taken): make dev LISTEN=127.0.0.1:7443
LISTEN ?= 127.0.0.1:6443
# Where `make dev` serves the operator's /metrics, /healthz and /readyz.
METRICS ?= 127.0.0.1:8080
# Where `make plugin` installs kubectl-workspaces: $(PREFIX)/bin must be on PATH.
PREFIX ?= $(HOME)/.local
PROFILE ?= release
# The Kubernetes release of the real control plane (`make control-plane`, `make test-real`,
# `make dev CLUSTER=real`): one pinned in tests/control-plane/.
K8S_VERSION ?= v1.33.13
# `make dev CLUSTER=real` runs the quick start on the real control plane.
CLUSTER ?= local

.PHONY: help dev test test-local test-real control-plane bench crds manifests lint fmt build plugin

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-9s %s\n", $$1, $$2}'

build: ## Build the operator and the kubectl plugin
	$(CARGO) build --bins

dev: build $(if $(filter real,$(CLUSTER)),control-plane) ## Run a local Kubernetes API server plus the operator (LISTEN=, METRICS=, CLUSTER=real); kubeconfig at .dev/kubeconfig
	mkdir -p .dev
	K8S_VERSION=$(K8S_VERSION) ./target/debug/workspace-operator dev --cluster $(CLUSTER) --listen $(LISTEN) --metrics-addr $(METRICS) --kubeconfig $(abspath $(KUBECONFIG_DEV))

control-plane: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd of K8S_VERSION from source, once (cached)
	tests/control-plane/build $(K8S_VERSION)

plugin: ## Build kubectl-workspaces and install it into $(PREFIX)/bin (PREFIX=, PROFILE=)
	$(CARGO) build --profile $(PROFILE) --bin kubectl-workspaces
	install -D -m 0755 target/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))/kubectl-workspaces $(PREFIX)/bin/kubectl-workspaces

VENV ?= .venv

$(VENV)/.installed: tests/tools/requirements.txt ## Helm's engine and the other Python tools the tests drive
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/tools/requirements.txt
	touch $@

test: test-local test-real ## Run every test: unit tests, and the integration tests on both API servers

test-local: $(VENV)/.installed ## Unit tests, and the integration tests on the local API server
	$(CARGO) build --bins
	HELM_PYTHON=$(abspath $(VENV))/bin/python $(CARGO) test --workspace --exclude controlplane --lib --bins --tests -- --test-threads=2

test-real: $(VENV)/.installed control-plane ## The harness's and the operator's integration tests on the real control plane (K8S_VERSION=)
	$(CARGO) build --bins
	TEST_CLUSTER=real K8S_VERSION=$(K8S_VERSION) HELM_PYTHON=$(abspath $(VENV))/bin/python \
	  $(CARGO) test -p controlplane -p workspace-operator --test lifecycle --test it -- --test-threads=2

bench: ## Measure convergence, API cost, memory and list latency (figures in docs/performance.md)
	$(CARGO) bench --bench operator

crds: ## Regenerate crds/workspace.yaml (both CRDs, and the chart's copy) from the Rust types
	$(CARGO) run --quiet --bin workspace-operator -- crd > crds/workspace.yaml
	cp crds/workspace.yaml charts/workspace-operator/crds/workspace.yaml

manifests: $(VENV)/.installed ## Render the chart into crds/operator/ for kubectl/kustomize installs
	$(VENV)/bin/python tests/tools/helmtool.py manifests charts/workspace-operator '{}' workspace-operator workspace-system > crds/operator/operator.yaml

lint: ## Format check and clippy with warnings denied
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt
