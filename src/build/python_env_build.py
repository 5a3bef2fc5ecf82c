"""Build script of a PythonEnvironment: a virtualenv filled by pip, and its lock.

It runs in the build Job's container (a python:3.x image, non-root, a read-only root file system
except the mounted volumes, HOME=/tmp) and uses the standard library of Python 3.9+ only.

Configuration comes only from a JSON file, never from the command line, so that nothing in a spec
can become an option of a command. Its path is in DWO_ENV_CONFIG (default
/config/environment.json):

    {"requirements": "<one PEP 508 specifier a line; blank lines and # comments allowed>",
     "indexUrl": null or "https://...",
     "extraIndexUrls": ["https://...", ...],
     "target": "/env/<spec-hash>"}

It is checked anyway: the target is an absolute, normalized path other than "/", without "..";
URLs start with https:// and have no whitespace; a requirement line does not start with "-" (pip
would read it as an option, such as --index-url or -r), does not end with "\\" (pip would join the
next line to it) and has no "${" (pip would expand an environment variable).

With DWO_LAYER set (strategy Image), the built environment is also written as an image layer: a
tar of the target at its path in the image, owned by root, without timestamps.

Index credentials, when the environment names a Workspace connection for them, come in the
environment variable DWO_INDEX_CREDENTIALS (`user:password`, from the connection's Secret) and go
to ~/.netrc for the index hosts only; they never reach a command line or the log.

Steps: `python -m venv --clear <target>` with the interpreter running this script, then
`<target>/bin/python -m pip install --no-input --disable-pip-version-check --no-cache-dir
--report <tmp>/report.json -r <tmp>/requirements.txt`, with --index-url and --extra-index-url when
configured. Commands are run with argument lists, never through a shell; pip's output goes to
stderr (the pod log).

The lock is made from pip's installation report: one line per installed distribution,
`<name>==<version> --hash=sha256:<hex>`, the name normalized as PEP 503 says, sorted by name,
each line ending in a newline. A distribution without a sha256 hash (installed from a VCS or a
directory) is an error. It is written to <target>/dataworkspace-lock.txt.

The outcome goes to the termination message (the file named by DWO_TERMINATION_LOG, default
/dev/termination-log; Kubernetes keeps at most 4096 bytes of it):
  - success (exit status 0): the lock itself when it has at most 4000 bytes, else `gz:` and the
    base64 (standard alphabet, one line) of the lock's gzip (mtime 0, so the same lock gives the
    same message); a lock whose compressed form is still over 4000 bytes is a failure;
  - failure (exit status 1): `error: ` and a short summary, at most 2000 bytes in all; for a pip
    failure, the lines of pip's output that start with `ERROR:` (else its last 15 lines).

The script can be imported (it runs only as __main__). Its functions, which the process test
calls and which are kept stable:
  read_config(path) -> Config           the configuration file, checked
  check_config(raw) -> Config           the checks, on the parsed JSON
  normalize_name(name) -> str           PEP 503 normalization
  lock_from_report(report) -> str       the lock, from pip's installation report (a dict)
  lock_message(lock) -> str             the success message for a lock
  error_message(summary) -> str         the failure message for a summary
  pip_error_summary(output) -> str      the part of pip's output a failure reports
  netrc_text(config, credentials) -> str  the .netrc for the index credentials (user:password)
  write_layer(target, path)             strategy Image: the environment as an image layer (a tar)
  build(config) -> str                  venv and pip install; the lock, also written to the target
  main() -> int                         all of it, with the termination message; the exit status
Every failure that is the configuration's or pip's is a BuildError, whose text is the summary.
"""

import base64
import gzip
import json
import os
import posixpath
import re
import subprocess
import sys
import tarfile
import tempfile
import traceback
import urllib.parse
from typing import List, NamedTuple, Optional, Tuple

#: Largest termination message written; Kubernetes keeps 4096 bytes.
MAX_MESSAGE_BYTES = 4000
#: Largest failure message written.
MAX_ERROR_BYTES = 2000
#: Lines of pip's output a failure reports when none starts with `ERROR:`.
TAIL_LINES = 15
#: The lock's file name in the target.
LOCK_FILE = "dataworkspace-lock.txt"

CONFIG_KEYS = {"requirements", "indexUrl", "extraIndexUrls", "target"}
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class BuildError(Exception):
    """A failure to report: its text is the summary of the termination message."""


class Config(NamedTuple):
    """The checked configuration."""

    requirements: List[str]
    index_url: Optional[str]
    extra_index_urls: List[str]
    target: str


