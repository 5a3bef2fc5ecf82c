#!/usr/bin/env bash
# Scale benchmark on a local control plane of its own: N Workspaces × M Notebook Projects plus U
# Users. Reports the convergence time, the operator's requests as the API server counts them
# (audit log, by the operator's own identity), its writes against the minimum for the input,
# reconcile passes per controller, its memory; what one Project status change costs; the writes
# of an idle resync (an operator restart) with quantities written in non-canonical forms; and how
# long another client's `kubectl apply` of the same input takes with and without the operator.
#
# Usage: [DWO_BENCH_MIX=1] hack/bench.sh [N [M [U]]]    (default 50 10 N; M ≤ 15; M=0 is the Workspaces + Users benchmark)
#
# Prints a summary and appends it to docs/benchmarks/<date>-projects.md (DWO_BENCH_RESULTS=<file>
# to write elsewhere, DWO_BENCH_RESULTS=- not at all). Environment: DWO_BENCH_TIMEOUT (seconds to
# wait for convergence, default 1800), DWO_BENCH_KEEP=1 (leave the cluster and operator running),
# DWO_BENCH_OPERATOR_ARGS (more flags of `dataworkspace-operator run`, such as
# `--api-write-rate 0`; recorded in the results).
#
# Method, in order:
#  1. A cluster of its own (DWO_CLUSTER_NAME=dwo-bench under target/) with the API server's audit
#     log on (hack/cluster.sh, DWO_AUDIT=1). The operator (release build) runs under its own
#     identity: a kubeconfig that impersonates system:serviceaccount:dataworkspace-system:
#     dataworkspace-operator with the chart's least-privilege ClusterRole (deploy/), so its rights
#     and the guard policy apply to it as in production. kube-controller-manager, the scheduler, kwok
#     and kubectl all use the admin identity; the operator's requests are the audit events of the
#     impersonated user: for a watch its ResponseStarted event, for any other request its
#     ResponseComplete event (RequestReceived is not logged), so each request counts once.
#  2. The input, applied with `kubectl apply`: U Users (5 teams), N Workspaces (each: one User
#     as admin, one team as developers, a variable; every 10th with its quota and container
#     defaults in non-canonical forms, "1.5" CPU, "2048Mi"), then — as soon as the operator has
#     created their namespaces — M Notebook Projects per Workspace (1Gi home volume; "1024Mi" in
#     the non-canonical Workspaces). User i pins Project p1 of Workspace i. Converged: every
#     Workspace Ready with all M Projects Running in its status, every User Ready with its pinned
#     Project Running, every Project Running; then the operator is left until it is quiet (no
#     pass and no write for 10 s) and every figure is taken up to that point.
#  3. A Project status change: Project p1 of Workspace w1 (pinned by User u1 only) is stopped;
#     reported: the passes per controller and the writes until the operator is quiet again.
#  4. The operator is stopped and another client's input — the same objects in other names,
#     with their namespaces handed over in the same file, so it applies without the operator —
#     is applied and timed, then deleted. The operator is started again: a forced resync of
#     every object, whose write requests over a quiet window must be 0. Then the same other
#     client's input is applied and timed again while the operator converges it.
#
# Minimum writes for the input (each object the operator makes created once, each root object's
# status written once, in its final state, with one Event for its Ready transition):
#   per Workspace 15: Namespace 1, ClusterRole 2, ClusterRoleBinding 2, RoleBinding 3 (one per
#     role, including the empty viewer binding the operator always makes), NetworkPolicy 2
#     (isolation and peers), ResourceQuota, LimitRange and ConfigMap 1 each, status 1, Event 1;
#   per Project 7: ServiceAccount, ConfigMap, Secret, Service, StatefulSet, status, Event;
#   per User 4: status, Event, and the ClusterRole and ClusterRoleBinding that let the person read
#     their own User (no User is a platform admin: no other ClusterRoleBinding).
# So minimum = 15 N + 7 N M + 4 U. Writes are create, update, patch and delete requests.
# With DWO_BENCH_MIX=1 (a quarter each of Notebooks, Streamlit apps, Spark Connect servers and
# Airflows): a Streamlit Project 5 (ServiceAccount, Service, Deployment, status, Event), a Spark
# Connect Project 8 (two ServiceAccounts, RoleBinding, ConfigMap, Service, Deployment, status,
# Event), an Airflow Project (KubernetesExecutor, managed database, no DAG repository) 23: three
# ServiceAccounts, RoleBinding, two ConfigMaps (files, roles), Secret, PersistentVolumeClaim (logs),
# three Services, three NetworkPolicies, StatefulSet, the migration Job, five Deployments, status,
# Event.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-50}" M="${2:-10}"
U="${3:-${N}}"
for v in "${N}" "${M}" "${U}"; do
	[[ "${v}" =~ ^[0-9]+$ ]] || { echo "usage: hack/bench.sh [N [M [U]]] (non-negative integers)" >&2; exit 2; }
