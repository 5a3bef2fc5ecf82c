#!/usr/bin/env bash
# Builds the pinned control-plane tools for the local e2e cluster from upstream Go modules:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes via the
# wrapper module hack/tools/k8s), etcd, etcdctl, etcdutl (wrapper hack/tools/etcd), kwok, kwokctl
# (sigs.k8s.io/kwok), helm (helm.sh/helm/v3), and for the access-layer process tests
# oauth2-proxy and a mock OpenID Connect provider (wrapper hack/tools/mockoidc), and for the
# Python environment process test crane (go-containerregistry), and for the peer benchmark
# kro's controller with its CRDs (github.com/kubernetes-sigs/kro). Pins come from
# hack/versions.env. The access component also carries the Gateway API's HTTPRoute CRD.
#
# Binaries go to a cache outside the work tree, one directory per set of pins:
#   ${DWO_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataworkspace-operator/tools}/<versions-key>/bin
# Each component is rebuilt only when its fingerprint (pins, wrapper go.mod/go.sum, build flags)
# changes, so a warm run takes seconds. Logs go to stderr; the bin dir is the last line on stdout.
#
# Usage: hack/build-tools.sh [--print-bin-dir] [--force] [k8s|etcd|kwok|helm|access|images|kro ...]
set -euo pipefail

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/versions.env
source "${HACK_DIR}/versions.env"

# Bump when the build commands below change in a way that must invalidate built binaries.
BUILD_RECIPE=1

TOOLS_ROOT="${DWO_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/dataworkspace-operator/tools}"
VERSIONS_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
KEY_DIR="${TOOLS_ROOT}/${VERSIONS_KEY}"
BIN_DIR="${KEY_DIR}/bin"
STAMP_DIR="${KEY_DIR}/stamps"

log() { printf '[build-tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

force=0
components=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--print-bin-dir) echo "${BIN_DIR}"; exit 0 ;;
	--force) force=1 ;;
	-h | --help) usage; exit 0 ;;
	k8s | etcd | kwok | helm | access | images | kro) components+=("$1") ;;
	*) usage; die "unknown argument: $1" ;;
	esac
	shift
done
[[ ${#components[@]} -gt 0 ]] || components=(k8s etcd kwok helm access images)

command -v go >/dev/null || die "go is not on PATH (a Go toolchain >= 1.26 is needed)"

# Hermetic, reproducible Go settings: never switch toolchains, ignore any go.work, static binaries.
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
unset GOOS GOARCH

K8S_MINOR="${K8S_VERSION#v1.}"
K8S_MINOR="${K8S_MINOR%%.*}"
K8S_TAGS="selinux,notest,grpcnotrace"
GO_ID="$(go env GOVERSION GOOS GOARCH | tr '\n' ' ')"

# Fingerprint of a component: pins, Go version, its build function (flags), and the files that
# decide its dependency graph.
fingerprint() {
	local component="$1"
	{
		echo "recipe=${BUILD_RECIPE} ${GO_ID}"
		declare -f "build_${component}"
		case "${component}" in
		k8s) echo "${K8S_VERSION} ${K8S_TAGS}"; cat "${HACK_DIR}/tools/k8s/go.mod" "${HACK_DIR}/tools/k8s/go.sum" ;;
		etcd) echo "${ETCD_VERSION}"; cat "${HACK_DIR}/tools/etcd/go.mod" "${HACK_DIR}/tools/etcd/go.sum" ;;
		kwok) echo "${KWOK_VERSION}" ;;
		helm) echo "${HELM_VERSION}" ;;
		access) echo "${OAUTH2_PROXY_VERSION} ${MOCKOIDC_VERSION} ${GATEWAY_API_VERSION}"; cat "${HACK_DIR}/tools/mockoidc/go.mod" "${HACK_DIR}/tools/mockoidc/go.sum" "${HACK_DIR}/tools/mockoidc/main.go" ;;
		images) echo "${CRANE_VERSION}" ;;
		kro) echo "${KRO_VERSION}" ;;
		esac
	} | sha256sum | cut -c1-16
}

binaries_of() {
	case "$1" in
	k8s) echo kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
	etcd) echo etcd etcdctl etcdutl ;;
	kwok) echo kwok kwokctl ;;
	helm) echo helm ;;
	access) echo oauth2-proxy mockoidc gateway-api-httproutes.yaml ;;
	images) echo crane ;;
	kro) echo kro kro-crds.yaml ;;
	esac
}

