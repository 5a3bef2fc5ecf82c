#!/usr/bin/env bash
# What can be checked of the container image without a container engine: its executable,
# built exactly as the Dockerfile builds it (hack/static-build.sh), is static (no program
# interpreter, no shared libraries) and runs: `crd` prints exactly the committed CRDs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
binary="$(hack/static-build.sh release)"
fail() { echo "check-image: $*" >&2; exit 1; }
if readelf --program-headers "${binary}" | grep -q 'INTERP'; then
	fail "${binary} asks for a program interpreter: it is not static"
fi
if readelf --dynamic "${binary}" | grep -q 'NEEDED'; then
	fail "${binary} needs shared libraries: $(readelf --dynamic "${binary}" | grep NEEDED)"
fi
expected="$(for f in crds/*.yaml; do echo '---'; cat "${f}"; done)"
[[ "$("${binary}" crd)" == "${expected}" ]] || fail "the static binary's 'crd' differs from crds/"
echo "check-image: ${binary} is static ($(du -h "${binary}" | cut -f1)) and prints the committed CRDs" >&2
