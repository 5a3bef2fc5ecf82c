//! Process test of the PythonEnvironment build script (`src/build/python_env_build.py`, the
//! script the build Job runs): the real script, run with python3, installs real packages from
//! PyPI.
//!
//! Each build gets a fresh temporary directory holding its configuration file (`DWO_ENV_CONFIG`),
//! its termination message (`DWO_TERMINATION_LOG`), its HOME and its target. The tests prove that
//! - a build makes a virtualenv that imports the pinned packages, and reports a lock that is
//!   exactly the pins, with sha256 hashes that PyPI's index gives for those releases' files, as
//!   its termination message and in `<target>/dataworkspace-lock.txt`;
//! - a failed install exits 1 and reports pip's error, short enough for the operator;
//! - options smuggled into the requirements, non-https indexes and targets outside the volume are
//!   refused before any virtualenv is made;
//! - the script's functions (it can be imported) make the lock from pip's report, compress a lock
//!   that does not fit a termination message, and refuse one that does not fit even compressed.
//!
//! - strategy Image: the build's layer, appended to a base image by the very command the Job's
//!   push container runs (crane, built from its Go module by `hack/build-tools.sh images`), lands
//!   in a registry (crane's own, on loopback) as an image holding the environment, whose digest
//!   reference the operator accepts.
//!
//! It needs python3 (with venv) and PyPI; it fails, saying so, when either is missing.

mod support;

use support::free_port;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};
use support::temp::TempDir;

use serde_json::{Value, json};

/// The pins of the build that succeeds: small, pure-Python, without dependencies, so the lock
/// is exactly these.
const PINS: [(&str, &str); 2] = [("attrs", "26.1.0"), ("six", "1.17.0")];
/// A requirement no index has.
const MISSING: &str = "dataworkspace-no-such-package-xyz";
/// The termination message Kubernetes keeps is 4096 bytes; the script writes at most this.
const MAX_MESSAGE: usize = 4000;
/// A failure's message is at most this.
const MAX_ERROR: usize = 2000;
/// An index the refused configurations try to bring in.
const EVIL: &str = "https://evil.example/simple";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    manifest_dir().join("src/build/python_env_build.py")
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One run of the build script.
struct Build {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The termination message; `None` when the script wrote none.
    message: Option<String>,
    elapsed: Duration,
}

impl Build {
    /// Runs the script as the Job does, with `config` as its configuration file, under `root`.
    fn run(root: &Path, config: &Value) -> Build {
        Build::run_with(root, config, &[])
    }

    /// [`Build::run`] with more environment variables.
    fn run_with(root: &Path, config: &Value, env: &[(&str, &Path)]) -> Build {
        let config_file = root.join("config/environment.json");
        let termination_log = root.join("termination-log");
        let home = root.join("home");
        fs::create_dir_all(config_file.parent().unwrap()).unwrap();
        fs::create_dir_all(&home).unwrap();
        fs::write(&config_file, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let started = Instant::now();
        let Output { status, stdout, stderr } = Command::new("python3")
            .arg(script())
            .env("DWO_ENV_CONFIG", &config_file)
            .env("DWO_TERMINATION_LOG", &termination_log)
            .env("HOME", &home)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("running python3 {}: {e}; python3 must be on PATH", script().display())
            });
        let build = Build {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            message: fs::read_to_string(&termination_log).ok(),
            elapsed: started.elapsed(),
        };
        eprintln!("the build ran in {:.1?} and exited with {}", build.elapsed, build.status);
        build
    }

    /// The termination message, which every run writes.
    fn message(&self) -> &str {
        self.message.as_deref().unwrap_or_else(|| panic!("no termination message\n{}", self.describe()))
    }

    /// Everything about the run, for a failed assertion.
    fn describe(&self) -> String {
        format!(
            "exit: {}\ntermination message:\n{}\nstdout:\n{}\nstderr (last 60 lines):\n{}",
            self.status,
            self.message.as_deref().unwrap_or("<none>"),
            tail(&self.stdout, 60),
            tail(&self.stderr, 60),
        )
    }
}

/// Runs `code` with `python3 -c`, the script's path as its first argument, and parses the JSON it
/// prints. `code` imports the script as `build` after [`IMPORT`].
fn python_json(code: &str) -> Value {
    let code = format!("{IMPORT}\n{code}");
    let output = Command::new("python3")
        .arg("-c")
        .arg(&code)
        .arg(script())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}; python3 must be on PATH"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python3 -c exited with {}\ncode:\n{code}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("python3 printed no JSON ({e}):\n{stdout}"))
}

