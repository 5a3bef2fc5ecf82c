#!/usr/bin/env bash
# Prepares a Python virtualenv with a locked set of packages from PyPI and prints its path.
#
# Usage: hack/python-env.sh <name> <requirements file>
#
# The venv lives outside the work tree, one directory per requirements file and interpreter:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/dataworkspace-operator/python/<name>-<hash>
# where <hash> covers the requirements file's content and the python3 version, so changing a pin
# (or the interpreter) makes a new venv and an unchanged one is reused. It is made with the
# machine's python3 (`python3 -m venv`; on Debian, the python3-venv package is installed when venv
# is missing and we are root) and filled with `pip install --require-hashes`: the requirements
# file must be a complete lock with hashes (hack/python/*.txt, made with pip-compile
# --generate-hashes). A marker written after a successful install makes the next call return at
# once; a venv without it (an install that was interrupted or failed) is removed and made again.
# Concurrent calls wait for each other on a lock file.
#
# Logs go to stderr; the venv path is the only line on stdout.
set -euo pipefail

log() { printf '[python-env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: $0 <name> <requirements file>"
name="$1"
requirements="$2"
[[ "${name}" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "name must be lowercase letters, digits and '-': ${name}"
[[ -f "${requirements}" ]] || die "no such requirements file: ${requirements}"
grep -q -- '--hash=sha256:' "${requirements}" \
	|| die "${requirements} has no hashes; make it with pip-compile --generate-hashes"

command -v python3 >/dev/null || die "python3 is not on PATH"
python_version="$(python3 -c 'import sys; print(sys.implementation.name, ".".join(map(str, sys.version_info[:3])))')" \
	|| die "python3 does not run"

# Bump when the install commands below change in a way that must invalidate existing venvs.
RECIPE=1
hash="$(
	{
		echo "recipe ${RECIPE}"
		echo "python ${python_version}"
		cat "${requirements}"
	} | sha256sum | cut -c1-16
)"
root="${XDG_CACHE_HOME:-${HOME}/.cache}/dataworkspace-operator/python"
venv="${root}/${name}-${hash}"
marker="${venv}/.dataworkspace-complete"
mkdir -p "${root}"

ready() { [[ -f "${marker}" ]] && "${venv}/bin/python" -c '' 2>/dev/null; }

# Fast path: nothing to wait for when the venv is complete.
if ready; then
	echo "${venv}"
	exit 0
fi

exec 9>"${venv}.lock"
flock 9
if ready; then # made by a concurrent call while we waited
	echo "${venv}"
	exit 0
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		log "python3 has no venv module; installing python3-venv"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 \
			|| { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2; }
	else
		die "python3 has no venv module: install python3-venv (Debian/Ubuntu) or a python3 with venv"
	fi
fi

started=$(date +%s)
if [[ -e "${venv}" ]]; then
	log "removing the incomplete venv ${venv}"
	rm -rf "${venv}"
fi
log "creating ${venv} (${python_version}) from ${requirements}"
python3 -m venv "${venv}" >&2
"${venv}/bin/python" -m pip install --require-hashes --no-input --disable-pip-version-check \
	--progress-bar off -q -r "${requirements}" >&2
printf '%s\n' "${hash}" >"${marker}"
log "ready in $(($(date +%s) - started))s"
echo "${venv}"
