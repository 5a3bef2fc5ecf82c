#!/usr/bin/env bash
# Prints every valid Airflow configuration option of the locked Airflow as `section.key`, one a line,
# sorted, after comment lines (`# ...`) naming the command and the package versions it read.
#
# Usage: hack/airflow-options.sh [<venv>]
#
# <venv> is a virtualenv with Airflow installed; by default the one of hack/python/airflow.txt,
# made (or reused) with hack/python-env.sh. The list is the union of
#   - the options of apache-airflow-core's airflow/config_templates/config.yml, and
#   - the options every installed provider declares in get_provider_info()["config"], the providers
#     being the `apache_airflow_provider` entry points.
# Both are read as files: Airflow itself is not imported, so no airflow.cfg (nor logs directory) is
# written anywhere. Deprecated aliases that Airflow still accepts (e.g. [webserver] secret_key for
# [api] secret_key) are not in the list: only the current names are.
#
# src/runtime/airflow/options.txt is made with:
#   hack/airflow-options.sh >src/runtime/airflow/options.txt
#
# Logs go to stderr; the list is the only output on stdout.
set -euo pipefail

log() { printf '[airflow-options %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -le 1 ]] || die "usage: $0 [<venv>]"
if [[ $# -eq 1 ]]; then
	venv="$1"
else
	venv="$(bash "${here}/python-env.sh" airflow "${here}/python/airflow.txt")" \
		|| die "could not make the Airflow venv"
fi
[[ -x "${venv}/bin/python" ]] || die "no python in ${venv}"

"${venv}/bin/python" - <<'PY' || die "could not read the options from ${venv}"
import importlib.metadata as md
import importlib.util
import sys

import yaml


def fail(msg):
    sys.exit(f"airflow-options: {msg}")


options = set()

core = md.distribution("apache-airflow-core")
config_yml = core.locate_file("airflow/config_templates/config.yml")
with open(config_yml, encoding="utf-8") as f:
    core_sections = yaml.safe_load(f)
for section, body in core_sections.items():
    for key in (body or {}).get("options") or {}:
        if "." in key:
            fail(f"option name with a dot: [{section}] {key}")
        options.add(f"{section}.{key}".lower())
core_count = len(options)
if core_count == 0:
    fail(f"no options in {config_yml}")

providers = []
for ep in md.entry_points(group="apache_airflow_provider"):
    # ep.value is "airflow.providers.<name>.get_provider_info:get_provider_info". Load that file on its
    # own, under a private module name, so that neither airflow nor the provider package is imported.
    module, _, attr = ep.value.partition(":")
    path = ep.dist.locate_file(module.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(f"_provider_info_{len(providers)}", path)
    if spec is None or spec.loader is None:
        fail(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    info = getattr(mod, attr or "get_provider_info")()
    declared = set()
    for section, body in (info.get("config") or {}).items():
        for key in (body or {}).get("options") or {}:
            if "." in key:
                fail(f"option name with a dot: [{section}] {key} in {path}")
            declared.add(f"{section}.{key}".lower())
    options |= declared
    providers.append((ep.dist.metadata["Name"], ep.dist.version, len(declared)))

if "airflow" in sys.modules:
    fail("airflow was imported, which may have written an airflow.cfg")

print("# Every valid Airflow configuration option, as section.key; generated, do not edit. Made with:")
print("#   hack/airflow-options.sh >src/runtime/airflow/options.txt")
print("# A section name may hold a dot (common.io): the key is what follows the last dot.")
print(f"# apache-airflow-core {core.version}: {core_count} options in airflow/config_templates/config.yml")
for name, version, count in sorted(providers):
    print(f"# {name} {version}: {count} options")
for option in sorted(options):
    print(option)
PY