done
[[ ${N} -ge 1 && ${U} -ge 1 && ${M} -le 15 ]] || { echo "N and U must be at least 1, M at most 15 (the default quota)" >&2; exit 2; }
P=$((N * M))
MIX="${DWO_BENCH_MIX:-0}"
runtime_of() {
	if [[ "${MIX}" != 1 ]]; then echo Notebook; return; fi
	case $(($1 % 4)) in 1) echo Notebook ;; 2) echo Streamlit ;; 3) echo Spark ;; 0) echo Airflow ;; esac
}
# Projects of each runtime (per Workspace × N).
P_NB=0 P_ST=0 P_SP=0 P_AF=0
for k in $(seq 1 "${M}"); do
	case "$(runtime_of "${k}")" in
	Notebook) P_NB=$((P_NB + N)) ;; Streamlit) P_ST=$((P_ST + N)) ;; Spark) P_SP=$((P_SP + N)) ;; Airflow) P_AF=$((P_AF + N)) ;;
	esac
done
TIMEOUT="${DWO_BENCH_TIMEOUT:-1800}"
OPERATOR_ARGS="${DWO_BENCH_OPERATOR_ARGS:-}"
QUIET=10
LISTEN=127.0.0.1:18383
OPERATOR_USER=system:serviceaccount:dataworkspace-system:dataworkspace-operator
export DWO_CLUSTER_NAME=dwo-bench DWO_CLUSTER_DIR="${PWD}/target/bench-cluster" DWO_AUDIT=1
# kwok nodes hold 110 pods each.
# An Airflow runs 7 pods (and its migration's).
export DWO_CLUSTER_NODES=$(((P + 7 * P_AF + 99) / 100 + 1))
WORK="${DWO_CLUSTER_DIR}/bench"
RESULTS="${DWO_BENCH_RESULTS:-docs/benchmarks/$(date +%F)-projects.md}"
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

