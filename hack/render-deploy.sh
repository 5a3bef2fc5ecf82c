#!/usr/bin/env bash
# Renders the chart with its default values into deploy/: the plain manifests for
# `kubectl apply --server-side -k deploy/` and GitOps tools (Argo CD, Flux). One file per part, so
# a part can be applied alone (the roles, the admission policies). The chart tests check that
# deploy/ is exactly this rendering; run `make deploy` after changing the chart or the CRDs.
#
# Usage: hack/render-deploy.sh [output-dir]   (default: deploy)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-deploy}"
helm="${HELM:-$(hack/build-tools.sh --print-bin-dir)/helm}"
chart=charts/dataworkspace-operator
release=dataworkspace-operator
namespace=dataworkspace-system

mkdir -p "${chart}/files/crds" "${out}"
# The chart carries the CRDs it installs; they are the operator's `crd` output (crds/).
rm -f "${chart}"/files/crds/*.yaml
cp crds/*.yaml "${chart}/files/crds/"

header="# Generated from ${chart} by hack/render-deploy.sh (make deploy); do not edit."
# For Kubernetes 1.36 and newer, which serve MutatingAdmissionPolicy v1 (the PythonEnvironment
# requester policy); Helm on an older cluster leaves that policy out.
api_versions=(--api-versions admissionregistration.k8s.io/v1/MutatingAdmissionPolicy)
render() {
	local file="$1"
	shift
	{
		echo "${header}"
		"${helm}" template "${release}" "${chart}" --namespace "${namespace}" "${api_versions[@]}" "$@"
	} >"${out}/${file}"
}
render crds.yaml --show-only templates/crds.yaml
render roles.yaml --show-only templates/workspace-roles.yaml
render admission.yaml --show-only templates/admission.yaml
render flowcontrol.yaml --show-only templates/flowcontrol.yaml
render operator.yaml --show-only templates/serviceaccount.yaml --show-only templates/operator-rbac.yaml \
	--show-only templates/deployment.yaml --show-only templates/service.yaml --show-only templates/pdb.yaml

cat >"${out}/namespace.yaml" <<NS
${header}
apiVersion: v1
kind: Namespace
metadata:
  name: ${namespace}
  labels:
    app.kubernetes.io/name: dataworkspace-operator
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
NS
cat >"${out}/kustomization.yaml" <<KS
${header}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - namespace.yaml
  - crds.yaml
  - roles.yaml
  - admission.yaml
  - flowcontrol.yaml
  - operator.yaml
KS