/// Imports the script from the path in `sys.argv[1]` as the module `build`.
const IMPORT: &str = r#"
import base64, gzip, hashlib, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("python_env_build", sys.argv[1])
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
"#;

/// The sha256 of every file of `name` on PyPI, from its Simple API (JSON, PEP 691): the index
/// pip installs from. Pairs of file name and hash.
fn pypi_files(name: &str) -> Vec<(String, String)> {
    const CODE: &str = r#"
import json, sys, urllib.request
request = urllib.request.Request(
    "https://pypi.org/simple/%s/" % sys.argv[1],
    headers={"Accept": "application/vnd.pypi.simple.v1+json"},
)
with urllib.request.urlopen(request, timeout=60) as response:
    index = json.load(response)
print(json.dumps([[f["filename"], f["hashes"].get("sha256", "")] for f in index["files"]]))
"#;
    let output = Command::new("python3")
        .args(["-c", CODE, name])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    assert!(
        output.status.success(),
        "could not read {name}'s files from PyPI's Simple API; this test needs PyPI:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON list of [file name, sha256]")
}

/// A configuration with these requirements and the target `<root>/env/abc123`.
fn config(root: &Path, requirements: &str) -> Value {
    json!({
        "requirements": requirements,
        "indexUrl": null,
        "extraIndexUrls": [],
        "target": root.join("env/abc123"),
    })
}

#[test]
fn a_build_installs_the_packages_and_reports_a_lock_with_hashes() {
    let root = TempDir::new("dwo-python-env-process");
    let root = root.0.as_path();
    let requirements: String = std::iter::once("# the process test's pins\n".to_string())
        .chain(PINS.iter().rev().map(|(name, version)| format!("{name}=={version}\n\n")))
        .collect();
    let build = Build::run(root, &config(root, &requirements));
    assert!(
        build.status.success(),
        "the build failed; it needs python3 with venv and PyPI\n{}",
        build.describe()
    );
    let target = root.join("env/abc123");

    // The termination message is the lock, plain (it is small), and the lock file says the same.
    let lock = fs::read_to_string(target.join("dataworkspace-lock.txt"))
        .unwrap_or_else(|e| panic!("no lock file in the target: {e}\n{}", build.describe()));
    assert_eq!(build.message(), lock, "the termination message is the lock\n{}", build.describe());
    // The operator takes it as it is.
    assert_eq!(
        dataworkspace_operator::build::python_env::lock_from_message(build.message()).as_deref(),
        Some(lock.as_str()),
        "the operator refuses the lock the script reports"
    );
    assert!(lock.ends_with('\n'), "every line of the lock ends in a newline: {lock:?}");

    // Exactly the pins, sorted, each with a sha256 hash.
    let lines: Vec<(&str, &str)> = lock
        .lines()
        .map(|line| {
            line.split_once(" --hash=sha256:")
                .unwrap_or_else(|| panic!("a lock line without a hash: {line:?}"))
        })
        .collect();
    let pinned: Vec<String> = PINS.iter().map(|(name, version)| format!("{name}=={version}")).collect();
    let locked: Vec<&str> = lines.iter().map(|(requirement, _)| *requirement).collect();
    assert_eq!(locked, pinned, "the lock is the pins, sorted by name:\n{lock}");
    for (requirement, hash) in &lines {
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{requirement}: the hash is not 64 lower-case hex digits: {hash:?}"
        );
    }

    // The virtualenv imports them.
    let python = target.join("bin/python");
    let import = Command::new(&python)
        .args(["-c", "import six, attrs; print(six.__version__, attrs.__version__)"])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        import.status.success(),
        "the virtualenv does not import six and attrs: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let versions = String::from_utf8_lossy(&import.stdout);
    assert_eq!(versions.split_whitespace().collect::<Vec<_>>(), ["1.17.0", "26.1.0"], "imported versions");

    // Each hash is the hash PyPI gives for a file of that release: the lock names real files.
    for ((name, version), (_, hash)) in PINS.iter().zip(&lines) {
        let files = pypi_files(name);
        let file = files.iter().find(|(_, sha256)| sha256 == hash).map(|(file, _)| file);
        let Some(file) = file else {
            panic!("{name}=={version}: no file on PyPI has the locked hash {hash}; its files: {files:?}")
        };
        assert!(
            file.starts_with(&format!("{name}-{version}-")) && file.ends_with(".whl"),
            "{name}=={version}: the locked hash is that of {file}, not of a wheel of this release"
        );
        eprintln!("{name}=={version}: the locked hash is PyPI's for {file}");
    }
    eprintln!("lock:\n{lock}");
}