def read_config(path: str) -> Config:
    """The configuration file at `path`, parsed and checked."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as e:
        raise BuildError(f"cannot read the configuration {path}: {e}") from e
    return check_config(raw)


def check_config(raw: object) -> Config:
    """The checks of the module docstring on the parsed configuration; a BuildError names the
    first value that fails them."""
    if not isinstance(raw, dict):
        raise BuildError("the configuration is not a JSON object")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise BuildError(f"unknown configuration keys: {', '.join(unknown)}")

    target = raw.get("target")
    if not isinstance(target, str) or not target.startswith("/"):
        raise BuildError(f"target must be an absolute path: {target!r}")
    if ".." in target.split("/") or posixpath.normpath(target) != target or target in ("/", "//"):
        raise BuildError(f"target must be a normalized path below / without '..': {target!r}")

    index_url = raw.get("indexUrl")
    extra = raw.get("extraIndexUrls", [])
    if not isinstance(extra, list):
        raise BuildError("extraIndexUrls must be a list of URLs")
    for url in ([index_url] if index_url is not None else []) + extra:
        if not isinstance(url, str) or not url.startswith("https://") or re.search(r"\s", url):
            raise BuildError(f"an index URL must start with https:// and have no whitespace: {url!r}")

    text = raw.get("requirements")
    if not isinstance(text, str):
        raise BuildError("requirements must be a string")
    requirements = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise BuildError(f"requirements line {number} is an option, not a requirement: {line!r}")
        if line.endswith("\\"):
            raise BuildError(f"requirements line {number} ends with a line continuation: {line!r}")
        if "${" in line:
            raise BuildError(f"requirements line {number} names an environment variable: {line!r}")
        requirements.append(line)
    if not requirements:
        raise BuildError("requirements has no requirement")
    return Config(requirements, index_url, extra, target)


def netrc_text(config: Config, credentials: str) -> str:
    """A .netrc giving `credentials` (`user:password`, from the environment variable
    DWO_INDEX_CREDENTIALS, which the Job takes from a Workspace connection) to the hosts of the
    configured indexes, and to no other host."""
    user, sep, password = credentials.strip().partition(":")
    if not sep or not user or not password or re.search(r'[\s"]', user + password) or password.startswith("#"):
        raise BuildError("the index credentials must be user:password, without whitespace or quotes")
    urls = ([config.index_url] if config.index_url else []) + config.extra_index_urls
    hosts = sorted({urllib.parse.urlsplit(url).hostname or "" for url in urls} - {""})
    if not hosts:
        raise BuildError("index credentials are set, but no index URL says where they go")
    return "".join(f"machine {host} login {user} password {password}\n" for host in hosts)


def normalize_name(name: str) -> str:
    """A distribution name normalized as PEP 503 says: lower case, runs of -_. become -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_from_report(report: dict) -> str:
    """The lock from pip's installation report (`pip install --report`): a line
    `<name>==<version> --hash=sha256:<hex>` for each installed distribution, sorted by name."""
    lines = {}
    for entry in report.get("install", []):
        metadata = entry.get("metadata", {})
        name, version = normalize_name(metadata.get("name", "")), metadata.get("version", "")
        if not name or not version:
            raise BuildError(f"pip's report has an entry without a name or version: {metadata!r:.200}")
        archive = (entry.get("download_info") or {}).get("archive_info") or {}
        digest = (archive.get("hashes") or {}).get("sha256")
        if digest is None and (archive.get("hash") or "").startswith("sha256="):
            digest = archive["hash"][len("sha256="):]
        if digest is None or not SHA256_HEX.fullmatch(digest):
            url = (entry.get("download_info") or {}).get("url", "an unknown source")
            raise BuildError(f"{name}=={version} has no sha256 hash (installed from {url})")
        lines[name] = f"{name}=={version} --hash=sha256:{digest}\n"
    return "".join(lines[name] for name in sorted(lines))


def lock_message(lock: str) -> str:
    """The termination message of a success: the lock when it fits in MAX_MESSAGE_BYTES, else
    `gz:` and the base64 of its gzip; a BuildError when even that does not fit."""
    data = lock.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return lock
    message = "gz:" + base64.b64encode(gzip.compress(data, mtime=0)).decode("ascii")
    if len(message) > MAX_MESSAGE_BYTES:
        packages = len(lock.splitlines())
        raise BuildError(
            f"the lock has {len(data)} bytes for {packages} packages ({len(message)} bytes compressed), "
            f"too large to report in a termination message of {MAX_MESSAGE_BYTES} bytes"
        )
    return message