is_current() {
	local component="$1" b
	[[ -f "${STAMP_DIR}/${component}" ]] || return 1
	[[ "$(cat "${STAMP_DIR}/${component}")" == "$(fingerprint "${component}")" ]] || return 1
	for b in $(binaries_of "${component}"); do
		[[ -e "${BIN_DIR}/${b}" ]] || return 1
	done
}

# Moves the freshly built binaries of a component from the staging dir into BIN_DIR, checks
# their version output, and writes the stamp.
install_built() {
	local component="$1" staging="$2" b
	for b in $(binaries_of "${component}"); do
		[[ -e "${staging}/${b}" ]] || die "${component}: ${b} was not built"
		mv -f "${staging}/${b}" "${BIN_DIR}/${b}"
	done
	fingerprint "${component}" >"${STAMP_DIR}/${component}"
}

expect_output() {
	local want="$1" out
	shift
	out="$("$@" 2>&1)" || die "'$*' failed: ${out}"
	[[ "${out}" == *"${want}"* ]] || die "'$*' printed '${out}', expected it to contain '${want}'"
}

check_wrapper() {
	local dir="${HACK_DIR}/tools/$1" want="$2"
	[[ -f "${dir}/go.mod" && -f "${dir}/go.sum" ]] || die "${dir}/go.mod or go.sum missing"
	grep -qE "^[[:space:]]*${want//./\\.}( |$)" "${dir}/go.mod" ||
		die "${dir}/go.mod does not pin '${want}' (hack/versions.env changed?); run hack/update-tool-modules.sh"
}

build_k8s() {
	local staging="$1" build_date ldflags="-s -w" p
	check_wrapper k8s "k8s.io/kubernetes ${K8S_VERSION}"
	cd "${HACK_DIR}/tools/k8s"
	# Stamp the release time of the tag (reproducible) rather than the build time.
	build_date="$(go list -mod=readonly -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X ${p}.gitVersion=${K8S_VERSION} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${K8S_MINOR}"
		ldflags+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=${build_date}"
	done
	go build -mod=readonly -tags="${K8S_TAGS}" -ldflags="${ldflags}" -o "${staging}/" \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubectl
	expect_output "Kubernetes ${K8S_VERSION}" "${staging}/kube-apiserver" --version
	expect_output "Kubernetes ${K8S_VERSION}" "${staging}/kube-controller-manager" --version
	expect_output "Kubernetes ${K8S_VERSION}" "${staging}/kube-scheduler" --version
	expect_output "Client Version: ${K8S_VERSION}" "${staging}/kubectl" version --client
}

build_etcd() {
	local staging="$1" ldflags="-s -w" m
	check_wrapper etcd "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
	cd "${HACK_DIR}/tools/etcd"
	# Explicit -o names: with -o <dir>/ the server binary would be named after the module ("v3").
	for m in server:etcd etcdctl:etcdctl etcdutl:etcdutl; do
		go build -mod=readonly -ldflags="${ldflags}" -o "${staging}/${m#*:}" "go.etcd.io/etcd/${m%%:*}/v3"
	done
	expect_output "etcd Version: ${ETCD_VERSION#v}" "${staging}/etcd" --version
	expect_output "etcdctl version: ${ETCD_VERSION#v}" "${staging}/etcdctl" version
	expect_output "etcdutl version: ${ETCD_VERSION#v}" "${staging}/etcdutl" version
}

build_kwok() {
	local staging="$1"
	# sigs.k8s.io/kwok has no replace directives: go install pkg@version works and uses its go.sum.
	GOBIN="${staging}" go install -ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
		"sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"
	expect_output "${KWOK_VERSION#v}" "${staging}/kwok" --version
	expect_output "${KWOK_VERSION#v}" "${staging}/kwokctl" --version
}

build_helm() {
	local staging="$1" gomod client_go major minor ldflags v="helm.sh/helm/v3/internal/version"
	# Same ldflags as helm's Makefile for a release tag; the default Kubernetes version of
	# `helm template`/`helm lint` follows the client-go version helm is built with.
	gomod="$(cd "${staging}" && go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
	client_go="$(sed -n -E 's#^[[:space:]]*k8s\.io/client-go (v[0-9.]+).*#\1#p' "${gomod}" | head -n1)"
	[[ -n "${client_go}" ]] || die "cannot read the k8s.io/client-go version from ${gomod}"
	client_go="${client_go#v}"
	major=$((${client_go%%.*} + 1))
	minor="${client_go#*.}"
	minor="${minor%%.*}"
	ldflags="-s -w -X ${v}.version=${HELM_VERSION} -X ${v}.metadata= -X ${v}.gitTreeState=clean"
	for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X ${p}.k8sVersionMajor=${major} -X ${p}.k8sVersionMinor=${minor}"
	done
	GOBIN="${staging}" go install -ldflags="${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
	expect_output "${HELM_VERSION}" "${staging}/helm" version --short
}

