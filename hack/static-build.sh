#!/usr/bin/env bash
# Builds the operator as one static Linux executable: the build the container image
# runs (Dockerfile), with the same flags, so it can be checked without a container engine.
# glibc's static C runtime (crt-static) needs no other target than the toolchain's own; the
# operator resolves no host names in a cluster (the API server is reached by the address
# Kubernetes injects), so static glibc's name-service limits do not apply.
#
# The web console (dataworkspace-console) is built the same way, beside it, for the same image.
#
# Usage: hack/static-build.sh [cargo profile]   (default: release); prints the operator's path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile="${1:-release}"
# The machine's own architecture (x86_64 or aarch64): the image is built per platform.
target="$(uname -m)-unknown-linux-gnu"
RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --locked --profile "${profile}" --target "${target}" --bin dataworkspace-operator --bin dataworkspace-console >&2
dir="${profile}"
[[ "${profile}" == dev ]] && dir=debug
echo "target/${target}/${dir}/dataworkspace-operator"
