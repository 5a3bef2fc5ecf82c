#!/usr/bin/env bash
# Peer benchmark (issue 14): the operator against kro, the generic way to compose a tenant. For
# each size N, N tenants are made through kro (a ResourceGraphDefinition producing the objects a
# Workspace produces, hack/bench-peer/tenant-rgd.yaml) and then N Workspaces through the
# operator, each controller alone on the cluster while it runs. Reports for each: the time until
# every tenant's objects exist and its Studio StatefulSet is ready, and until the controller
# itself reports every tenant ready; its requests as the API server counts them by verb (audit
# log, its own identity only) against the minimum writes for the input; its requests over a quiet
# period; its peak RSS and CPU seconds; and the ratios ours / kro.
#
# Usage: hack/bench-peer.sh [N ...]    (default 50 200 500)
#
# Prints a markdown table per N and appends them to docs/benchmarks/<date>-peer.md
# (DWO_PEER_RESULTS=<file> to write elsewhere, DWO_PEER_RESULTS=- not at all). Environment:
# DWO_PEER_TIMEOUT (seconds each controller may take to converge one size, default 1200),
# DWO_PEER_IDLE (the quiet period in seconds, default 60), DWO_PEER_KEEP=1 (leave the cluster),
# DWO_PEER_OPERATOR_ARGS (more flags of the operator's `run`, such as `--api-write-rate 100`;
# recorded in the results),
# DWO_PEER_REPORT=<dir> (print the tables again from the figures a run left in <dir>, its
# peer/ folder under the cluster directory; nothing is run).
#
# Method:
#  1. One cluster of its own (DWO_CLUSTER_NAME=dwo-peer under target/), the API server's audit
#     log on, kwok nodes for the largest N. Installed once: the operator's manifests (deploy/:
#     CRDs, roles, admission policies, its ServiceAccount and least-privilege ClusterRole), kro's
#     CRDs and kro's identity (hack/bench-peer/kro-rbac.yaml), a StorageClass whose claims bind to
#     pre-made volumes (a fresh set of N for each run). Each controller runs as a host process
#     through a kubeconfig that impersonates its ServiceAccount; kubectl and the control plane use
#     the admin identity. A request counts once: a watch by its ResponseStarted audit event, any
#     other request by its ResponseComplete event.
#  2. For each N, kro first: kro started, the RGD applied (the first time) and Ready, then the
#     window opens: N instances applied with one `kubectl apply`; converged when every tenant's 15
#     objects exist, every Studio StatefulSet has 1 ready replica, and every instance is ACTIVE
#     with Ready=True. The window closes once kro has sent no write for 10 s (at most 120 s after
#     convergence): its requests in the window are the figures. Then a quiet period (no input
#     change) counts its idle requests; then its peak RSS (VmHWM) and CPU seconds (utime + stime)
#     are read from /proc. The tenants are deleted (kro still running, not counted) and the
#     controller stopped once they are gone. Then the same for the operator with N Workspaces;
#     converged also needs every Workspace Ready=True.
#  3. The input, per tenant i: members a team as admin (t<i>) and one as developer (data), one
#     variable, the Studio server on (a 1Gi home), deletion policy Delete. No Users: the operator
#     runs with --team-group-prefix team: so teams are bound as the groups team:<team>, as
#     kro's graph binds them. The kro instance carries the same values.
#  4. Minimum writes, the same rule for both: every object created once and the root object's
#     status written once in its final state: 16 per tenant (Namespace, ResourceQuota, LimitRange,
#     2 NetworkPolicies, 3 RoleBindings, 2 ClusterRoles, 2 ClusterRoleBindings, the variables
#     ConfigMap, the Studio Service and StatefulSet; status). Events are writes too and are
#     counted in the writes, but neither controller is credited for them in the minimum.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(50 200 500)
MAX=0
for n in "${SIZES[@]}"; do
	[[ "${n}" =~ ^[1-9][0-9]*$ ]] || { echo "usage: hack/bench-peer.sh [N ...] (positive integers)" >&2; exit 2; }
	[[ ${n} -le ${MAX} ]] || MAX=${n}