log "building the operator (release)"
cargo build --release --locked -q --bin dataworkspace-operator
hack/cluster.sh down >/dev/null 2>&1 || true
cleanup() {
	[[ -z "${operator:-}" ]] || kill "${operator}" 2>/dev/null || true
	if [[ "${DWO_BENCH_KEEP:-0}" == 1 ]]; then
		log "DWO_BENCH_KEEP=1: cluster left running; stop it with: DWO_CLUSTER_NAME=${DWO_CLUSTER_NAME} DWO_CLUSTER_DIR=${DWO_CLUSTER_DIR} hack/cluster.sh down"
	else
		hack/cluster.sh down >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
log "starting the cluster (${DWO_CLUSTER_NODES} kwok nodes, audit log on)"
mkdir -p "${DWO_CLUSTER_DIR}"
hack/cluster.sh up >"${DWO_CLUSTER_DIR}/bench-up.log" 2>&1 || { cat "${DWO_CLUSTER_DIR}/bench-up.log" >&2; exit 1; }
eval "$(hack/cluster.sh env)"
AUDIT_LOG="$(hack/cluster.sh audit-log)"
# shellcheck source=hack/lib/audit.sh
source hack/lib/audit.sh
rm -rf "${WORK}" && mkdir -p "${WORK}"

# --- Setup: CRDs, policies, the operator's identity, storage -------------------------------------
# The GitOps rendering of the chart: CRDs, roles, policies, and the operator's ServiceAccount with
# its least-privilege ClusterRole (its Deployment's pods only simulated by kwok).
kubectl apply --server-side -k deploy/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl api-resources --cached=false >/dev/null # discovery cached before the CRDs existed
kubectl config view --raw --minify --flatten |
	awk -v as="${OPERATOR_USER}" '{ print } /^  user:$/ { print "    as: " as }' >"${WORK}/operator.kubeconfig"
[[ "$(KUBECONFIG="${WORK}/operator.kubeconfig" kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" == "${OPERATOR_USER}" ]] ||
	{ log "ERROR: the operator's kubeconfig does not impersonate ${OPERATOR_USER}"; exit 1; }

# No volume provisioner: a default StorageClass whose claims bind to pre-made volumes (the
# simulated nodes never touch them), one per Project home, for both copies of the input.
persistent_volumes() { # first count
	local i
	for i in $(seq "$1" $(($1 + $2 - 1))); do
		printf -- '---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: bench-pv-%s}\nspec: {storageClassName: bench, capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce, ReadWriteMany], persistentVolumeReclaimPolicy: Retain, hostPath: {path: /var/lib/bench-pv/%s}}\n' "$i" "$i"
	done
}
if [[ ${P} -gt 0 ]]; then
	{
		printf -- '---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bench, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\nreclaimPolicy: Retain\n'
		persistent_volumes 1 $((P + P_AF + 10))
	} >"${WORK}/storage.yaml"
	kubectl create -f "${WORK}/storage.yaml" >/dev/null
fi

# --- The input ------------------------------------------------------------------------------------
# users/workspaces/projects PREFIX TEAM: the same shape under other names for the other client.
users() {
	local j pin
	for j in $(seq 1 "${U}"); do
		pin=""
		[[ ${M} -gt 0 && ${j} -le ${N} ]] && pin=", pinned: [{namespace: dw-$2${j}, name: p1}]"
		printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: User\nmetadata: {name: %s}\nspec: {username: %s@example.com, email: %s@example.com, teams: [%s-%s]%s}\n' \
			"$1${j}" "$1${j}" "$1${j}" "$3" "$((j % 5))" "${pin}"
	done
}
noncanonical() { [[ $(($1 % 10)) -eq 0 ]]; }
workspaces() {
	local i quota
	for i in $(seq 1 "${N}"); do
		quota=""
		# With Airflows (about 5 CPUs each) the quotas are larger, non-canonical ones still so.
		[[ "${MIX}" == 1 ]] && quota=', quota: {cpu: "32", memory: 128Gi, storage: 500Gi, pods: 100}'
		noncanonical "${i}" &&
			quota=', quota: {cpu: "1.5", memory: "2048Mi", storage: "20480Mi", containerDefaults: {requests: {cpu: "0.01", memory: "32Mi"}, limits: {cpu: "0.1", memory: "131072Ki"}}}'
		noncanonical "${i}" && [[ "${MIX}" == 1 ]] &&
			quota=', quota: {cpu: "32000m", memory: "131072Mi", storage: "512000Mi", pods: 100, containerDefaults: {requests: {cpu: "0.01", memory: "32Mi"}, limits: {cpu: "0.1", memory: "131072Ki"}}}'
		printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {name: %s}\nspec: {members: [{user: %s, role: admin}, {team: %s-%s, role: developer}], variables: {A: b}%s}\n' \
			"$1${i}" "$2$(((i - 1) % U + 1))" "$3" "$((i % 5))" "${quota}"
	done
}
# A Notebook with the workspace's container defaults (1 CPU limit) would fit only 8 times into the
# default quota (8 CPU): Projects ask for less (16 fit), those of the non-canonical Workspaces get
# their container defaults (15 fit). With DWO_BENCH_MIX=1, Project k is a Notebook when k mod 3
# is 1, a Streamlit app (an image's own command) when 2, a Spark Connect server when 3 (its
# driver's memory 1Gi: the heap derives from it), an Airflow when 0 (the KubernetesExecutor, a
# managed database; volumes of 1Gi, the bench's).
projects() {
	local i k size resources spark
	for i in $(seq 1 "${N}"); do
		size=1Gi resources=', resources: {requests: {cpu: 100m, memory: 256Mi}, limits: {cpu: 500m, memory: 1Gi}}'
		spark=', driver: {resources: {requests: {cpu: 100m, memory: 1Gi}, limits: {cpu: 500m, memory: 1Gi}}}'
		noncanonical "${i}" && size=1024Mi resources="" spark=""
		for k in $(seq 1 "${M}"); do
			printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: Project\nmetadata: {name: p%s, namespace: dw-%s}\n' "${k}" "$1${i}"
			case "$(runtime_of "${k}")" in
			Notebook) printf 'spec: {runtime: Notebook%s, notebook: {storage: {size: %s}}}\n' "${resources}" "${size}" ;;
			Streamlit) printf 'spec: {runtime: Streamlit%s, streamlit: {image: registry.example.com/app:1}}\n' "${resources}" ;;
			Spark) printf 'spec: {runtime: Spark, spark: {mode: Connect, executors: {instances: 1}%s}}\n' "${spark}" ;;
			Airflow) printf 'spec: {runtime: Airflow, airflow: {database: {managed: {storage: {size: 1Gi}}}, storage: {size: 1Gi}}}\n' ;;
			esac
		done
	done
}
handed_over_namespaces() {
	local i
	for i in $(seq 1 "${N}"); do
		printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: dw-%s, annotations: {dataworkspace.io/adopt: %s}}\n' "$1${i}" "$1${i}"
	done
}
{ users u w team; workspaces w u team; } >"${WORK}/input-users-workspaces.yaml"
projects w >"${WORK}/input-projects.yaml"
# The other client's input: the same objects under other names (and other teams), its namespaces
# handed over in the same file so that it applies without an operator.
{ handed_over_namespaces x; users v x xteam; workspaces x v xteam; projects x; } >"${WORK}/input-other.yaml"
NONCANONICAL=$((N / 10))

