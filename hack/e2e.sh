#!/usr/bin/env bash
# Runs the e2e suite against a freshly started local control plane of its own (separate from the
# sandbox's), and stops that control plane afterwards, also when a test fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Compile first, so no cluster time is spent compiling.
cargo build --locked --tests --bins

export DWO_CLUSTER_NAME="${DWO_CLUSTER_NAME:-dwo-e2e}"
export DWO_CLUSTER_DIR="${DWO_CLUSTER_DIR:-${PWD}/target/e2e-cluster}"
hack/cluster.sh down
trap 'hack/cluster.sh down' EXIT
started=$(date +%s)
hack/cluster.sh up
echo "[e2e] control plane up in $(( $(date +%s) - started ))s" >&2
eval "$(hack/cluster.sh env)"
cargo test --locked --test e2e
