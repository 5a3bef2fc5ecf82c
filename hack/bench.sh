#!/usr/bin/env bash
# Scale benchmark on the local control plane: N Workspaces (each with members by user and team)
# and N Users. Reports convergence time, the operator's write requests, the API server's
# request counts by verb for our resources, and the operator's memory; then restarts the
# operator (a forced resync of every object) and reports the writes that caused.
#
# Usage: hack/bench.sh [N]   (default 50). Runs its own cluster and operator, stops them after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-50}"
LISTEN=127.0.0.1:18383
export DWO_CLUSTER_NAME=dwo-bench DWO_CLUSTER_DIR="${PWD}/target/bench-cluster"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cargo build --locked --release -q
hack/cluster.sh down >/dev/null 2>&1 || true
trap 'kill "${operator:-0}" 2>/dev/null || true; hack/cluster.sh down >/dev/null 2>&1' EXIT
hack/cluster.sh up >/dev/null 2>&1
eval "$(hack/cluster.sh env)"
kubectl apply --server-side -f crds/ -f deploy/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

metric() { curl -s "http://${LISTEN}/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
api_requests() { # verb -> count of requests on our resources
	kubectl get --raw /metrics | grep '^apiserver_request_total{' \
		| grep -E 'resource="(workspaces|users|namespaces|resourcequotas|limitranges|networkpolicies|rolebindings|clusterrolebindings|configmaps|services|statefulsets|ingresses|events)"' \
		| grep "verb=\"$1\"" | awk '{ s += $NF } END { print s + 0 }'
}
start_operator() {
	target/release/dataworkspace-operator run --listen-address "${LISTEN}" >>"${DWO_CLUSTER_DIR}/bench-operator.log" 2>&1 &
	operator=$!
	until curl -sf "http://${LISTEN}/readyz" >/dev/null; do sleep 0.2; done
}
ready_count() { kubectl get workspaces -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true; }

start_operator
{
	for i in $(seq 1 "${N}"); do
		printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: User\nmetadata: {name: u%s}\nspec: {username: u%s@example.com, email: u%s@example.com, teams: [team-%s]}\n' "$i" "$i" "$i" "$((i % 5))"
		printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {name: w%s}\nspec: {members: [{user: u%s, role: admin}, {team: team-%s, role: developer}], variables: {A: b}}\n' "$i" "$i" "$((i % 5))"
	done
} >"${DWO_CLUSTER_DIR}/bench-objects.yaml"
before_patch=$(api_requests PATCH) before_apply=$(api_requests APPLY) before_post=$(api_requests POST)
started=$(date +%s.%N)
kubectl apply -f "${DWO_CLUSTER_DIR}/bench-objects.yaml" >/dev/null
until [[ "$(ready_count)" -ge "${N}" ]]; do sleep 0.5; done
converged=$(date +%s.%N)
printf '%s\n' "objects: ${N} Workspaces + ${N} Users"
awk -v a="${started}" -v b="${converged}" 'BEGIN { printf "convergence (apply to all Ready): %.1f s\n", b - a }'
printf 'operator write requests: %s\n' "$(metric dataworkspace_api_writes_total)"
printf 'API server requests on our resources: POST %s, PATCH/APPLY %s\n' \
	"$(( $(api_requests POST) - before_post ))" "$(( $(api_requests PATCH) + $(api_requests APPLY) - before_patch - before_apply ))"
printf 'operator memory (VmRSS): %s\n' "$(awk '/VmRSS/ { print $2 " " $3 }' "/proc/${operator}/status")"

kill -TERM "${operator}"; wait "${operator}" || true
start_operator
until [[ "$(metric 'dataworkspace_reconciliations_total{kind="Workspace"}')" -ge "${N}" ]]; do sleep 0.2; done
until [[ "$(metric 'dataworkspace_reconciliations_total{kind="User"}')" -ge "${N}" ]]; do sleep 0.2; done
printf 'forced resync (restart, %s reconciles): %s write requests\n' \
	"$(metric dataworkspace_reconciliations_total)" "$(metric dataworkspace_api_writes_total)"
printf 'operator memory after resync (VmRSS): %s\n' "$(awk '/VmRSS/ { print $2 " " $3 }' "/proc/${operator}/status")"
