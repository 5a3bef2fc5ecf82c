#!/usr/bin/env bash
# Makes sure a PostgreSQL server from the distribution's packages is on this machine and prints the
# directory of its server binaries (the one holding initdb, pg_ctl and postgres).
#
# Usage: hack/postgres.sh
#
# The directory is, in this order: $POSTGRES_BINDIR when set (it must hold the three binaries);
# the newest /usr/lib/postgresql/<major>/bin (Debian/Ubuntu's layout); the directory of the initdb on
# PATH, symlinks resolved. When none has them and we are root on Debian/Ubuntu, the `postgresql`
# package is installed with apt-get (noninteractive, no recommends). The install creates no cluster
# and starts no server: `create_main_cluster = false` is set in
# /etc/postgresql-common/createcluster.conf before the server package goes in (as the official
# postgres images do), so Debian's postgresql service has no cluster to start, and on a systemd host
# that service is disabled again. Callers run their own server (initdb and pg_ctl on a temporary
# directory, as a non-root user: PostgreSQL refuses to run as root).
#
# Logs go to stderr; the directory is the only line on stdout.
set -euo pipefail

log() { printf '[postgres %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 0 ]] || die "usage: $0"

has_server() { [[ -x "$1/initdb" && -x "$1/pg_ctl" && -x "$1/postgres" ]]; }

# Prints the directory of the distribution's server binaries, or returns 1 when there is none.
find_bindir() {
	local dir
	# Newest major version first.
	while read -r dir; do
		if has_server "${dir}"; then
			echo "${dir}"
			return 0
		fi
	done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -t/ -k5,5 -V -r)
	if command -v initdb >/dev/null; then
		dir="$(dirname "$(readlink -f "$(command -v initdb)")")"
		if has_server "${dir}"; then
			echo "${dir}"
			return 0
		fi
	fi
	return 1
}

apt_install() {
	local apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "$@")
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 \
		|| { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; }
}

install_server() {
	[[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null \
		|| die "no PostgreSQL server (initdb, pg_ctl, postgres) found: install the distribution's postgresql package (Debian/Ubuntu: apt-get install postgresql), or set POSTGRES_BINDIR to the directory of its server binaries"
	log "no PostgreSQL server found; installing the postgresql package"
	# postgresql-common first: it writes createcluster.conf, which decides whether the server
	# package's postinst makes (and the service then starts) a `main` cluster.
	if ! dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q 'ok installed'; then
		apt_install postgresql-common || die "apt-get install postgresql-common failed"
	fi
	local conf=/etc/postgresql-common/createcluster.conf
	[[ -f "${conf}" ]] || die "postgresql-common installed no ${conf}"
	if grep -Eq '^[[:space:]]*#?[[:space:]]*create_main_cluster[[:space:]]*=' "${conf}"; then
		sed -Ei 's/^[[:space:]]*#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "${conf}"
	else
		echo 'create_main_cluster = false' >>"${conf}"
	fi
	log "set create_main_cluster = false in ${conf}"
	apt_install postgresql || die "apt-get install postgresql failed"
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
		systemctl disable postgresql.service >&2 || log "could not disable postgresql.service"
	fi
}

if [[ -n "${POSTGRES_BINDIR:-}" ]]; then
	has_server "${POSTGRES_BINDIR}" \
		|| die "POSTGRES_BINDIR=${POSTGRES_BINDIR} does not hold initdb, pg_ctl and postgres"
	bindir="${POSTGRES_BINDIR}"
elif ! bindir="$(find_bindir)"; then
	install_server
	bindir="$(find_bindir)" || die "the postgresql package is installed but no server binaries were found"
fi
version="$("${bindir}/postgres" --version)" || die "${bindir}/postgres does not run"
log "${version} in ${bindir}"
echo "${bindir}"