#[test]
fn a_failed_build_reports_pips_error() {
    let root = TempDir::new("dwo-python-env-process");
    let root = root.0.as_path();
    let build = Build::run(root, &config(root, &format!("{MISSING}==0.0.1\n")));
    assert_eq!(build.status.code(), Some(1), "a failed install exits with 1\n{}", build.describe());
    let message = build.message();
    assert!(message.starts_with("error: "), "the message of a failure\n{}", build.describe());
    assert!(message.contains("ERROR:"), "the message quotes pip's error\n{}", build.describe());
    assert!(message.contains(MISSING), "the message names the package\n{}", build.describe());
    assert!(message.len() <= MAX_ERROR, "the message has {} bytes\n{}", message.len(), build.describe());
    assert!(!root.join("env/abc123/dataworkspace-lock.txt").exists(), "a failed build writes no lock");
    assert!(build.stderr.contains(MISSING), "pip's output is in the pod log (stderr)\n{}", build.describe());
}

#[test]
fn options_and_bad_targets_are_refused_before_pip_runs() {
    // Each case: what it is, the configuration (its target and requirements relative to the
    // test's root), and a word the error must say.
    type MakeConfig = fn(&Path) -> Value;
    let cases: [(&str, MakeConfig, &str); 8] = [
        ("an option line", |root| config(root, &format!("six==1.17.0\n--index-url {EVIL}\n")), "option"),
        ("an indented -r line", |root| config(root, "six==1.17.0\n  -r /etc/passwd\n"), "option"),
        (
            "an option joined by a line continuation",
            |root| config(root, &format!("\\\n--index-url {EVIL}\nsix==1.17.0\n")),
            "continuation",
        ),
        (
            "an environment variable",
            |root| config(root, "six==1.17.0\nhttps://example.com/${HOME}\n"),
            "environment variable",
        ),
        (
            "a target with ..",
            |root| {
                json!({"requirements": "six==1.17.0\n", "indexUrl": null, "extraIndexUrls": [],
                       "target": format!("{}/env/../escape", root.display())})
            },
            "..",
        ),
        (
            "a relative target",
            |_| {
                json!({"requirements": "six==1.17.0\n", "indexUrl": null, "extraIndexUrls": [],
                       "target": "env/abc123"})
            },
            "absolute",
        ),
        (
            "a plain-HTTP index",
            |root| {
                let mut config = config(root, "six==1.17.0\n");
                config["indexUrl"] = json!("http://evil.example/simple");
                config
            },
            "https://",
        ),
        (
            "an extra index URL carrying an option",
            |root| {
                let mut config = config(root, "six==1.17.0\n");
                config["extraIndexUrls"] = json!([format!("{EVIL} --trusted-host evil.example")]);
                config
            },
            "whitespace",
        ),
    ];
    for (case, config, says) in cases {
        let root = TempDir::new("dwo-python-env-process");
        let root = root.0.as_path();
        let build = Build::run(root, &config(root));
        assert_eq!(build.status.code(), Some(1), "{case}: refused with exit status 1\n{}", build.describe());
        let message = build.message();
        assert!(message.starts_with("error: "), "{case}: the message of a failure\n{}", build.describe());
        assert!(message.contains(says), "{case}: the message says {says:?}\n{}", build.describe());
        for made in ["env", "escape"] {
            assert!(!root.join(made).exists(), "{case}: {made} was made\n{}", build.describe());
        }
        assert!(!build.stderr.contains("-m venv"), "{case}: a virtualenv was begun\n{}", build.describe());
        eprintln!("{case}: {message}");
    }
}

/// A synthetic lock of `n` packages with real-looking (incompressible) hashes, in Python.
const SYNTHETIC_LOCK: &str = r#"
def lock(n):
    return "".join(
        "package-%03d==1.%d.0 --hash=sha256:%s\n" % (i, i, hashlib.sha256(str(i).encode()).hexdigest())
        for i in range(n)
    )
"#;

