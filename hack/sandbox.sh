#!/usr/bin/env bash
# A local playground: control plane, CRDs and roles, the operator (as a host process) and examples/.
#
# Usage: hack/sandbox.sh up     start everything, wait until the examples are reconciled, show them
#        hack/sandbox.sh down   stop the operator and the control plane
#
# Environment: DWO_SANDBOX_LISTEN (operator's HTTP endpoint, default 127.0.0.1:18080), plus the
# DWO_CLUSTER_* variables of hack/cluster.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LISTEN="${DWO_SANDBOX_LISTEN:-127.0.0.1:18080}"
STATE_DIR="$(realpath -m "${DWO_CLUSTER_DIR:-${PWD}/target/cluster}")"
PID_FILE="${STATE_DIR}/operator.pid"
LOG_FILE="${STATE_DIR}/operator.log"
TIMEOUT="${DWO_SANDBOX_TIMEOUT:-120}"

log() { printf '[sandbox %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_operator() {
	if [[ -f "${PID_FILE}" ]]; then
		local pid
		pid="$(cat "${PID_FILE}")"
		if kill -0 "${pid}" 2>/dev/null; then
			log "stopping the operator (pid ${pid})"
			kill -TERM "${pid}"
			for _ in $(seq 1 20); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.5; done
		fi
		rm -f "${PID_FILE}"
	fi
}

http_ok() { # host:port path -> exit 0 on a 200 answer
	local host="${1%:*}" port="${1##*:}"
	{ exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3
	head -n1 <&3 | grep -q ' 200 '
	local ok=$?
	exec 3>&-
	return "${ok}"
}

# Every dataworkspace object's status describes its current generation.
all_observed() {
	local lines
	lines="$(kubectl get dataworkspace -A -o jsonpath='{range .items[*]}{.metadata.generation}={.status.observedGeneration}{"\n"}{end}')"
	[[ -n "${lines}" ]] && ! grep -qvE '^([0-9]+)=\1$' <<<"${lines}"
}

up() {
	hack/cluster.sh up
	eval "$(hack/cluster.sh env)"
	cargo build --locked
	kubectl apply --server-side -k deploy/
	kubectl apply --server-side -f hack/cluster-storage.yaml
	kubectl wait --for=condition=Established --timeout=60s -f crds/
	kubectl api-resources --api-group=dataworkspace.io >/dev/null # refresh kubectl's discovery cache
	if [[ -f "${PID_FILE}" ]] && kill -0 "$(cat "${PID_FILE}")" 2>/dev/null; then
		log "the operator is already running (pid $(cat "${PID_FILE}"))"
	else
		log "starting the operator, log: ${LOG_FILE}"
		nohup target/debug/dataworkspace-operator run --listen-address "${LISTEN}" >>"${LOG_FILE}" 2>&1 &
		echo $! >"${PID_FILE}"
		for _ in $(seq 1 "${TIMEOUT}"); do http_ok "${LISTEN}" /readyz && break; sleep 1; done
		http_ok "${LISTEN}" /readyz || { tail -n 30 "${LOG_FILE}" >&2; log "the operator did not become ready"; exit 1; }
	fi
	kubectl apply -f examples/
	log "waiting until every example is reconciled"
	for _ in $(seq 1 "${TIMEOUT}"); do all_observed && break; sleep 1; done
	all_observed || { kubectl get dataworkspace -A >&2; log "not every object was reconciled in ${TIMEOUT}s"; exit 1; }
	# What this version provisions must be Ready; the rest reports NotYetSupported.
	kubectl wait --for=condition=Ready --timeout="${TIMEOUT}s" workspaces.dataworkspace.io --all
	kubectl wait --for=condition=Ready --timeout="${TIMEOUT}s" users.dataworkspace.io --all
	echo
	kubectl get dataworkspace -A
	echo
	echo "The sandbox is up. The operator serves http://${LISTEN}/metrics; its log is ${LOG_FILE}."
	echo "Use it with:"
	hack/cluster.sh env
}

case "${1:-}" in
	up) up ;;
	down) stop_operator; hack/cluster.sh down ;;
	*) sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
