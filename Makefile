# workspace-operator — run `make help` for the targets.
CARGO ?= cargo
KUBECONFIG_DEV ?= .dev/kubeconfig

.PHONY: help dev test bench crds manifests lint fmt build

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## Build the operator and the kubectl plugin
	$(CARGO) build --bins

dev: build ## Run a local Kubernetes API server plus the operator; kubeconfig at .dev/kubeconfig
	mkdir -p .dev
	./target/debug/workspace-operator dev --kubeconfig $(KUBECONFIG_DEV)

VENV ?= .venv

$(VENV)/.installed: ## Helm's engine (helm-python-sdk) for the chart tests
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check helm-python-sdk lupa
	touch $@

test: $(VENV)/.installed ## Run every unit and integration test
	$(CARGO) build --bins
	HELM_PYTHON=$(abspath $(VENV))/bin/python $(CARGO) test --workspace --lib --bins --tests -- --test-threads=2

bench: ## Measure convergence, API cost, memory and list latency (figures in README)
	$(CARGO) bench --bench operator

crds: ## Regenerate crds/workspace.yaml (and the chart's copy) from the Rust types
	$(CARGO) run --quiet --bin workspace-operator -- crd > crds/workspace.yaml
	cp crds/workspace.yaml charts/workspace-operator/files/workspace.yaml

manifests: $(VENV)/.installed ## Render the chart into crds/operator/ for kubectl/kustomize installs
	$(VENV)/bin/python tests/helm/helmtool.py manifests charts/workspace-operator '{"crds":{"install":false}}' workspace-operator workspace-system > crds/operator/operator.yaml

lint: ## Format check and clippy with warnings denied
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt
