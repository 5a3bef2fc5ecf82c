#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium for the console's browser test, installing
# the distribution's package when it is missing (CI runs as root; elsewhere through sudo).
# Logs go to stderr; the path is the last line on stdout.
set -euo pipefail

for candidate in "${DWO_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
	if [[ -n "${candidate}" && -x "${candidate}" ]]; then
		echo "${candidate}"
		exit 0
	fi
done

sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
echo "[chromium] installing the distribution's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq chromium >&2
command -v chromium