def error_message(summary: str) -> str:
    """The termination message of a failure: `error: ` and the summary, cut to MAX_ERROR_BYTES."""
    data = ("error: " + summary.strip()).encode("utf-8")
    if len(data) > MAX_ERROR_BYTES:
        cut = " [...]".encode("utf-8")
        data = data[: MAX_ERROR_BYTES - len(cut)].decode("utf-8", "ignore").encode("utf-8") + cut
    return data.decode("utf-8")


def pip_error_summary(output: str) -> str:
    """What a pip failure reports of pip's output: its `ERROR:` lines, else its last lines."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return "\n".join((errors or lines)[-TAIL_LINES:])


def run(command: List[str]) -> Tuple[int, str]:
    """Runs `command` (no shell), copying its output to stderr; its exit status and output."""
    log(f"running {' '.join(command)}")
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    )
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stderr.write(line)
        output.append(line)
    return process.wait(), "".join(output)


def build(config: Config) -> str:
    """Makes the virtualenv at the target and installs the requirements; the lock, also written
    to <target>/dataworkspace-lock.txt."""
    status, output = run([sys.executable, "-m", "venv", "--clear", config.target])
    if status != 0:
        raise BuildError(f"python -m venv failed (exit status {status}):\n{pip_error_summary(output)}")
    with tempfile.TemporaryDirectory(prefix="dwo-build-") as work:
        requirements = os.path.join(work, "requirements.txt")
        report = os.path.join(work, "report.json")
        with open(requirements, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in config.requirements)
        command = [
            os.path.join(config.target, "bin", "python"), "-m", "pip", "install",
            "--no-input", "--disable-pip-version-check", "--no-cache-dir",
            "--report", report, "-r", requirements,
        ]
        if config.index_url is not None:
            command += ["--index-url", config.index_url]
        for url in config.extra_index_urls:
            command += ["--extra-index-url", url]
        status, output = run(command)
        if status != 0:
            raise BuildError(f"pip install failed (exit status {status}):\n{pip_error_summary(output)}")
        try:
            with open(report, encoding="utf-8") as f:
                lock = lock_from_report(json.load(f))
        except (OSError, ValueError) as e:
            raise BuildError(f"cannot read pip's installation report: {e}") from e
    with open(os.path.join(config.target, LOCK_FILE), "w", encoding="utf-8") as f:
        f.write(lock)
    return lock


def write_layer(target: str, path: str) -> None:
    """An image layer of the built environment at `path`: a tar of `target` and its parent
    directories, at their paths in the image, owned by root and readable by everyone, with
    no timestamps (the same build gives the same layer)."""

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = (info.mode | 0o444 | (0o111 if info.isdir() or info.mode & 0o100 else 0)) & 0o755
        return info

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as layer:
        parts = target.strip("/").split("/")
        for depth in range(1, len(parts)):
            parent = tarfile.TarInfo("/".join(parts[:depth]))
            parent.type = tarfile.DIRTYPE
            layer.addfile(normalize(parent))
        for root, dirs, files in os.walk(target):
            dirs.sort()
            for name in [root] + [os.path.join(root, f) for f in sorted(files)]:
                layer.add(name, arcname=name.lstrip("/"), recursive=False, filter=normalize)
            for d in dirs:
                full = os.path.join(root, d)
                if os.path.islink(full):
                    layer.add(full, arcname=full.lstrip("/"), recursive=False, filter=normalize)


def log(message: str) -> None:
    print(f"[python-env-build] {message}", file=sys.stderr, flush=True)


def write_termination_message(message: str) -> None:
    path = os.environ.get("DWO_TERMINATION_LOG", "/dev/termination-log")
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(message)
    except OSError as e:
        log(f"cannot write the termination message to {path}: {e}")


def main() -> int:
    """Reads the configuration, builds, and writes the termination message; the exit status."""
    try:
        config = read_config(os.environ.get("DWO_ENV_CONFIG", "/config/environment.json"))
        credentials = os.environ.get("DWO_INDEX_CREDENTIALS")
        if credentials:
            # pip reads ~/.netrc; nothing secret reaches a command line or the log.
            path = os.path.join(os.path.expanduser("~"), ".netrc")
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
                f.write(netrc_text(config, credentials))
        lock = build(config)
        message = lock_message(lock)
        layer = os.environ.get("DWO_LAYER")
        if layer:
            # Strategy Image: the environment as a layer for the push that follows.
            write_layer(config.target, layer)
    except BuildError as e:
        message = error_message(str(e))
        log(message)
        write_termination_message(message)
        return 1
    except Exception as e:  # a bug of this script: still a readable termination message
        traceback.print_exc()
        message = error_message(f"internal error: {type(e).__name__}: {e}")
        log(message)
        write_termination_message(message)
        return 1
    log(f"installed {len(lock.splitlines())} distributions; lock:\n{lock}")
    write_termination_message(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
