# Build, lint, test and run the operator. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: help build lint crds deploy test test-unit test-chart test-image test-process test-e2e bench bench-peer tools cluster-up cluster-down cluster-env sandbox sandbox-down

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

build: ## Build the operator binary.
	$(CARGO) build --locked

lint: ## rustfmt check and clippy with warnings denied.
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

crds: ## Regenerate crds/ from the Rust types, and the chart's copy and deploy/ with them.
	$(CARGO) run --locked -q -- crd --output-dir crds
	hack/render-deploy.sh

deploy: ## Render the chart's default values into deploy/ (the GitOps manifests).
	hack/render-deploy.sh

test: lint test-unit test-chart test-image test-process test-e2e ## Lint, unit tests, the chart, the image's static binary, the process tests, then the e2e suite on a fresh local control plane.

test-unit: ## Unit tests, CRD drift and example checks (no cluster needed).
	$(CARGO) test --locked --lib --bins --test crds --test examples --test workspace_props

test-chart: ## The Helm chart with the pinned helm: lint, goldens (deploy/ is the default rendering), schema, CRDs.
	hack/build-tools.sh helm >/dev/null
	$(CARGO) test --locked --test chart

test-image: ## The container image's executable, built as the Dockerfile builds it: static, and it runs.
	hack/check-image.sh

test-process: ## Runs generated configurations with the real software: JupyterLab (a venv cached from PyPI), oauth2-proxy and a mock identity provider (built from Go modules), the Python environment build (PyPI), Streamlit and Spark (PyPI; Java from the distribution), Airflow (PyPI; PostgreSQL from the distribution).
	hack/java.sh
	hack/postgres.sh >/dev/null
	$(CARGO) test --locked --test notebook_process --test access_process --test python_env_process --test streamlit_process --test spark_process --test airflow_process

test-e2e: ## The e2e suite on a freshly started local control plane, stopped afterwards (installs chromium for the console's browser test when missing).
	hack/chromium.sh >/dev/null
	hack/e2e.sh

bench: ## Scale benchmark: 50 Workspaces × 10 Notebook Projects + 50 Users (other sizes: hack/bench.sh N M U).
	hack/bench.sh 50 10 50

bench-peer: ## Peer benchmark against kro: 50, 200 and 500 tenants through each (other sizes: hack/bench-peer.sh N ...).
	hack/bench-peer.sh 50 200 500

tools: ## Build the pinned control-plane tools into the cache (once per machine).
	hack/build-tools.sh

cluster-up: ## Start the local control plane (builds the tools on first use).
	hack/cluster.sh up

cluster-down: ## Stop the sandbox operator and the local control plane.
	hack/sandbox.sh down

cluster-env: ## Print the export lines for the local control plane: eval "$(make -s cluster-env)".
	@hack/cluster.sh env

sandbox: ## Control plane, CRDs, operator and examples/, then wait and show the result.
	hack/sandbox.sh up

sandbox-down: cluster-down ## Same as cluster-down.
