#!/usr/bin/env bash
# Makes sure a Java runtime (17 or later, what Spark 4 needs) is on PATH for the Spark process
# tests: the machine's, or, on Debian as root, the distribution's default-jre-headless.
set -euo pipefail

log() { printf '[java %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

major() { java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p'; }

if command -v java >/dev/null && [[ "$(major)" -ge 17 ]]; then
	exit 0
fi
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
	log "installing default-jre-headless from the distribution's packages"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jre-headless >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q default-jre-headless >&2; }
fi
command -v java >/dev/null && [[ "$(major)" -ge 17 ]] ||
	{ log "ERROR: the Spark process tests need java 17 or later on PATH (Debian: apt-get install default-jre-headless)"; exit 1; }