#[test]
fn a_large_lock_is_compressed() {
    let results = python_json(&format!(
        r#"{SYNTHETIC_LOCK}
out = {{}}
for n in (10, 60):
    text = lock(n)
    message = build.lock_message(text)
    decoded = message
    if message.startswith("gz:"):
        decoded = gzip.decompress(base64.b64decode(message[3:], validate=True)).decode("utf-8")
    out[n] = {{"lock_bytes": len(text.encode()), "message": message, "decodes": decoded == text,
              "same_again": build.lock_message(text) == message}}
print(json.dumps(out))
"#
    ));
    // A small lock is the message itself.
    let small = &results["10"];
    assert!(small["lock_bytes"].as_u64().unwrap() <= MAX_MESSAGE as u64, "{small}");
    assert!(!small["message"].as_str().unwrap().starts_with("gz:"), "a small lock is sent plain: {small}");
    assert_eq!(small["decodes"], json!(true), "a small lock is sent as it is: {small}");

    // One over the limit is compressed: `gz:` and base64 of its gzip, within the limit,
    // decoding back to the lock, the same every time.
    let large = &results["60"];
    assert!(
        large["lock_bytes"].as_u64().unwrap() > MAX_MESSAGE as u64,
        "the case is over the limit: {large}"
    );
    let message = large["message"].as_str().unwrap();
    assert!(message.starts_with("gz:"), "a large lock is compressed: {message:.100}");
    assert!(message.len() <= MAX_MESSAGE, "the compressed message has {} bytes", message.len());
    assert!(
        message[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "standard base64 on one line: {message:.200}"
    );
    assert_eq!(large["decodes"], json!(true), "the message decodes back to the lock");
    let decoded = dataworkspace_operator::build::python_env::lock_from_message(message)
        .expect("the operator decodes the compressed lock");
    assert_eq!(decoded.lines().count(), 60, "{decoded:.300}");
    assert_eq!(large["same_again"], json!(true), "the same lock gives the same message");
    eprintln!(
        "a lock of 60 packages: {} bytes plain, {} bytes as a message",
        large["lock_bytes"],
        message.len()
    );
}

#[test]
fn a_lock_too_large_to_report_is_refused() {
    let result = python_json(&format!(
        r#"{SYNTHETIC_LOCK}
text = lock(150)
try:
    print(json.dumps({{"message": build.lock_message(text)}}))
except build.BuildError as e:
    print(json.dumps({{"error": str(e), "lock_bytes": len(text.encode())}}))
"#
    ));
    let error =
        result["error"].as_str().unwrap_or_else(|| panic!("a lock of 150 packages is refused: {result}"));
    let bytes = result["lock_bytes"].to_string();
    assert!(error.contains(&format!("{bytes} bytes")), "the error gives the lock's size: {error}");
    assert!(error.contains("150 packages"), "the error gives the number of packages: {error}");
    assert!(error.contains("too large"), "{error}");
}

#[test]
fn the_lock_is_made_from_pips_report() {
    let result = python_json(
        r#"
def entry(name, version, download_info):
    return {"metadata": {"name": name, "version": version}, "download_info": download_info}

a, b, c = "a" * 64, "b" * 64, "c" * 64
report = {"version": "1", "install": [
    entry("Zope.Interface", "7.2", {"url": "https://files.example/z.whl",
                                    "archive_info": {"hash": "sha256=" + a}}),
    entry("typing__Extensions", "4.12.2", {"url": "https://files.example/t.whl",
        "archive_info": {"hash": "sha256=" + b, "hashes": {"sha256": b}}}),
    entry("Attrs", "26.1.0", {"url": "https://files.example/a.whl",
                              "archive_info": {"hashes": {"sha256": c}}}),
]}
vcs = {"install": [entry("from-git", "1.0", {"url": "git+https://git.example/x",
                                             "vcs_info": {"vcs": "git", "commit_id": "0" * 40}})]}
md5 = {"install": [entry("weak", "1.0", {"url": "https://files.example/w.whl",
                                         "archive_info": {"hash": "md5=" + "0" * 32}})]}
errors = {}
for case, bad in (("vcs", vcs), ("md5", md5)):
    try:
        errors[case] = "no error: " + build.lock_from_report(bad)
    except build.BuildError as e:
        errors[case] = str(e)
print(json.dumps({"lock": build.lock_from_report(report), "errors": errors,
                  "empty": build.lock_from_report({"install": []})}))
"#,
    );
    let hash = |c: char| c.to_string().repeat(64);
    assert_eq!(
        result["lock"].as_str().unwrap(),
        format!(
            "attrs==26.1.0 --hash=sha256:{}\ntyping-extensions==4.12.2 --hash=sha256:{}\n\
             zope-interface==7.2 --hash=sha256:{}\n",
            hash('c'),
            hash('b'),
            hash('a')
        ),
        "names normalized as PEP 503 says, sorted, either form of the hash"
    );
    let vcs = result["errors"]["vcs"].as_str().unwrap();
    assert!(vcs.contains("from-git==1.0") && vcs.contains("no sha256"), "{vcs}");
    let md5 = result["errors"]["md5"].as_str().unwrap();
    assert!(md5.contains("weak==1.0") && md5.contains("no sha256"), "{md5}");
    assert_eq!(result["empty"], json!(""));
}

#[test]
fn failure_messages_are_short_and_name_pips_errors() {
    let result = python_json(
        r#"
output = "Collecting x\n" + "".join("  noise %d\n" % i for i in range(40)) + \
    "ERROR: Could not find a version that satisfies the requirement x==1\nERROR: No matching distribution found for x==1\n"
print(json.dumps({
    "errors": build.pip_error_summary(output),
    "tail": build.pip_error_summary("".join("line %d\n" % i for i in range(40))),
    "long": build.error_message("é" * 3000),
}))
"#,
    );
    assert_eq!(
        result["errors"],
        json!(
            "ERROR: Could not find a version that satisfies the requirement x==1\n\
             ERROR: No matching distribution found for x==1"
        ),
        "pip's ERROR lines"
    );
    let tail: Vec<&str> = result["tail"].as_str().unwrap().lines().collect();
    assert_eq!(tail.len(), 15, "without ERROR lines, the last 15: {tail:?}");
    assert_eq!(tail.last(), Some(&"line 39"));
    let long = result["long"].as_str().unwrap();
    assert!(long.starts_with("error: é"), "{long:.40}");
    assert!(long.len() <= MAX_ERROR, "a long failure is cut to {MAX_ERROR} bytes, not {}", long.len());
}

#[test]
fn index_credentials_go_to_the_index_hosts_only() {
    let results = python_json(
        r#"
config = build.Config(["six"], "https://pypi.corp.example/simple", ["https://mirror.corp.example:8443/simple"], "/env/x")
out = {"netrc": build.netrc_text(config, "reader:s3cr3t")}
for name, bad in [("no_colon", "token"), ("space", "a:b c"), ("quote", 'a:"b'), ("comment", "a:#b")]:
    try:
        build.netrc_text(config, bad)
        out[name] = "accepted"
    except build.BuildError as e:
        out[name] = str(e)
try:
    build.netrc_text(build.Config(["six"], None, [], "/env/x"), "a:b")
    out["no_index"] = "accepted"
except build.BuildError as e:
    out["no_index"] = str(e)
print(json.dumps(out))
"#,
    );
    assert_eq!(
        results["netrc"],
        json!(
            "machine mirror.corp.example login reader password s3cr3t\nmachine pypi.corp.example login reader password s3cr3t\n"
        ),
        "one entry per index host, no port: {results}"
    );
    for refused in ["no_colon", "space", "quote", "comment", "no_index"] {
        let message = results[refused].as_str().unwrap();
        assert_ne!(message, "accepted", "{refused} was accepted");
        assert!(
            !message.contains("s3cr3t") && !message.contains("b c"),
            "the message shows the secret: {message}"
        );
    }
}

/// The directory of the tools `hack/build-tools.sh images` builds (cached).
fn image_tools() -> PathBuf {
    let output = Command::new(manifest_dir().join("hack/build-tools.sh"))
        .arg("images")
        .stdin(Stdio::null())
        .output()
        .expect("running hack/build-tools.sh images");
    assert!(
        output.status.success(),
        "hack/build-tools.sh images failed (it needs Go and the Go module proxy):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim())
}

/// A child process killed on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs crane with `args`; its stdout, or a panic with everything it said.
fn crane(tools: &Path, args: &[&str]) -> String {
    let output =
        Command::new(tools.join("crane")).args(args).stdin(Stdio::null()).output().expect("running crane");
    assert!(
        output.status.success(),
        "crane {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn strategy_image_pushes_the_environment_as_a_layer_of_the_base_image() {
    use dataworkspace_operator::build::{
        children::Child,
        python_env::{self, Approved},
    };
    let tools = image_tools();
    let root = TempDir::new("dwo-python-env-image");
    let root = root.0.as_path();

    // A registry on loopback (crane's own, in memory).
    let port = free_port();
    let registry_address = format!("127.0.0.1:{port}");
    let _registry = Running(
        Command::new(tools.join("crane"))
            .args(["registry", "serve", "--address", &registry_address])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting crane registry serve"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&registry_address).is_err() {
        assert!(Instant::now() < deadline, "the registry did not listen on {registry_address}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A base image with one file.
    let base_dir = root.join("base/etc");
    fs::create_dir_all(&base_dir).unwrap();
    fs::write(base_dir.join("base-marker"), "base\n").unwrap();
    let base_tar = root.join("base.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(root.join("base"))
        .arg("-cf")
        .arg(&base_tar)
        .arg("etc")
        .status()
        .unwrap();
    assert!(status.success());
    let base = format!("{registry_address}/base:1");
    crane(&tools, &["append", "--new_layer", base_tar.to_str().unwrap(), "--new_tag", &base]);

    // The build, writing its layer as the Job's build container does.
    let layer = root.join("work/layer.tar");
    fs::create_dir_all(layer.parent().unwrap()).unwrap();
    let requirements: String = PINS.iter().map(|(name, version)| format!("{name}=={version}\n")).collect();
    let build = Build::run_with(root, &config(root, &requirements), &[("DWO_LAYER", &layer)]);
    assert!(build.status.success(), "the build failed\n{}", build.describe());
    assert!(layer.is_file(), "no layer written\n{}", build.describe());

    // The push, as the builder makes it: the Job's push container's command, with the pod's
    // paths, base image and tag mapped to this machine.
    let spec: dataworkspace_operator::crd::PythonEnvironmentSpec = serde_yaml::from_str(&format!(
        "strategy: Image\nbaseImage: {base}\npackages: [six]\nimage: {{repository: {registry_address}/env}}"
    ))
    .unwrap();
    let hash = python_env::spec_hash(&spec);
    let children = python_env::children(&Approved {
        name: "py",
        namespace: "dw-test",
        workspace: "test",
        owner: Default::default(),
        spec: &spec,
        hash: &hash,
        index_credentials: None,
        push_credentials: None,
    });
    let Some(Child::Job(job)) = children.iter().find(|c| matches!(c, Child::Job(_))) else {
        panic!("no Job")
    };
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let push = pod.containers.iter().find(|c| c.name == "push").expect("a push container");
    let command = push.command.clone().unwrap();
    assert_eq!(command[0], "/busybox/sh");
    assert_eq!(command[4], base, "the base image is the environment's base image");
    let message = root.join("push-message");
    let path = format!("{}:{}", tools.display(), std::env::var("PATH").unwrap_or_default());
    let output = Command::new("sh")
        .args(&command[1..])
        .env("PATH", &path)
        .env("HOME", root)
        .env("LAYER", &layer)
        .env("MESSAGE", &message)
        .stdin(Stdio::null())
        .output()
        .expect("running the push");
    assert!(output.status.success(), "the push failed: {}", String::from_utf8_lossy(&output.stderr));

    // The operator takes the digest reference of its repository, and the image holds the base
    // and the environment.
    let reported = fs::read_to_string(&message).unwrap();
    let reference = python_env::image_from_message(&reported, &format!("{registry_address}/env"))
        .unwrap_or_else(|| panic!("the operator refuses the push's message {reported:?}"));
    let digest = crane(&tools, &["digest", &command[5]]);
    assert!(reference.ends_with(digest.trim()), "{reference} is not the tag's digest {digest}");
    let exported = root.join("exported.tar");
    crane(&tools, &["export", &reference, exported.to_str().unwrap()]);
    let listing = Command::new("tar").arg("-tf").arg(&exported).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let target = root.join("env/abc123");
    let six = format!(
        "{}/lib/python3.{}/site-packages/six.py",
        target.display().to_string().trim_start_matches('/'),
        python_minor()
    );
    assert!(listing.lines().any(|l| l == "etc/base-marker"), "the base is gone:\n{listing:.2000}");
    assert!(listing.lines().any(|l| l == six), "{six} is not in the image:\n{listing:.3000}");
    assert!(listing.lines().any(|l| l.ends_with("dataworkspace-lock.txt")), "no lock in the image");
}

/// The minor version of the machine's python3.
fn python_minor() -> String {
    let output =
        Command::new("python3").args(["-c", "import sys; print(sys.version_info[1])"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