build_access() {
	local staging="$1"
	check_wrapper mockoidc "github.com/oauth2-proxy/mockoidc ${MOCKOIDC_VERSION}"
	# oauth2-proxy has no replace directives: go install pkg@version uses its own go.sum.
	GOBIN="${staging}" go install -ldflags="-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=${OAUTH2_PROXY_VERSION}" \
		"github.com/oauth2-proxy/oauth2-proxy/v7@${OAUTH2_PROXY_VERSION}"
	expect_output "${OAUTH2_PROXY_VERSION}" "${staging}/oauth2-proxy" --version
	(cd "${HACK_DIR}/tools/mockoidc" && go build -mod=readonly -ldflags="-s -w" -o "${staging}/mockoidc" .)
	# The HTTPRoute CustomResourceDefinition (standard channel), to check the routes the access
	# layer builds against the real schema on the e2e control plane.
	local dir
	dir="$(cd "${staging}" && go mod download -json "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	cp "${dir}/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" "${staging}/gateway-api-httproutes.yaml"
}

build_images() {
	local staging="$1"
	# go-containerregistry has no replace directives: go install pkg@version uses its go.sum.
	GOBIN="${staging}" go install -ldflags="-s -w" "github.com/google/go-containerregistry/cmd/crane@${CRANE_VERSION}"
	expect_output "${CRANE_VERSION}" "${staging}/crane" version
}

build_kro() {
	local staging="$1" dir
	# kro has no replace directives and its go line (1.26.0) is met by the pinned toolchain: go
	# install pkg@version uses its own go.sum. Its main package is cmd/controller; the version is
	# stamped as kro's Makefile does.
	GOBIN="${staging}" go install -ldflags="-s -w -X sigs.k8s.io/release-utils/version.gitVersion=${KRO_VERSION}" \
		"github.com/kubernetes-sigs/kro/cmd/controller@${KRO_VERSION}"
	mv "${staging}/controller" "${staging}/kro"
	expect_output "metrics-bind-address" "${staging}/kro" --help
	# Its CRDs (ResourceGraphDefinition, GraphRevision), as its chart installs them.
	dir="$(cd "${staging}" && go mod download -json "github.com/kubernetes-sigs/kro@${KRO_VERSION}" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
	[[ -n "${dir}" ]] || die "kro: cannot find the module directory of ${KRO_VERSION}"
	awk 'FNR == 1 && NR > 1 { print "---" } { print }' "${dir}"/helm/crds/*.yaml >"${staging}/kro-crds.yaml"
}

mkdir -p "${BIN_DIR}" "${STAMP_DIR}"

# One builder per versions key at a time (e.g. `make test` and `make sandbox` started together).
exec 9>"${KEY_DIR}/.lock"
if ! flock -n 9; then
	log "another build-tools.sh is building ${VERSIONS_KEY}; waiting for it"
	flock 9
fi

staging=""
component=""
on_exit() {
	local rc=$?
	[[ -z "${staging}" ]] || rm -rf "${staging}"
	if [[ ${rc} -ne 0 && -n "${component}" ]]; then
		log "ERROR: ${component}: build failed after $((SECONDS - start))s (see the output above)"
	fi
}
trap on_exit EXIT

total_start=${SECONDS}
built=0
for component in "${components[@]}"; do
	if [[ ${force} -eq 0 ]] && is_current "${component}"; then
		log "${component}: up to date ($(binaries_of "${component}"))"
		continue
	fi
	log "${component}: building $(binaries_of "${component}") ..."
	start=${SECONDS}
	staging="$(mktemp -d "${KEY_DIR}/build.XXXXXX")"
	# Subshell because the builders cd into the wrapper modules. It must not run as a condition
	# (if/||), or bash would ignore set -e inside it; a failure ends the script via on_exit.
	("build_${component}" "${staging}")
	install_built "${component}" "${staging}"
	rm -rf "${staging}"
	staging=""
	log "${component}: built in $((SECONDS - start))s"
	built=$((built + 1))
done
component=""
log "done in $((SECONDS - total_start))s (${built} component(s) built); tools in ${BIN_DIR}"
echo "${BIN_DIR}"