# --- Probes ---------------------------------------------------------------------------------------
scrape() { curl -sf "http://${LISTEN}/metrics" >"${WORK}/metrics.txt" || : >"${WORK}/metrics.txt"; }
# metric PREFIX: the sum of the samples whose line starts with PREFIX (from the last scrape).
metric() { awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d\n", s }' "${WORK}/metrics.txt"; }
passes() { metric "dataworkspace_reconcile_duration_seconds_count{kind=\"$1\"}"; }
activity() { scrape; echo "$(metric dataworkspace_reconciliations_total) $(metric dataworkspace_api_writes_total)"; }
status_field() { awk -v k="$1:" '$1 == k { print $2 " " $3 }' "/proc/${operator}/status"; }
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/${operator}/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/${operator}/stat"; }

start_operator() {
	# shellcheck disable=SC2086 # flags, split on purpose
	KUBECONFIG="${WORK}/operator.kubeconfig" target/release/dataworkspace-operator run --listen-address "${LISTEN}" \
		${OPERATOR_ARGS} >>"${WORK}/operator.log" 2>&1 &
	operator=$!
	until curl -sf "http://${LISTEN}/readyz" >/dev/null; do
		kill -0 "${operator}" 2>/dev/null || { log "ERROR: the operator exited; see ${WORK}/operator.log"; exit 1; }
		sleep 0.2
	done
}
stop_operator() {
	kill -TERM "${operator}"
	wait "${operator}" || true
	operator=""
}

# Waits until the operator has started no pass and sent no write for QUIET seconds (or $1 s).
settle() {
	local deadline=$((SECONDS + ${1:-600})) last current quiet_since=${SECONDS}
	last="$(activity)"
	while [[ $((SECONDS - quiet_since)) -lt ${QUIET} && ${SECONDS} -lt ${deadline} ]]; do
		sleep 1
		current="$(activity)"
		[[ "${current}" == "${last}" ]] || { last="${current}"; quiet_since=${SECONDS}; }
	done
}

# The operator's requests in the audit log between two byte offsets: "verb resource code object"
# per request, one line each (see the method above), into requests.txt.
operator_requests() { audit_requests "${OPERATOR_USER}" "$1" "$2" >"${WORK}/requests.txt"; }
# count VERB_REGEX [RESOURCE_REGEX]: requests in the last operator_requests window.
count() { awk -v v="^($1)\$" -v r="^(${2:-.*})\$" '$1 ~ v && $2 ~ r { n++ } END { printf "%d\n", n }' "${WORK}/requests.txt"; }
WRITES='create|update|patch|delete|deletecollection'
failed_writes() { awk -v v="^(${WRITES})\$" '$1 ~ v && $3 !~ /^2/ { n++ } END { printf "%d\n", n }' "${WORK}/requests.txt"; }

# Convergence: Workspaces Ready with their M Projects Running in status; Users Ready with their
# pinned Project Running; every Project Running and Ready.
converged_workspaces() {
	kubectl get workspaces -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.status.projectsByPhase.Running}{"\n"}{end}' |
		awk -v p="^$1[0-9]+\$" -v m="${M}" '$1 ~ p && $2 == "True" && (m == 0 || $3 == m) { n++ } END { printf "%d\n", n }'
}
converged_users() {
	kubectl get users -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status} {.spec.pinned[*].name}|{.status.pinned[*].phase}{"\n"}{end}' |
		awk -v p="^$1[0-9]+\$" '$1 ~ p && $2 == "True" && ($3 == "|" || $3 ~ /^p1\|Running$/) { n++ } END { printf "%d\n", n }'
}
running_projects() {
	kubectl get projects -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
		awk -v p="^dw-$1[0-9]+\$" '$1 ~ p && $2 == "Running" && $3 == "True" { n++ } END { printf "%d\n", n }'
}
namespaces_of() { kubectl get namespaces -o name | grep -c "^namespace/dw-$1[0-9]*\$" || true; }

# --- 1. Convergence ---------------------------------------------------------------------------------
log "input: ${N} Workspaces × ${M} Projects ($([[ "${MIX}" == 1 ]] && echo "${P_NB} Notebook, ${P_ST} Streamlit, ${P_SP} Spark Connect, ${P_AF} Airflow" || echo Notebook)), ${U} Users (${NONCANONICAL} Workspaces with non-canonical quantities)"
offset_start="$(audit_offset)"
start_operator
started="$(now)"
kubectl apply -f "${WORK}/input-users-workspaces.yaml" >/dev/null
applied_roots="$(now)"
deadline=$((SECONDS + TIMEOUT))
if [[ ${P} -gt 0 ]]; then
	until [[ "$(namespaces_of w)" -ge ${N} || ${SECONDS} -ge ${deadline} ]]; do sleep 0.5; done
	namespaces_ready="$(now)"
	kubectl apply -f "${WORK}/input-projects.yaml" >/dev/null
	applied_projects="$(now)"
fi
converged=""
while [[ ${SECONDS} -lt ${deadline} ]]; do
	if [[ "$(converged_workspaces w)" -ge ${N} && "$(converged_users u)" -ge ${U} ]]; then
		converged="$(now)"
		break
	fi
	sleep 1
done
# Not converged: the figures are taken as they are, and the later steps are not run.
[[ -n "${converged}" ]] || log "WARNING: not converged after ${TIMEOUT}s; reporting the figures so far"
workspaces_done="$(converged_workspaces w)" users_done="$(converged_users u)" projects_done="$(running_projects w)"
[[ -z "${converged}" ]] || settle 600
settled="$(now)"
offset_settled="$(audit_offset)"
operator_requests "${offset_start}" "${offset_settled}"
scrape
declare -A PASSES STARTED
for kind in Workspace User Project PythonEnvironment; do
	PASSES[${kind}]="$(passes "${kind}")"
	STARTED[${kind}]="$(metric "dataworkspace_reconciliations_total{kind=\"${kind}\"}")"
done
passes_total=$((PASSES[Workspace] + PASSES[User] + PASSES[Project] + PASSES[PythonEnvironment]))
gets="$(count get)" lists="$(count list)" watches="$(count watch)" writes="$(count "${WRITES}")"
creates="$(count create)" updates="$(count update)" patches="$(count patch)" deletes="$(count 'delete|deletecollection')"
failed="$(failed_writes)"
own_writes="$(metric dataworkspace_api_writes_total)"
write_wait="$(awk 'index($0, "dataworkspace_api_write_wait_seconds_total") == 1 { s += $NF } END { printf "%.1f\n", s }' "${WORK}/metrics.txt")"
failures="$(metric dataworkspace_reconcile_failures_total)"
failure_reasons="$(awk 'index($0, "dataworkspace_reconcile_failures_total{") == 1 && $NF > 0 { sub(/^[^{]*/, ""); printf "%s %s; ", $1, $2 }' "${WORK}/metrics.txt")"
minimum=$((15 * N + 7 * P_NB + 5 * P_ST + 8 * P_SP + 23 * P_AF + 4 * U))
hwm="$(kib VmHWM)" rss="$(kib VmRSS)" cpu="$(cpu_seconds)"
# What the operator caches, as compact JSON without managed fields (approximate: kubectl's output
# with blanks removed; Secrets and Namespaces by their metadata only): to judge memory against the
# data it holds rather than the object count, as membership makes Users and bindings grow with N.
cached_kib="$({
	kubectl get workspaces,users,projects,pythonenvironments,rolebindings -A -o json
	kubectl get namespaces,secrets -A -o jsonpath='{range .items[*]}{.metadata}{"\n"}{end}'
	kubectl get resourcequotas,limitranges,networkpolicies,configmaps,services,statefulsets,ingresses,clusterroles,clusterrolebindings,serviceaccounts,jobs \
		-A -l app.kubernetes.io/managed-by=dataworkspace-operator -o json
} | tr -d ' \n' | wc -c | awk '{ printf "%d", $1 / 1024 }')"
cp "${WORK}/requests.txt" "${WORK}/requests-convergence.txt"
writes_by_resource="$(awk -v v="^(${WRITES})\$" '$1 ~ v { n[$2 " " $1]++ } END { for (k in n) print k, n[k] }' "${WORK}/requests.txt" | sort)"
# Minimum per resource and verb, for the table.
minimum_of() {
	case "$1" in
	"namespaces create") echo "${N}" ;;
	"clusterroles patch" | "clusterrolebindings patch") echo $((2 * N)) ;;
	"rolebindings patch") echo $((3 * N + P_SP + P_AF)) ;;
	"networkpolicies patch") echo $((2 * N + 3 * P_AF)) ;;
	"resourcequotas patch" | "limitranges patch" | "workspaces/status patch") echo "${N}" ;;
	"configmaps patch") echo $((N + P_NB + P_SP + 2 * P_AF)) ;;
	"serviceaccounts patch") echo $((P_NB + P_ST + 2 * P_SP + 3 * P_AF)) ;;
	"statefulsets patch" | "secrets create") echo $((P_NB + P_AF)) ;;
	"persistentvolumeclaims create" | "jobs create") echo "${P_AF}" ;;
	"deployments patch") echo $((P_ST + P_SP + 5 * P_AF)) ;;
	"services patch") echo $((P + 2 * P_AF)) ;;
	"projects/status patch") echo "${P}" ;;
	"users/status patch") echo "${U}" ;;
	"events create") echo $((N + P + U)) ;;
	*) echo 0 ;;
	esac
}

# --- 2. One Project status change ---------------------------------------------------------------
change=""
if [[ -n "${converged}" && ${M} -gt 0 ]]; then
	log "status change: stopping Project dw-w1/p1"
	scrape
	declare -A BEFORE
	for kind in Workspace User Project; do BEFORE[${kind}]="$(passes "${kind}")"; done
	offset_change="$(audit_offset)"
	change_started="$(now)"
	kubectl patch project p1 -n dw-w1 --type merge -p '{"spec":{"stopped":true}}' >/dev/null
	until [[ "$(kubectl get project p1 -n dw-w1 -o jsonpath='{.status.phase}')" == Stopped &&
		"$(kubectl get user u1 -o jsonpath='{.status.pinned[0].phase}')" == Stopped &&
		"$(kubectl get workspace w1 -o jsonpath='{.status.projectsByPhase.Stopped}')" == 1 ]]; do
		[[ ${SECONDS} -lt ${deadline} ]] || break
		sleep 0.5
	done
	change_seen="$(now)"
	settle 300
	operator_requests "${offset_change}" "$(audit_offset)"
	scrape
	declare -A DELTA
	for kind in Workspace User Project; do DELTA[${kind}]=$(($(passes "${kind}") - BEFORE[${kind}])); done
	pinners="$(kubectl get users -o jsonpath='{range .items[*]}{.metadata.name} {.spec.pinned[*].namespace}/{.spec.pinned[*].name}{"\n"}{end}' | awk '$2 == "dw-w1/p1"' | wc -l)"
	change_writes="$(count "${WRITES}")"
	change_writes_detail="$(awk -v v="^(${WRITES})\$" '$1 ~ v { n[$2 " " $1]++ } END { for (k in n) printf "%s %s; ", k, n[k] }' "${WORK}/requests.txt")"
	cp "${WORK}/requests.txt" "${WORK}/requests-change.txt"
	change="yes"
fi

# --- 3. The other client's apply, without the operator; idle resync -------------------------------
if [[ -n "${converged}" ]]; then
log "other client's apply without the operator"
user_statuses() { kubectl get users -o jsonpath='{range .items[*]}{.metadata.name} {.status}{"\n"}{end}'; }
user_statuses >"${WORK}/users-before-restart.txt"
stop_operator
t0_start="$(now)"
kubectl apply -f "${WORK}/input-other.yaml" >/dev/null
t0="$(secs "${t0_start}" "$(now)")"
kubectl delete -f "${WORK}/input-other.yaml" --wait=false >/dev/null 2>&1 || true
until [[ "$(namespaces_of x)" -eq 0 && -z "$(kubectl get workspaces,users -o name | grep -E '/(x|v)[0-9]+$' || true)" ]]; do
	[[ ${SECONDS} -lt $((deadline + 600)) ]] || { log "ERROR: the other client's input was not deleted"; exit 1; }
	sleep 1
done

log "restart: idle resync"
offset_restart="$(audit_offset)"
restarted="$(now)"
start_operator
until scrape && [[ "$(passes Workspace)" -ge ${N} && "$(passes User)" -ge ${U} && "$(passes Project)" -ge ${P} ]]; do
	[[ ${SECONDS} -lt $((deadline + 600)) ]] || break
	sleep 0.5
done
resynced="$(now)"
settle 300
resync_end="$(now)"
operator_requests "${offset_restart}" "$(audit_offset)"
scrape
resync_passes="W $(passes Workspace), U $(passes User), P $(passes Project)"
resync_writes="$(count "${WRITES}")" resync_own_writes="$(metric dataworkspace_api_writes_total)"
resync_gets="$(count get)" resync_lists="$(count list)" resync_watches="$(count watch)"
resync_writes_detail="$(awk -v v="^(${WRITES})\$" '$1 ~ v { n[$2 " " $1]++; o[$2 " " $1] = o[$2 " " $1] " " $4 } END { for (k in n) printf "%s %s (%s); ", k, n[k], substr(o[k], 2) }' "${WORK}/requests.txt")"
cp "${WORK}/requests.txt" "${WORK}/requests-resync.txt"
restart_rss="$(kib VmRSS)" restart_hwm="$(kib VmHWM)"
user_statuses >"${WORK}/users-after-restart.txt"

# --- 4. The other client's apply while the operator converges it ---------------------------------
log "other client's apply with the operator converging it"
if [[ ${P} -gt 0 ]]; then persistent_volumes $((P + P_AF + 11)) $((P + P_AF + 10)) | kubectl create -f - >/dev/null; fi
scrape
busy_before="$(metric dataworkspace_reconciliations_total) $(metric dataworkspace_api_writes_total)"
t1_start="$(now)"
kubectl apply -f "${WORK}/input-other.yaml" >/dev/null
t1="$(secs "${t1_start}" "$(now)")"
scrape
read -r b_passes b_writes <<<"${busy_before}"
busy_passes=$(($(metric dataworkspace_reconciliations_total) - b_passes))
busy_writes=$(($(metric dataworkspace_api_writes_total) - b_writes))
stop_operator
fi

# --- Report -----------------------------------------------------------------------------------------
objects=$((N + U + P))
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
yes_no() { if [[ "$1" == 1 ]]; then echo met; else echo "not met"; fi; }
ratio="$(pct "${writes}" "${minimum}")"
conv_time="$(if [[ -n "${converged}" ]]; then secs "${started}" "${converged}"; else echo ">${TIMEOUT} (not converged)"; fi)"
source hack/versions.env
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] || commit="${commit} with uncommitted changes to src/"
cores="$(nproc)"
memory="$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
model="$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
# shellcheck disable=SC2016 # backquotes are markdown
{
	kinds="Notebook Projects"
	[[ "${MIX}" != 1 ]] || kinds="Projects (${P_NB} Notebook, ${P_ST} Streamlit, ${P_SP} Spark Connect, ${P_AF} Airflow)"
	printf '\n## %s × %s %s, %s Users — %s\n\n' "${N} Workspaces" "${M}" "${kinds}" "${U}" "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'Command: `%s%shack/bench.sh %s %s %s`. Operator %s (release build, default flags unless named), Kubernetes %s, etcd %s, kwok %s, %s.\n' \
		"$([[ "${MIX}" == 1 ]] && echo 'DWO_BENCH_MIX=1 ')" "$([[ -n "${OPERATOR_ARGS}" ]] && echo "DWO_BENCH_OPERATOR_ARGS='${OPERATOR_ARGS}' ")" "${N}" "${M}" "${U}" "${commit}" "${K8S_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "$(rustc --version | cut -d' ' -f1-2)"
	printf 'Machine: %s cores (%s), %s memory, shared with other work (load average at the end: %s). One run.\n\n' \
		"${cores}" "${model}" "${memory}" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '| Figure | Value |\n|---|---|\n'
	printf '| Objects | %s Workspaces (%s with non-canonical quantities), %s Users, %s Projects; %s kwok nodes |\n' "${N}" "${NONCANONICAL}" "${U}" "${P}" "${DWO_CLUSTER_NODES}"
	printf '| Convergence (first apply to all converged) | %s s |\n' "${conv_time}"
	if [[ ${P} -gt 0 ]]; then
		printf '| … of which: Users + Workspaces applied / namespaces made / Projects applied | %s s / %s s / %s s |\n' \
			"$(secs "${started}" "${applied_roots}")" "$(secs "${started}" "${namespaces_ready}")" "$(secs "${started}" "${applied_projects}")"
	fi
	if [[ -n "${converged}" ]]; then
		printf '| Quiet (no pass, no write for %s s) after | %s s |\n' "${QUIET}" "$(secs "${started}" "${settled}")"
	else
		printf '| Figures below taken at (not converged) | %s s |\n' "$(secs "${started}" "${settled}")"
	fi
	printf '| Converged objects | %s/%s Workspaces, %s/%s Users, %s/%s Projects Running |\n' "${workspaces_done}" "${N}" "${users_done}" "${U}" "${projects_done}" "${P}"
	printf '| Operator requests (API server audit) | GET %s, LIST %s, WATCH %s; writes %s (create %s, update %s, patch %s, delete %s; %s refused or failed) |\n' \
		"${gets}" "${lists}" "${watches}" "${writes}" "${creates}" "${updates}" "${patches}" "${deletes}" "${failed}"
	printf '| Operator write counter (`api_writes_total`) | %s |\n' "${own_writes}"
	printf '| Minimum writes (15 N + 7 Notebooks + 5 Streamlit + 8 Spark + 23 Airflow + 4 U) | %s |\n' "${minimum}"
	if [[ -n "${converged}" ]]; then
		printf '| Writes / minimum | %s (target ≤ 1.2: %s) |\n' "${ratio}" "$(yes_no "$(awk -v r="${ratio}" 'BEGIN { print (r <= 1.2) }')")"
	else
		printf '| Writes / minimum | %s, not comparable: the input did not converge |\n' "${ratio}"
	fi
	printf '| Reconcile passes (completed; started) | Workspace %s; %s, User %s; %s, Project %s; %s |\n' \
		"${PASSES[Workspace]}" "${STARTED[Workspace]}" "${PASSES[User]}" "${STARTED[User]}" "${PASSES[Project]}" "${STARTED[Project]}"
	printf '| Passes per object | Workspace %s, User %s, Project %s |\n' \
		"$(pct "${PASSES[Workspace]}" "${N}")" "$(pct "${PASSES[User]}" "${U}")" "$(pct "${PASSES[Project]}" "${P}")"
	printf '| Failed passes | %s%s |\n' "${failures}" "${failure_reasons:+ (${failure_reasons%; })}"
	printf '| GETs per pass | %s (target 0: %s) |\n' "$(pct "${gets}" "${passes_total}")" "$(yes_no "$([[ ${gets} -eq 0 ]] && echo 1)")"
	printf '| Operator CPU time to quiet | %s s |\n' "${cpu}"
	printf '| Time writes waited for the client-side write limit (sum over writes) | %s s |\n' "${write_wait}"
	printf '| Peak RSS (VmHWM) / RSS when quiet | %s MiB / %s MiB (%s KiB per root object) |\n' "$(mib "${hwm}")" "$(mib "${rss}")" "$(awk -v h="${hwm}" -v o="${objects}" 'BEGIN { printf "%.1f", h / o }')"
	printf '| What the operator caches (compact JSON) | %s MiB; peak RSS %s× that |\n' "$(mib "${cached_kib}")" "$(pct "${hwm}" "${cached_kib}")"
	if [[ -n "${change}" ]]; then
		printf '| Stopping one Project (pinned by %s User): passes | Workspace %s, User %s, Project %s (target: Workspace ≤ 1, User ≤ %s: %s) |\n' \
			"${pinners}" "${DELTA[Workspace]}" "${DELTA[User]}" "${DELTA[Project]}" "${pinners}" \
			"$(yes_no "$([[ ${DELTA[Workspace]} -le 1 && ${DELTA[User]} -le ${pinners} ]] && echo 1)")"
		printf '| … its writes; seen in all statuses after | %s (%s); %s s |\n' "${change_writes}" "${change_writes_detail%; }" "$(secs "${change_started}" "${change_seen}")"
	fi
	if [[ -z "${converged}" ]]; then
		printf '| Status change, idle resync, other client'"'"'s apply | not run: the input did not converge within %s s |\n' "${TIMEOUT}"
	else
	printf '| Idle resync (restart): passes until quiet | %s, in %s s, then %s s quiet |\n' "${resync_passes}" "$(secs "${restarted}" "${resynced}")" "$(secs "${resynced}" "${resync_end}")"
	printf '| Idle resync: writes (audit; operator counter) | %s; %s (target 0: %s)%s |\n' "${resync_writes}" "${resync_own_writes}" \
		"$(yes_no "$([[ ${resync_writes} -eq 0 ]] && echo 1)")" "${resync_writes_detail:+ — ${resync_writes_detail%; }}"
	printf '| Idle resync: reads | GET %s, LIST %s, WATCH %s |\n' "${resync_gets}" "${resync_lists}" "${resync_watches}"
	printf '| RSS after restart and resync (VmRSS / VmHWM) | %s MiB / %s MiB |\n' "$(mib "${restart_rss}")" "$(mib "${restart_hwm}")"
	printf '| Other client `kubectl apply` of the same input (%s objects): no operator / operator converging it | %s s / %s s = %s× (target ≤ 1.5: %s) |\n' \
		"$((N + objects))" "${t0}" "${t1}" "$(pct "${t1}" "${t0}")" "$(yes_no "$(awk -v a="${t1}" -v b="${t0}" 'BEGIN { print (a <= 1.5 * b) }')")"
	printf '| … operator activity during that apply | %s passes started, %s writes |\n' "${busy_passes}" "${busy_writes}"
	fi
	printf '\nWrites by resource during convergence (audit), against the minimum:\n\n| Resource | Verb | Writes | Minimum |\n|---|---|---|---|\n'
	while read -r resource verb n; do
		[[ -n "${resource}" ]] && printf '| %s | %s | %s | %s |\n' "${resource}" "${verb}" "${n}" "$(minimum_of "${resource} ${verb}")"
	done <<<"${writes_by_resource}"
} >"${WORK}/results.md"
cat "${WORK}/results.md"
if [[ "${RESULTS}" != - ]]; then
	mkdir -p "$(dirname "${RESULTS}")"
	# shellcheck disable=SC2016 # backquotes are markdown
	[[ -f "${RESULTS}" ]] || printf '# Scale benchmark: Workspaces × Notebook Projects + Users\n\nMeasured with `hack/bench.sh` (method and the minimum-writes formula are described at its top). Figures are what one run measured on a shared machine; they are not asserted anywhere.\n' >"${RESULTS}"
	cat "${WORK}/results.md" >>"${RESULTS}"
	log "results appended to ${RESULTS}"
fi
