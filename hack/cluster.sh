#!/usr/bin/env bash
# Local e2e control plane: the real kube-apiserver, kube-controller-manager, kube-scheduler and
# etcd (built from upstream by hack/build-tools.sh) plus kwok fake nodes, run as host processes on
# 127.0.0.1 by kwokctl's binary runtime. Never touches ~/.kube/config or ~/.kwok.
#
# Usage: hack/cluster.sh <command>
#   up           build the tools if needed, start the cluster, wait until it is usable (idempotent)
#   down         stop the cluster and every process it started (no error if there is none)
#   env          print `export KUBECONFIG=... PATH=... KUBECACHEDIR=...` lines for
#                eval "$(hack/cluster.sh env)"
#   status       exit 0 if the cluster is up and healthy, 1 otherwise
#   logs [N]     print the last N (default 50) lines of every component log
#   audit-log    print the path of the API server's audit log (with DWO_AUDIT=1)
#   kubectl ...  run the pinned kubectl against the cluster
#   restart C [S]  kill component C (etcd, kube-apiserver, ...), wait S seconds (default 3), start
#                it again as it ran: a fault for the fault tests
#
# Environment: DWO_CLUSTER_NAME (default dwo), DWO_CLUSTER_DIR (default <repo>/target/cluster),
# DWO_CLUSTER_NODES (default 2), DWO_CLUSTER_TIMEOUT (seconds for `up`, default 300),
# DWO_KEEP_FAILED_CLUSTER=1 (leave a cluster that failed to come up running, for debugging),
# DWO_KWOKCTL_LOG_LEVEL (DEBUG, INFO, WARN (default), ERROR), DWO_TOOLS_DIR (see hack/build-tools.sh),
# DWO_AUDIT=1 (opt-in: the API server writes an audit log of every request at metadata level,
# without bodies; `up` recreates a running cluster that was started without it).
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${HACK_DIR}/.." && pwd)"
# shellcheck source=hack/versions.env
source "${HACK_DIR}/versions.env"
# kwok_env drops every KWOK_* variable (kwokctl reads them): keep the pin under another name.
PINNED_KWOK_VERSION="${KWOK_VERSION}"

CLUSTER_NAME="${DWO_CLUSTER_NAME:-dwo}"
CLUSTER_DIR="$(realpath -m "${DWO_CLUSTER_DIR:-${REPO_ROOT}/target/cluster}")"
CLUSTER_NODES="${DWO_CLUSTER_NODES:-2}"
UP_TIMEOUT="${DWO_CLUSTER_TIMEOUT:-300}"
KUBECONFIG_PATH="${CLUSTER_DIR}/kubeconfig"
KWOKCTL_CONFIG="${CLUSTER_DIR}/kwokctl.yaml"
# kubectl's discovery/http cache (default ~/.kube/cache) stays with the cluster too.
KUBE_CACHE_DIR="${CLUSTER_DIR}/kube-cache"
AUDIT="${DWO_AUDIT:-0}"
AUDIT_POLICY="${CLUSTER_DIR}/audit-policy.yaml"
# Where kwokctl keeps this cluster: config, certificates, etcd data, pids/, logs/.
CLUSTER_STATE_DIR="${CLUSTER_DIR}/clusters/${CLUSTER_NAME}"
BIN_DIR="$("${HACK_DIR}/build-tools.sh" --print-bin-dir)"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

# kwokctl reads KWOK_* variables (KWOK_KUBE_VERSION, KWOK_RUNTIME, ...) with priority over the
# config file: drop any from the caller's environment, then point it at our own work dir.
kwok_env() {
	local v
	for v in $(compgen -v KWOK_ || true); do
		unset "${v}"
	done
	export KWOK_WORKDIR="${CLUSTER_DIR}"
	# kwokctl runs kubectl from PATH: make it the pinned one. Any tool defaulting to $KUBECONFIG
	# sees the cluster's own file, never ~/.kube/config.
	export PATH="${BIN_DIR}:${PATH}"
	export KUBECONFIG="${KUBECONFIG_PATH}"
	export KUBECACHEDIR="${KUBE_CACHE_DIR}"
}

# Runs kwokctl for this cluster, bounded by a timeout (seconds) given as $1. The components it
# starts are detached and outlive us, so it gets no file descriptor beyond 0-2: an inherited one
# (our lock on fd 8, a caller's pipe, make's jobserver) would stay open for the cluster's lifetime.
kwokctl_for() {
	local secs="$1"
	shift
	(
		local fd
		for fd in "/proc/${BASHPID}/fd/"*; do
			fd="${fd##*/}"
			if [[ ${fd} -gt 2 ]]; then eval "exec ${fd}>&-" 2>/dev/null || true; fi
		done
		exec timeout --kill-after=10 "$((secs > 0 ? secs : 1))" \
			"${BIN_DIR}/kwokctl" --v "${DWO_KWOKCTL_LOG_LEVEL:-WARN}" --name "${CLUSTER_NAME}" "$@"
	)
}
kube() { KUBECACHEDIR="${KUBE_CACHE_DIR}" "${BIN_DIR}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" --request-timeout=10s "$@"; }

# Runs "$@" every second until it succeeds or $1 seconds have passed.
retry_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[[ ${SECONDS} -lt ${deadline} ]] || return 1
		sleep 1
	done
}

# A process counts as running unless it is gone or a zombie (killed, not yet reaped by init).
alive() {
	local st
	st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
	[[ -n "${st}" && "${st}" != Z* ]]
}

# Pids of this cluster's processes: those in kwokctl's pid files, and any process whose command
# line names this cluster's directory (in case a pid file is gone).
cluster_pids() {
	local f pid pattern
	{
		if [[ -d "${CLUSTER_STATE_DIR}/pids" ]]; then
			for f in "${CLUSTER_STATE_DIR}"/pids/*.pid; do
				[[ -f "${f}" ]] || continue
				pid="$(tr -dc '0-9' <"${f}")"
				[[ -n "${pid}" ]] && alive "${pid}" && echo "${pid}"
			done
		fi
		pattern="$(printf '%s/' "${CLUSTER_STATE_DIR}" | sed 's/[][\.*^$+?(){}|]/\\&/g')"
		for pid in $(pgrep -f -- "${pattern}" || true); do
			alive "${pid}" && echo "${pid}"
		done
	} | { grep -vx -e "$$" -e "${BASHPID}" || true; } | sort -un
}

components_running() {
	local f pid n=0
	[[ -d "${CLUSTER_STATE_DIR}/pids" ]] || return 1
	for f in "${CLUSTER_STATE_DIR}"/pids/*.pid; do
		[[ -f "${f}" ]] || return 1
		pid="$(tr -dc '0-9' <"${f}")"
		[[ -n "${pid}" ]] && alive "${pid}" || return 1
		n=$((n + 1))
	done
	# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller
	[[ ${n} -ge 5 ]]
}

apiserver_ready() { [[ "$(kube get --raw /readyz 2>/dev/null)" == "ok" ]]; }

server_version_ok() {
	kube get --raw /version 2>/dev/null | grep -q "\"gitVersion\": *\"${K8S_VERSION}\""
}

ready_nodes() {
	kube get nodes -o jsonpath='{range .items[*]}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' 2>/dev/null |
		grep -c '^True$' || true
}

nodes_ready() { [[ "$(ready_nodes)" -ge "${CLUSTER_NODES}" ]]; }

default_sa_exists() { kube get serviceaccount default -n default -o name >/dev/null 2>&1; }

# With DWO_AUDIT=1, a cluster counts as healthy only if it was started with the audit log.
audit_as_requested() { [[ "${AUDIT}" != 1 || -f "${CLUSTER_STATE_DIR}/logs/audit.log" ]]; }

healthy() {
	[[ -f "${KUBECONFIG_PATH}" && -x "${BIN_DIR}/kubectl" ]] && audit_as_requested &&
		components_running && apiserver_ready && server_version_ok && nodes_ready && default_sa_exists
}

print_logs() {
	local lines="${1:-50}" dir="${2:-${CLUSTER_STATE_DIR}/logs}" f
	if ! compgen -G "${dir}/*.log" >/dev/null; then
		log "no component logs in ${dir}"
		return 0
	fi
	for f in "${dir}"/*.log; do
		printf '\n===== %s (last %s lines) =====\n' "${f}" "${lines}" >&2
		tail -n "${lines}" "${f}" >&2 || true
	done
}

# Called when `up` fails: show what the components said, keep a copy of their logs, and stop the
# half-started cluster unless asked to keep it.
up_failed() {
	local saved="${CLUSTER_DIR}/failed-logs"
	log "ERROR: $*"
	print_logs 40
	if [[ -d "${CLUSTER_STATE_DIR}/logs" ]]; then
		rm -rf "${saved}"
		cp -r "${CLUSTER_STATE_DIR}/logs" "${saved}"
		log "component logs saved to ${saved}"
	fi
	if [[ "${DWO_KEEP_FAILED_CLUSTER:-0}" == 1 ]]; then
		log "DWO_KEEP_FAILED_CLUSTER=1: leaving the cluster running; stop it with: $0 down"
	else
		do_down
	fi
	log "ERROR: cluster '${CLUSTER_NAME}' did not come up: $*"
	exit 1
}

write_kwokctl_config() {
	local b="${BIN_DIR}"
	mkdir -p "${CLUSTER_DIR}"
	cat >"${KWOKCTL_CONFIG}" <<EOF
# Generated by hack/cluster.sh; rewritten on every \`up\`.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: ${K8S_VERSION}
  etcdVersion: ${ETCD_VERSION#v}
  bindAddress: 127.0.0.1
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  quietPull: true
  kubeBinaryPrefix: ${b}
  kubeApiserverBinary: ${b}/kube-apiserver
  kubeControllerManagerBinary: ${b}/kube-controller-manager
  kubeSchedulerBinary: ${b}/kube-scheduler
  kubectlBinary: ${b}/kubectl
  etcdBinaryPrefix: ${b}
  etcdBinary: ${b}/etcd
  etcdctlBinary: ${b}/etcdctl
  etcdutlBinary: ${b}/etcdutl
  kwokBinaryPrefix: ${b}
  kwokControllerBinary: ${b}/kwok
# The API server's own default Service range is a /24 (254 addresses): a benchmark's apps and
# Spark servers need more, as any real cluster has.
componentsPatches:
  - name: kube-apiserver
    extraArgs:
      - key: service-cluster-ip-range
        value: 10.96.0.0/16
EOF
	write_kwok_stages >>"${KWOKCTL_CONFIG}"
}

# The stages kwok plays pods and nodes through. Any Stage in the config replaces all of kwok's
# defaults, so they come first, read from the pinned kwok module (node-initialize,
# node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete); then one of ours: a running
# pod annotated `e2e.example.com/outcome: fail` ends Failed (exit code 1, the annotation
# `e2e.example.com/message` as its termination message) instead of completing — how the e2e
# suite makes a batch run fail. Its weight beats pod-complete's (kwok picks by weight).
write_kwok_stages() {
	local dir stage
	dir="$(cd "${CLUSTER_DIR}" && GOFLAGS=-mod=mod go mod download -json "sigs.k8s.io/kwok@${PINNED_KWOK_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	[[ -n "${dir}" ]] || die "cannot find the sigs.k8s.io/kwok@${PINNED_KWOK_VERSION} module (go mod download)"
	for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
		pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
		[[ -f "${dir}/kustomize/stage/${stage}.yaml" ]] || die "kwok ${PINNED_KWOK_VERSION} has no stage ${stage}"
		echo "---"
		cat "${dir}/kustomize/stage/${stage}.yaml"
	done
	cat <<'STAGE'
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: e2e-pod-fail
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
      - key: '.metadata.deletionTimestamp'
        operator: 'DoesNotExist'
      - key: '.status.phase'
        operator: 'In'
        values: ['Running']
      - key: '.metadata.annotations["e2e.example.com/outcome"]'
        operator: 'In'
        values: ['fail']
  weight: 1
  delay:
    durationMilliseconds: 1000
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $message := or ( index .metadata.annotations "e2e.example.com/message" ) "failed" }}
      conditions:
        - {lastTransitionTime: {{ $now | Quote }}, status: "False", reason: PodFailed, type: Ready}
        - {lastTransitionTime: {{ $now | Quote }}, status: "False", reason: PodFailed, type: ContainersReady}
      containerStatuses:
      {{ range .spec.containers }}
        - image: {{ .image | Quote }}
          name: {{ .name | Quote }}
          ready: false
          restartCount: 0
          started: false
          state:
            terminated:
              exitCode: 1
              reason: Error
              message: {{ $message | Quote }}
              startedAt: {{ $now | Quote }}
              finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: Failed
STAGE
}

# Metadata level (who, verb, resource, response code; no bodies) for every request but the
# health probes. RequestReceived is omitted: a request is one line at ResponseComplete, a watch
# one at ResponseStarted and one when it ends.
write_audit_policy() {
	cat >"${AUDIT_POLICY}" <<EOF
# Generated by hack/cluster.sh (DWO_AUDIT=1).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: [/healthz*, /readyz*, /livez*]
  - level: Metadata
EOF
}

do_up() {
	local start=${SECONDS} deadline plan bad remaining
	log "building/checking tools (hack/build-tools.sh)"
	"${HACK_DIR}/build-tools.sh" >/dev/null
	kwok_env
	# The start-up timeout does not include building the tools.
	deadline=$((SECONDS + UP_TIMEOUT))

	if healthy; then
		log "cluster '${CLUSTER_NAME}' is already up and healthy"
		print_summary
		return 0
	fi
	if [[ -d "${CLUSTER_STATE_DIR}" || -n "$(cluster_pids)" ]]; then
		log "cluster '${CLUSTER_NAME}' exists but is not healthy: recreating it"
		do_down
	fi
	rm -rf "${CLUSTER_DIR}/failed-logs"

	write_kwokctl_config
	rm -f "${KUBECONFIG_PATH}"
	local create_args=(-c "${KWOKCTL_CONFIG}" create cluster --runtime binary
		--kube-authorization=true --kube-admission=true --kubeconfig "${KUBECONFIG_PATH}")
	if [[ "${AUDIT}" == 1 ]]; then
		write_audit_policy
		create_args+=(--kube-audit-policy "${AUDIT_POLICY}")
	fi

	# Everything must come from the local tools dir. The dry run prints "# Download <src> to <dst>"
	# for every binary it puts in place (a local <src> is only linked); any other source, or an
	# image pull, means kwokctl would go to the network: refuse.
	plan="$(kwokctl_for 60 --dry-run "${create_args[@]}" 2>&1)" || die "kwokctl dry run failed: ${plan}"
	printf '%s\n' "${plan}" >"${CLUSTER_DIR}/create-cluster.dry-run.txt"
	bad="$(grep -E '^# Download |^(docker|podman|nerdctl|kind) ' <<<"${plan}" |
		grep -vE "^# Download ${BIN_DIR//./\\.}/[a-z-]+ to " || true)"
	if [[ -n "${bad}" ]]; then
		printf '%s\n' "${bad}" >&2
		die "kwokctl would fetch something (see above; full plan in ${CLUSTER_DIR}/create-cluster.dry-run.txt)"
	fi

	log "creating cluster '${CLUSTER_NAME}' in ${CLUSTER_DIR} (timeout ${UP_TIMEOUT}s)"
	remaining=$((deadline - SECONDS))
	if ! kwokctl_for "${remaining}" "${create_args[@]}" \
		--wait "$((remaining > 60 ? remaining - 30 : 30))s" --timeout "${remaining}s" >&2; then
		up_failed "kwokctl create cluster failed or timed out"
	fi
	[[ -f "${KUBECONFIG_PATH}" ]] || up_failed "kwokctl did not write ${KUBECONFIG_PATH}"

	log "waiting for kube-apiserver /readyz"
	retry_for "$((deadline - SECONDS))" apiserver_ready || up_failed "kube-apiserver not ready (/readyz)"
	server_version_ok || up_failed "server does not report ${K8S_VERSION}: $(kube get --raw /version 2>&1)"
	components_running || up_failed "a control-plane component exited"

	log "scaling to ${CLUSTER_NODES} kwok node(s)"
	kwokctl_for "$((deadline - SECONDS))" scale node --replicas "${CLUSTER_NODES}" >&2 ||
		up_failed "kwokctl scale node failed"

	log "waiting for ${CLUSTER_NODES} Ready node(s)"
	retry_for "$((deadline - SECONDS))" nodes_ready ||
		up_failed "only $(ready_nodes)/${CLUSTER_NODES} nodes Ready: $(kube get nodes -o wide 2>&1)"

	log "waiting for ServiceAccount default/default"
	retry_for "$((deadline - SECONDS))" default_sa_exists ||
		up_failed "ServiceAccount default/default not created (kube-controller-manager not working?)"

	healthy || up_failed "cluster is not healthy after start-up"
	log "cluster '${CLUSTER_NAME}' is up in $((SECONDS - start))s"
	print_summary
}

print_summary() {
	log "kubeconfig: ${KUBECONFIG_PATH}"
	log "use it with: eval \"\$(${0} env)\"   or: ${0} kubectl get nodes"
}

do_down() {
	local pids pid
	kwok_env
	pids="$(cluster_pids)"
	if [[ -d "${CLUSTER_STATE_DIR}" && -x "${BIN_DIR}/kwokctl" ]]; then
		log "deleting cluster '${CLUSTER_NAME}'"
		# --kubeconfig: kwokctl removes the context from that file (default would be ~/.kube/config).
		kwokctl_for 120 delete cluster --kubeconfig "${KUBECONFIG_PATH}" >&2 ||
			log "kwokctl delete cluster failed; cleaning up by hand"
	fi
	# The components are detached (own session); make sure none survived. The cluster's data is
	# thrown away, so like kwokctl itself use SIGKILL (a kube-apiserver whose etcd is gone can
	# take long to shut down gracefully).
	pids="$(printf '%s\n%s\n' "${pids}" "$(cluster_pids)" | grep -E '^[0-9]+$' | sort -un || true)"
	for pid in ${pids}; do
		alive "${pid}" || continue
		log "killing leftover process ${pid}: $(ps -o args= -p "${pid}" 2>/dev/null | cut -c1-100)"
		kill -KILL "${pid}" 2>/dev/null || true
	done
	for pid in ${pids}; do
		for _ in $(seq 1 50); do
			alive "${pid}" || break
			sleep 0.2
		done
	done
	rm -rf "${CLUSTER_STATE_DIR}" "${KUBE_CACHE_DIR}"
	rm -f "${KUBECONFIG_PATH}"
	if [[ -n "$(cluster_pids)" ]]; then
		die "processes of cluster '${CLUSTER_NAME}' are still running: $(cluster_pids | tr '\n' ' ')"
	fi
	log "cluster '${CLUSTER_NAME}' is down"
}

# Kills one component (etcd, kube-apiserver, …) of the running cluster, waits `down` seconds,
# and starts it again with exactly its command line, environment and working directory (read
# from /proc beforehand), detached like kwokctl starts it, its pid file updated: a fault to
# inject. Waits until the API server answers again, then supervises the other components for a
# while: kube-controller-manager and kube-scheduler exit when they lose their leader lease during
# the outage, as they are built to (a kubelet or systemd restarts them; here this does).
save_component() { # component: its command line, environment and working directory
	local component="$1" pid dir="${CLUSTER_STATE_DIR}/restart/$1"
	pid="$(tr -dc '0-9' <"${CLUSTER_STATE_DIR}/pids/${component}.pid")"
	alive "${pid}" || return 0
	mkdir -p "${dir}"
	cp "/proc/${pid}/cmdline" "${dir}/cmdline"
	cp "/proc/${pid}/environ" "${dir}/environ"
	readlink "/proc/${pid}/cwd" >"${dir}/cwd"
}
start_component() {
	local component="$1" dir="${CLUSTER_STATE_DIR}/restart/$1" cwd
	local -a command environment
	mapfile -d '' command <"${dir}/cmdline"
	mapfile -d '' environment <"${dir}/environ"
	cwd="$(cat "${dir}/cwd")"
	(cd "${cwd}" && exec setsid env -i "${environment[@]}" "${command[@]}" \
		>>"${CLUSTER_STATE_DIR}/logs/${component}.log" 2>&1 </dev/null) &
	echo $! >"${CLUSTER_STATE_DIR}/pids/${component}.pid"
	log "started ${component} (pid $!)"
}
component_alive() {
	local pid
	pid="$(tr -dc '0-9' <"${CLUSTER_STATE_DIR}/pids/$1.pid")"
	[[ -n "${pid}" ]] && alive "${pid}"
}
do_restart() {
	local component="$1" down="${2:-3}" f other pid deadline
	[[ -f "${CLUSTER_STATE_DIR}/pids/${component}.pid" ]] ||
		die "no component ${component} in cluster '${CLUSTER_NAME}' (see ${CLUSTER_STATE_DIR}/pids)"
	component_alive "${component}" || die "${component} is not running"
	local -a components=()
	for f in "${CLUSTER_STATE_DIR}"/pids/*.pid; do
		other="$(basename "${f}" .pid)"
		save_component "${other}"
		components+=("${other}")
	done
	pid="$(tr -dc '0-9' <"${CLUSTER_STATE_DIR}/pids/${component}.pid")"
	# Killed, not stopped: a crash, and the outage starts at once (a terminated API server keeps
	# serving its open watches while it drains).
	log "killing ${component} (pid ${pid}); down for ${down}s"
	kill -KILL "${pid}"
	for _ in $(seq 1 50); do alive "${pid}" || break; sleep 0.2; done
	sleep "${down}"
	start_component "${component}"
	deadline=$((SECONDS + 60))
	until apiserver_ready; do
		[[ ${SECONDS} -lt ${deadline} ]] || die "the API server did not answer within 60s of restarting ${component}"
		sleep 0.5
	done
	deadline=$((SECONDS + 20))
	while [[ ${SECONDS} -lt ${deadline} ]]; do
		for other in "${components[@]}"; do
			component_alive "${other}" || start_component "${other}"
		done
		sleep 1
	done
}

do_env() {
	printf 'export KUBECONFIG=%q\n' "${KUBECONFIG_PATH}"
	printf 'export KUBECACHEDIR=%q\n' "${KUBE_CACHE_DIR}"
	# shellcheck disable=SC2016 # ${PATH} is expanded by the caller's eval
	printf 'export PATH=%q:"${PATH}"\n' "${BIN_DIR}"
}

# Serialise up/down of the same cluster (e.g. two make targets started at once). `down` waits at
# most a minute and then goes ahead anyway: stopping must always work.
lock_cluster() {
	local wait="$1"
	mkdir -p "${CLUSTER_DIR}"
	exec 8>"${CLUSTER_DIR}/cluster.lock"
	if ! flock -n 8; then
		log "waiting (up to ${wait}s) for another hack/cluster.sh on ${CLUSTER_DIR}"
		if ! flock -w "${wait}" 8; then
			[[ "${cmd}" == down ]] || die "timed out waiting for the lock on ${CLUSTER_DIR}"
			log "lock still held after ${wait}s; stopping the cluster anyway"
		fi
	fi
}

cmd="${1:-}"
[[ $# -eq 0 ]] || shift
case "${cmd}" in
up) lock_cluster "${UP_TIMEOUT}"; do_up ;;
down) lock_cluster 60; do_down ;;
env) do_env ;;
restart)
	[[ $# -ge 1 ]] || die "usage: $0 restart <component> [seconds down]"
	do_restart "$@"
	;;
status)
	if [[ -x "${BIN_DIR}/kubectl" ]] && healthy; then
		log "cluster '${CLUSTER_NAME}' is up: ${KUBECONFIG_PATH}"
	else
		log "cluster '${CLUSTER_NAME}' is not up"
		exit 1
	fi
	;;
logs) print_logs "${1:-50}" ;;
audit-log)
	[[ -f "${CLUSTER_STATE_DIR}/logs/audit.log" ]] || die "no audit log: start the cluster with DWO_AUDIT=1"
	printf '%s\n' "${CLUSTER_STATE_DIR}/logs/audit.log"
	;;
kubectl)
	[[ -x "${BIN_DIR}/kubectl" ]] || die "kubectl is not built yet; run: $0 up"
	[[ -f "${KUBECONFIG_PATH}" ]] || die "no cluster kubeconfig at ${KUBECONFIG_PATH}; run: $0 up"
	KUBECACHEDIR="${KUBE_CACHE_DIR}" exec "${BIN_DIR}/kubectl" --kubeconfig "${KUBECONFIG_PATH}" "$@"
	;;
-h | --help | help) usage ;;
*) usage; exit 2 ;;
esac