done
TIMEOUT="${DWO_PEER_TIMEOUT:-1200}"
IDLE="${DWO_PEER_IDLE:-60}"
OPERATOR_ARGS="${DWO_PEER_OPERATOR_ARGS:-}"
SETTLE=10
PER_TENANT=15
LISTEN=127.0.0.1:18384
KRO_METRICS=127.0.0.1:18478
KRO_PROBE=127.0.0.1:18479
OPERATOR_USER=system:serviceaccount:dataworkspace-system:dataworkspace-operator
KRO_USER=system:serviceaccount:kro-system:kro
export DWO_CLUSTER_NAME="${DWO_CLUSTER_NAME:-dwo-peer}" DWO_CLUSTER_DIR="${DWO_CLUSTER_DIR:-${PWD}/target/dwo-peer}" DWO_AUDIT=1
# kwok nodes hold 110 pods each: one Studio pod per tenant.
export DWO_CLUSTER_NODES=$(((MAX + 99) / 100 + 1))
WORK="${DWO_CLUSTER_DIR}/peer"
RESULTS="${DWO_PEER_RESULTS:-docs/benchmarks/$(date +%F)-peer.md}"
log() { printf '[bench-peer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# DWO_PEER_REPORT=<dir>: print the tables again from the figures a finished run left in <dir>.
if [[ -n "${DWO_PEER_REPORT:-}" ]]; then
	WORK="${DWO_PEER_REPORT}"
	REPORT_ONLY=1
fi

if [[ -z "${REPORT_ONLY:-}" ]]; then
log "building the operator (release) and kro"
cargo build --release --locked -q --bin dataworkspace-operator
TOOLS="$(hack/build-tools.sh kro | tail -n1)"
hack/cluster.sh down >/dev/null 2>&1 || true
controller=""
cleanup() {
	[[ -z "${controller}" ]] || kill "${controller}" 2>/dev/null || true
	if [[ "${DWO_PEER_KEEP:-0}" == 1 ]]; then
		log "DWO_PEER_KEEP=1: cluster left running; stop it with: DWO_CLUSTER_NAME=${DWO_CLUSTER_NAME} DWO_CLUSTER_DIR=${DWO_CLUSTER_DIR} hack/cluster.sh down"
	else
		hack/cluster.sh down >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
trap 'log "ERROR: line ${LINENO}: ${BASH_COMMAND} failed"' ERR
log "starting the cluster (${DWO_CLUSTER_NODES} kwok nodes, audit log on)"
mkdir -p "${DWO_CLUSTER_DIR}"
hack/cluster.sh up >"${DWO_CLUSTER_DIR}/peer-up.log" 2>&1 || { cat "${DWO_CLUSTER_DIR}/peer-up.log" >&2; exit 1; }
eval "$(hack/cluster.sh env)"
AUDIT_LOG="$(hack/cluster.sh audit-log)"
# shellcheck source=hack/lib/audit.sh
source hack/lib/audit.sh
rm -rf "${WORK}" && mkdir -p "${WORK}"

# --- Setup ----------------------------------------------------------------------------------------
kubectl apply --server-side -k deploy/ >/dev/null
kubectl apply --server-side -f "${TOOLS}/kro-crds.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ -f "${TOOLS}/kro-crds.yaml" >/dev/null
kubectl apply -f hack/bench-peer/kro-rbac.yaml >/dev/null
kubectl api-resources --cached=false >/dev/null
impersonating() { # user file
	kubectl config view --raw --minify --flatten |
		awk -v as="$1" '{ print } /^  user:$/ { print "    as: " as }' >"$2"
	[[ "$(KUBECONFIG="$2" kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" == "$1" ]] ||
		{ log "ERROR: $2 does not impersonate $1"; exit 1; }
}
impersonating "${OPERATOR_USER}" "${WORK}/operator.kubeconfig"
impersonating "${KRO_USER}" "${WORK}/kro.kubeconfig"
printf -- '---\napiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bench, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\nreclaimPolicy: Retain\n' |
	kubectl create -f - >/dev/null
persistent_volumes() { # prefix count
	local i
	for i in $(seq 1 "$2"); do
		printf -- '---\napiVersion: v1\nkind: PersistentVolume\nmetadata: {name: %s-%s}\nspec: {storageClassName: bench, capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], persistentVolumeReclaimPolicy: Retain, hostPath: {path: /var/lib/bench-pv/%s-%s}}\n' "$1" "$i" "$1" "$i"
	done
}

fi

# --- The input ------------------------------------------------------------------------------------
# Tenant names: <prefix><N>-<i>, so that each run has its own (namespace dw-<name>).
workspaces() { # prefix N
	local i
	for i in $(seq 1 "$2"); do
		printf -- '---\napiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {name: %s%s-%s}\nspec: {members: [{team: t%s, role: admin}, {team: data, role: developer}], variables: {A: b}, studio: {storage: {size: 1Gi}}, deletionPolicy: Delete}\n' \
			"$1" "$2" "${i}" "${i}"
	done
}
tenants() { # prefix N
	local i
	for i in $(seq 1 "$2"); do
		printf -- '---\napiVersion: kro.run/v1alpha1\nkind: Tenant\nmetadata: {name: %s%s-%s}\nspec: {adminTeam: t%s, developerTeam: data, variables: {A: b}, studioStorage: 1Gi}\n' \
			"$1" "$2" "${i}" "${i}"
	done
}

# --- Probes ---------------------------------------------------------------------------------------
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/${controller}/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/${controller}/stat"; }
# requests WHO FROM TO: the requests of WHO between two byte offsets of the audit log, one line
# each: "verb resource code object" (hack/lib/audit.sh, as hack/bench.sh counts them).
requests() { audit_requests "$@"; }
WRITES='create|update|patch|delete|deletecollection'
READS='get|list|watch'
# count FILE VERB_REGEX: requests of those verbs in a requests file.
count() { awk -v v="^($2)\$" '$1 ~ v { n++ } END { printf "%d\n", n }' "$1"; }
by_verb() { awk '{ n[$1]++ } END { for (v in n) printf "%s %d, ", v, n[v] }' "$1" | sed 's/, $//'; }
failed_writes() { awk -v v="^(${WRITES})\$" '$1 ~ v && $3 !~ /^2/ { n++ } END { printf "%d\n", n }' "$1"; }

# Convergence, the same check for both: every tenant's objects, by kind and name, in the
# namespaces dw-<prefix><N>-<i> (and its two ClusterRoles and ClusterRoleBindings).
ready_studios() { # prefix N
	kubectl get statefulsets -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.status.readyReplicas}{"\n"}{end}' |
		awk -v p="^dw-$1$2-[0-9]+\$" '$1 ~ p && $2 == "studio" && $3 == 1 { n++ } END { printf "%d\n", n }'
}
tenant_objects() { # prefix N
	{
		kubectl get namespaces -o custom-columns=NS:.metadata.name,K:.kind,N:.metadata.name --no-headers
		kubectl get resourcequotas,limitranges,networkpolicies,rolebindings,configmaps,services,statefulsets -A \
			-o custom-columns=NS:.metadata.namespace,K:.kind,N:.metadata.name --no-headers
		kubectl get clusterroles,clusterrolebindings -o custom-columns=NS:.metadata.name,K:.kind,N:.metadata.name --no-headers |
			sed -E 's/^dataworkspace-workspace-(.*)-(admin|member) /dw-\1 /'
	} | awk -v p="^dw-$1$2-[0-9]+\$" '
		$1 !~ p { next }
		$2 == "ConfigMap" && $3 != "workspace-variables" { next }
		$2 == "RoleBinding" && $3 !~ /^dataworkspace-(admin|developer|viewer)$/ { next }
		{ n++ } END { printf "%d\n", n }'
}
reported_ready() { # prefix N
	if [[ "$1" == k ]]; then
		kubectl get tenants -o jsonpath='{range .items[*]}{.metadata.name} {.status.state} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
			awk -v p="^$1$2-[0-9]+\$" '$1 ~ p && $2 == "ACTIVE" && $3 == "True" { n++ } END { printf "%d\n", n }'
	else
		kubectl get workspaces -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
			awk -v p="^$1$2-[0-9]+\$" '$1 ~ p && $2 == "True" { n++ } END { printf "%d\n", n }'
	fi
}
tenant_namespaces() { kubectl get namespaces -o name | grep -c "^namespace/dw-$1$2-[0-9]*\$" || true; }

start_controller() { # kro|ours
	if [[ "$1" == kro ]]; then
		KUBECONFIG="${WORK}/kro.kubeconfig" "${TOOLS}/kro" --metrics-bind-address "${KRO_METRICS}" \
			--health-probe-bind-address "${KRO_PROBE}" --zap-log-level info --zap-devel=false >>"${WORK}/kro.log" 2>&1 &
		controller=$!
		probe="http://${KRO_PROBE}/readyz"
	else
		# shellcheck disable=SC2086 # flags, split on purpose
		KUBECONFIG="${WORK}/operator.kubeconfig" target/release/dataworkspace-operator run --listen-address "${LISTEN}" \
			--team-group-prefix team: ${OPERATOR_ARGS} >>"${WORK}/operator.log" 2>&1 &
		controller=$!
		probe="http://${LISTEN}/readyz"
	fi
	until curl -sf "${probe}" >/dev/null; do
		kill -0 "${controller}" 2>/dev/null || { log "ERROR: ${1} exited; see ${WORK}/${1/ours/operator}.log"; exit 1; }
		sleep 0.2
	done
}
stop_controller() {
	kill -TERM "${controller}"
	wait "${controller}" || true
	controller=""
}

# Waits until WHO has sent no write for SETTLE seconds (at most $2 seconds), scanning the audit log
# from byte offset $3 on; prints the offset where it stopped.
settle() { # who max offset
	local deadline=$((SECONDS + $2)) quiet_since=${SECONDS} from="$3" to
	while [[ $((SECONDS - quiet_since)) -lt ${SETTLE} && ${SECONDS} -lt ${deadline} ]]; do
		sleep 1
		to="$(audit_offset)"
		if [[ "$(requests "$1" "${from}" "${to}" | awk -v v="^(${WRITES})\$" '$1 ~ v { n++ } END { print n + 0 }')" -gt 0 ]]; then
			quiet_since=${SECONDS}
		fi
		from="${to}"
	done
	echo "${from}"
}

# run KIND N: one measured run; leaves its figures in ${WORK}/<kind>-<N>.env and the requests in
# ${WORK}/<kind>-<N>-{window,idle}.txt.
run() {
	local kind="$1" n="$2" who prefix input t0 t_objects="" t_reported="" converged="" deadline
	local off_boot off_start off_end off_idle cpu0 cpu1 cpu2 studios=0 objects=0 reported=0
	if [[ "${kind}" == kro ]]; then who="${KRO_USER}" prefix=k; else who="${OPERATOR_USER}" prefix=w; fi
	input="${WORK}/input-${kind}-${n}.yaml"
	if [[ "${kind}" == kro ]]; then tenants "${prefix}" "${n}" >"${input}"; else workspaces "${prefix}" "${n}" >"${input}"; fi
	persistent_volumes "pv-${prefix}${n}" "${n}" | kubectl create -f - >/dev/null
	log "${kind}, N=${n}: starting the controller"
	off_boot="$(audit_offset)"
	start_controller "${kind}"
	if [[ "${kind}" == kro ]]; then
		kubectl apply -f hack/bench-peer/tenant-rgd.yaml >/dev/null
		kubectl wait --for=condition=Ready --timeout=120s resourcegraphdefinition/tenant.bench.dataworkspace.io >/dev/null
		kubectl wait --for=condition=Established --timeout=60s crd/tenants.kro.run >/dev/null
	fi
	# Whatever it does at start (initial lists, watches) is over before the window opens.
	sleep 5
	off_start="$(audit_offset)" cpu0="$(cpu_seconds)"
	log "${kind}, N=${n}: applying ${n} tenants"
	t0="$(now)"
	kubectl apply -f "${input}" >/dev/null
	deadline=$((SECONDS + TIMEOUT))
	while [[ ${SECONDS} -lt ${deadline} ]]; do
		if [[ -z "${t_objects}" ]]; then
			studios="$(ready_studios "${prefix}" "${n}")"
			if [[ ${studios} -ge ${n} ]]; then
				objects="$(tenant_objects "${prefix}" "${n}")"
				[[ ${objects} -lt $((PER_TENANT * n)) ]] || t_objects="$(now)"
			fi
		fi
		if [[ -z "${t_reported}" ]]; then
			reported="$(reported_ready "${prefix}" "${n}")"
			[[ ${reported} -lt ${n} ]] || t_reported="$(now)"
		fi
		[[ -z "${t_objects}" || -z "${t_reported}" ]] || { converged=1; break; }
		sleep 1
	done
	if [[ -z "${converged}" ]]; then
		log "WARNING: ${kind}, N=${n}: not converged after ${TIMEOUT}s; figures as they are"
		studios="$(ready_studios "${prefix}" "${n}")" objects="$(tenant_objects "${prefix}" "${n}")" reported="$(reported_ready "${prefix}" "${n}")"
		off_end="$(audit_offset)"
	else
		off_end="$(settle "${who}" 120 "$(audit_offset)")"
	fi
	local t_end
	t_end="$(now)" cpu1="$(cpu_seconds)"
	requests "${who}" "${off_start}" "${off_end}" >"${WORK}/${kind}-${n}-window.txt"
	requests "${who}" "${off_boot}" "${off_start}" >"${WORK}/${kind}-${n}-startup.txt"
	log "${kind}, N=${n}: quiet period of ${IDLE}s"
	sleep "${IDLE}"
	off_idle="$(audit_offset)" cpu2="$(cpu_seconds)"
	requests "${who}" "${off_end}" "${off_idle}" >"${WORK}/${kind}-${n}-idle.txt"
	local w="${WORK}/${kind}-${n}-window.txt"
	{
		echo "converged=${converged:-0}"
		echo "objects_time=$([[ -n "${t_objects}" ]] && secs "${t0}" "${t_objects}" || echo "")"
		echo "reported_time=$([[ -n "${t_reported}" ]] && secs "${t0}" "${t_reported}" || echo "")"
		echo "window_time=$(secs "${t0}" "${t_end}")"
		echo "studios=${studios}"
		echo "objects=${objects}"
		echo "reported=${reported}"
		echo "writes=$(count "${w}" "${WRITES}")"
		echo "reads=$(count "${w}" "${READS}")"
		echo "gets=$(count "${w}" get)"
		echo "lists=$(count "${w}" list)"
		echo "watches=$(count "${w}" watch)"
		echo "creates=$(count "${w}" create)"
		echo "updates=$(count "${w}" update)"
		echo "patches=$(count "${w}" patch)"
		echo "deletes=$(count "${w}" 'delete|deletecollection')"
		echo "failed=$(failed_writes "${w}")"
		echo "idle=$(wc -l <"${WORK}/${kind}-${n}-idle.txt")"
		echo "idle_writes=$(count "${WORK}/${kind}-${n}-idle.txt" "${WRITES}")"
		echo "idle_verbs=$(by_verb "${WORK}/${kind}-${n}-idle.txt")"
		echo "startup=$(wc -l <"${WORK}/${kind}-${n}-startup.txt")"
		echo "startup_verbs=$(by_verb "${WORK}/${kind}-${n}-startup.txt")"
		echo "hwm=$(kib VmHWM)"
		echo "rss=$(kib VmRSS)"
		echo "cpu_window=$(awk -v a="${cpu0}" -v b="${cpu1}" 'BEGIN { printf "%.1f", b - a }')"
		echo "cpu_idle=$(awk -v a="${cpu1}" -v b="${cpu2}" 'BEGIN { printf "%.2f", b - a }')"
		echo "cpu_total=${cpu2}"
	} >"${WORK}/${kind}-${n}.env"
	log "${kind}, N=${n}: $(tr '\n' ' ' <"${WORK}/${kind}-${n}.env")"
	log "${kind}, N=${n}: deleting the tenants"
	kubectl delete -f "${input}" --wait=false >/dev/null 2>&1 || true
	deadline=$((SECONDS + 900))
	until [[ "$(tenant_namespaces "${prefix}" "${n}")" -eq 0 ]]; do
		[[ ${SECONDS} -lt ${deadline} ]] || { log "ERROR: the tenants of ${kind}, N=${n} were not deleted in 900 s"; exit 1; }
		sleep 2
	done
	if [[ "${kind}" == kro ]]; then
		kubectl wait --for=delete --timeout=300s tenants --all >/dev/null 2>&1 || true
	else
		kubectl wait --for=delete --timeout=300s workspaces --all >/dev/null 2>&1 || true
	fi
	stop_controller
}

# --- Report -----------------------------------------------------------------------------------------
# ratio A B: A / B with two significant digits at least (reads differ by orders of magnitude).
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b == 0) { print "n/a"; exit }
		r = a / b
		if (r == 0 || r >= 0.1) printf "%.2f", r; else if (r >= 0.001) printf "%.4f", r; else printf "%.2g", r
	}'
}
# value FILE KEY: one figure of a run.
value() { sed -n "s/^$2=//p" "$1"; }
report() { # N
	local n="$1" k="${WORK}/kro-$1.env" o="${WORK}/ours-$1.env" min=$((16 * $1)) f label
	printf '\n### N = %s tenants\n\n' "${n}"
	printf '| Figure | kro | ours | ours / kro |\n|---|---|---|---|\n'
	row() { # label kro ours [ratio]
		printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "${4-$(ratio "$3" "$2")}"
	}
	both() { echo "$(value "${k}" "$1")" "$(value "${o}" "$1")"; }
	read -r a b <<<"$(both converged)"
	row "Converged within ${TIMEOUT} s" "$([[ ${a} == 1 ]] && echo yes || echo NO)" "$([[ ${b} == 1 ]] && echo yes || echo NO)" ""
	while IFS='|' read -r f label; do
		read -r a b <<<"$(both "${f}")"
		row "${label}" "${a:-—}" "${b:-—}"
	done <<EOF
objects_time|Time until every tenant's objects exist and its Studio is ready (s)
reported_time|Time until the controller reports every tenant ready (s)
writes|Writes (create, update, patch, delete)
reads|Reads (get, list, watch)
gets|… GET
lists|… LIST
watches|… WATCH
creates|… of the writes: create
updates|… update
patches|… patch
deletes|… delete
failed|Writes refused or failed (non-2xx)
idle|Requests in the ${IDLE} s quiet period
cpu_window|CPU seconds, apply to quiet
cpu_idle|CPU seconds in the quiet period
EOF
	read -r a b <<<"$(both writes)"
	row "Writes / minimum (${min} = 16 per tenant)" "$(ratio "${a}" "${min}")" "$(ratio "${b}" "${min}")"
	read -r a b <<<"$(both hwm)"
	row "Peak RSS (VmHWM, MiB)" "$(mib "${a}")" "$(mib "${b}")" "$(ratio "${b}" "${a}")"
	row "Requests at start-up, before the window (by verb)" "$(value "${k}" startup_verbs)" "$(value "${o}" startup_verbs)" ""
	row "Idle requests by verb" "$(value "${k}" idle_verbs)" "$(value "${o}" idle_verbs)" ""
	printf '\nWrites by resource and verb (apply to quiet):\n\n| Resource | Verb | kro | ours |\n|---|---|---|---|\n'
	{
		awk -v v="^(${WRITES})\$" '$1 ~ v { print "kro", $2, $1 }' "${WORK}/kro-${n}-window.txt"
		awk -v v="^(${WRITES})\$" '$1 ~ v { print "ours", $2, $1 }' "${WORK}/ours-${n}-window.txt"
	} | awk '{ k = $2 " " $3; if ($1 == "kro") a[k]++; else b[k]++; keys[k] = 1 }
		END { for (k in keys) { split(k, p, " "); printf "| %s | %s | %d | %d |\n", p[1], p[2], a[k], b[k] } }' | sort
	printf '\nReads by resource and verb (apply to quiet):\n\n| Resource | Verb | kro | ours |\n|---|---|---|---|\n'
	{
		awk -v v="^(${READS})\$" '$1 ~ v { print "kro", $2, $1 }' "${WORK}/kro-${n}-window.txt"
		awk -v v="^(${READS})\$" '$1 ~ v { print "ours", $2, $1 }' "${WORK}/ours-${n}-window.txt"
	} | awk '{ k = $2 " " $3; if ($1 == "kro") a[k]++; else b[k]++; keys[k] = 1 }
		END { for (k in keys) { split(k, p, " "); printf "| %s | %s | %d | %d |\n", p[1], p[2], a[k], b[k] } }' | sort
}

