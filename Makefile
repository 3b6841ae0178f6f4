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

.PHONY: help dev test bench crds manifests lint fmt build plugin

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-9s %s\n", $$1, $$2}'

build: ## Build the operator and the kubectl plugin
	$(CARGO) build --bins

dev: build ## Run a local Kubernetes API server plus the operator (LISTEN=, METRICS=); kubeconfig at .dev/kubeconfig
	mkdir -p .dev
	./target/debug/workspace-operator dev --listen $(LISTEN) --metrics-addr $(METRICS) --kubeconfig $(abspath $(KUBECONFIG_DEV))

plugin: ## Build kubectl-workspaces and install it into $(PREFIX)/bin (PREFIX=, PROFILE=)
	$(CARGO) build --profile $(PROFILE) --bin kubectl-workspaces
	install -D -m 0755 target/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))/kubectl-workspaces $(PREFIX)/bin/kubectl-workspaces

VENV ?= .venv

$(VENV)/.installed: tests/tools/requirements.txt ## Helm's engine and the other Python tools the tests drive
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/tools/requirements.txt
	touch $@

test: $(VENV)/.installed ## Run every unit and integration test
	$(CARGO) build --bins
	HELM_PYTHON=$(abspath $(VENV))/bin/python $(CARGO) test --workspace --lib --bins --tests -- --test-threads=2

bench: ## Measure convergence, API cost, memory and list latency (figures in README)
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