if [[ -n "${REPORT_ONLY:-}" ]]; then
	for n in "${SIZES[@]}"; do report "${n}"; done
	exit 0
fi
for n in "${SIZES[@]}"; do
	run kro "${n}"
	run ours "${n}"
	report "${n}" >"${WORK}/report-${n}.md"
	cat "${WORK}/report-${n}.md"
done

source hack/versions.env
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] || commit="${commit} with uncommitted changes to src/"
{
	printf '\n## hack/bench-peer.sh %s — %s\n\n' "${SIZES[*]}" "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'Operator %s (release build, %s; flags: %s), kro %s, Kubernetes %s, etcd %s, kwok %s (%s nodes).\n' \
		"${commit}" "$(rustc --version | cut -d' ' -f1-2)" "${OPERATOR_ARGS:-the defaults}" "${KRO_VERSION}" "${K8S_VERSION}" "${ETCD_VERSION}" "${KWOK_VERSION}" "${DWO_CLUSTER_NODES}"
	printf 'Machine: %s cores (%s), %s memory, shared with other work (load average at the end: %s). One run.\n' \
		"$(nproc)" "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
		"$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)" "$(cut -d' ' -f1-3 /proc/loadavg)"
	for n in "${SIZES[@]}"; do cat "${WORK}/report-${n}.md"; done
} >"${WORK}/results.md"
if [[ "${RESULTS}" != - ]]; then
	mkdir -p "$(dirname "${RESULTS}")"
	# shellcheck disable=SC2016 # backquotes are markdown
	[[ -f "${RESULTS}" ]] || printf '# Peer benchmark: the operator against kro\n\nMeasured with `hack/bench-peer.sh` (method and the minimum-writes rule are described at its top). Figures are what one run measured on a shared machine; they are not asserted anywhere.\n' >"${RESULTS}"
	cat "${WORK}/results.md" >>"${RESULTS}"
	log "results appended to ${RESULTS}"
fi
