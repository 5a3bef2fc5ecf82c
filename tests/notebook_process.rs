//! Process test of the Notebook runtime: the command, environment and configuration file the
//! operator generates start the real JupyterLab.
//!
//! Kubernetes objects are proven by the control plane (the e2e suite); processes are proven by
//! running the real software. This test builds a Notebook Project through the library's own
//! `validate` and `build`, installs the pinned JupyterLab from PyPI into a cached virtualenv
//! (`hack/python-env.sh`, pins in `hack/python/notebook.txt`), lays out the pod's volumes under a
//! temporary directory, runs the container's `command` and `args` exactly with the environment
//! the pod would get, and checks the server through its REST API and its log.
//!
//! It needs python3 and PyPI; it fails when the virtualenv cannot be prepared. Locally,
//! `DWO_PROCESS_SKIP=1` skips it (loudly); with `CI` set it never skips.

mod support;

use support::free_port;

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child as Process, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};
use support::temp::TempDir;

use dataworkspace_operator::{
    build::children::{Child, Encoding},
    config::Config,
    controller::{
        Valid,
        identity::Identities,
        workspace::{
            self,
            validate::{Observed, validate},
        },
    },
    crd::{Project, User, Workspace},
    runtime::{self, notebook},
};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Container, EnvVar, PodSpec},
};
use serde_json::{Value, json};

const USERS: &str = "
apiVersion: dataworkspace.io/v1alpha1
kind: User
metadata: {name: alice}
spec: {username: alice@example.com, email: alice@example.com, teams: [data-science]}
";

const WORKSPACE: &str = "
apiVersion: dataworkspace.io/v1alpha1
kind: Workspace
metadata: {name: analytics, uid: ws-uid}
spec:
  members: [{user: alice, role: admin}]
  variables: {ENVIRONMENT: process-test, DATA_DIR: /home/jovyan/data}
  connections: [{name: warehouse, secretRef: {name: warehouse-connection, key: uri}}]
  secrets: [{name: SLACK_WEBHOOK_URL, secretRef: {name: slack, key: webhook-url}}]
";

const PROJECT: &str = "
apiVersion: dataworkspace.io/v1alpha1
kind: Project
metadata: {name: exploration, namespace: dw-analytics, uid: project-uid}
spec:
  runtime: Notebook
  notebook: {idleTimeout: 1h}
";

/// `idleTimeout: 1h` of the fixture, in seconds.
const IDLE_SECONDS: u64 = 3600;
/// How long the server may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Directories that exist only inside the pod (its image and volumes). A path under one of them
/// is moved under the test's root; any other path (`/tmp`, an emptyDir in the pod) is the
/// machine's own.
const POD_ONLY_ROOTS: [&str; 2] = ["/home/jovyan", "/etc/dataworkspace"];

/// Where a path of the pod is on this machine: `/home/jovyan/work` becomes
/// `<root>/home/jovyan/work`; paths outside [`POD_ONLY_ROOTS`] are unchanged. Applied to every
/// environment value and every string of the configuration file, so that a value that is a pod
/// path points to the same file here.
fn map_pod_path(root: &Path, value: &str) -> String {
    let inside = |prefix: &str| value == prefix || value.starts_with(&format!("{prefix}/"));
    if POD_ONLY_ROOTS.iter().any(|p| inside(p)) {
        root.join(value.trim_start_matches('/')).to_string_lossy().into_owned()
    } else {
        value.to_string()
    }
}

/// [`map_pod_path`] over every string of a JSON document.
fn map_json(root: &Path, value: &mut Value) {
    match value {
        Value::String(s) => *s = map_pod_path(root, s),
        Value::Array(items) => items.iter_mut().for_each(|v| map_json(root, v)),
        Value::Object(map) => map.values_mut().for_each(|v| map_json(root, v)),
        _ => {}
    }
}

fn parse<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{yaml}"))
}

/// What the operator generates for the fixture, and the objects the pod reads.
struct Generated {
    children: Vec<Child>,
    /// The workspace's variables ConfigMap (the container's `envFrom`).
    variables: ConfigMap,
}

impl Generated {
    fn build() -> Generated {
        let users: Vec<Valid<User>> = vec![parse::<User>(USERS).into()];
        let workspace: Workspace = parse(WORKSPACE);
        let project: Project = parse(PROJECT);
        let config = Config::default();
        let observed = Observed { identities: Identities::new(&users, &config), ..Observed::default() };
        let workspace = validate(&workspace, &observed).expect("the fixture Workspace validates");
        let variables = workspace::build::build(&workspace, &config, None).variables;
        let project = runtime::validate(&project, workspace).expect("the fixture Project validates");
        Generated { children: runtime::build(&project, &config), variables }
    }

    fn statefulset(&self) -> &StatefulSet {
        self.children
            .iter()
            .find_map(|c| if let Child::StatefulSet(s) = c { Some(s) } else { None })
            .expect("a Notebook has a StatefulSet")
    }

    fn pod(&self) -> PodSpec {
        self.statefulset().spec.clone().and_then(|s| s.template.spec).expect("a pod template")
    }

    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        let own = self.children.iter().find_map(|c| match c {
            Child::ConfigMap(m) if m.metadata.name.as_deref() == Some(name) => Some(m),
            _ => None,
        });
        own.or_else(|| (self.variables.metadata.name.as_deref() == Some(name)).then_some(&self.variables))
    }

    /// The generated Secret's name and the key that holds the token.
    fn token_ref(&self) -> (String, String) {
        let secret = self
            .children
            .iter()
            .find_map(|c| if let Child::GeneratedSecret(s) = c { Some(s) } else { None })
            .expect("a Notebook has a generated Secret");
        assert_eq!(secret.keys, vec![(notebook::TOKEN_KEY.to_string(), Encoding::Hex)]);
        (secret.metadata.name.clone().unwrap_or_default(), notebook::TOKEN_KEY.into())
    }
}

/// The container's environment as the kubelet makes it: `envFrom` first, then `env` (which
/// wins). Secret values are test values, the token secret's key the given token. Every value is
/// mapped with [`map_pod_path`].
fn pod_env(
    generated: &Generated,
    container: &Container,
    root: &Path,
    token: &str,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container.env_from.iter().flatten() {
        let Some(reference) = &source.config_map_ref else {
            panic!("envFrom other than configMapRef is not supported by this test: {source:?}")
        };
        match generated.config_map(&reference.name) {
            Some(map) => {
                for (key, value) in map.data.iter().flatten() {
                    let name = format!("{}{key}", source.prefix.as_deref().unwrap_or(""));
                    env.insert(name, map_pod_path(root, value));
                }
            }
            None if reference.optional == Some(true) => {}
            None => panic!("envFrom names ConfigMap {} that nothing makes", reference.name),
        }
    }
    let (token_secret, token_key) = generated.token_ref();
    for EnvVar { name, value, value_from } in container.env.iter().flatten() {
        let value = match (value, value_from) {
            (Some(value), None) => value.clone(),
            (None, Some(from)) => {
                let Some(secret) = &from.secret_key_ref else {
                    panic!("{name}: valueFrom other than secretKeyRef is not supported by this test")
                };
                if secret.name == token_secret && secret.key == token_key {
                    token.to_string()
                } else {
                    format!("test-value-of-{}-{}", secret.name, secret.key)
                }
            }
            other => panic!("{name}: unexpected value {other:?}"),
        };
        assert!(!value.contains("$("), "{name}: $(VAR) expansion is not supported by this test");
        env.insert(name.clone(), map_pod_path(root, &value));
    }
    env
}

/// Lays out the container's volume mounts under `root` as a fresh pod sees them: ConfigMap
/// volumes as their files, the claim templates and emptyDirs as empty directories. The
/// configuration file is mapped with [`map_json`], and then changed as [`server_config`] says.
/// Returns the path of the configuration file.
fn lay_out_volumes(
    generated: &Generated,
    pod: &PodSpec,
    container: &Container,
    root: &Path,
    port: u16,
    allow_root: bool,
) -> PathBuf {
    let claims: Vec<String> = generated
        .statefulset()
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let mut config_file = None;
    for mount in container.volume_mounts.iter().flatten() {
        assert!(mount.sub_path.is_none() && mount.sub_path_expr.is_none(), "subPath is not supported here");
        let target = PathBuf::from(map_pod_path(root, &mount.mount_path));
        let own = target.starts_with(root);
        let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
        match volume {
            // A fresh volume from a claim template: an empty directory.
            None if claims.contains(&mount.name) => fs::create_dir_all(&target).unwrap(),
            None => panic!("volume {} is neither a pod volume nor a claim template", mount.name),
            Some(v) if v.empty_dir.is_some() => {
                if own {
                    fs::create_dir_all(&target).unwrap();
                } else {
                    assert!(target.is_dir(), "{} (an emptyDir in the pod) is missing here", target.display());
                }
            }
            Some(v) if v.config_map.is_some() => {
                let source = v.config_map.as_ref().unwrap();
                assert!(source.items.is_none(), "ConfigMap items are not supported by this test");
                let map = generated.config_map(&source.name).unwrap_or_else(|| {
                    panic!("volume {} names ConfigMap {} that nothing makes", v.name, source.name)
                });
                assert!(
                    own,
                    "ConfigMap volume at {} would be written outside the test's root",
                    mount.mount_path
                );
                fs::create_dir_all(&target).unwrap();
                for (file, content) in map.data.iter().flatten() {
                    let path = target.join(file);
                    let content = if file == notebook::CONFIG_FILE {
                        config_file = Some(path.clone());
                        server_config(root, content, port, allow_root)
                    } else {
                        content.clone()
                    };
                    fs::write(&path, content).unwrap();
                }
            }
            Some(v) => panic!("volume {} has a source this test does not lay out: {v:?}", v.name),
        }
    }
    config_file.expect("a volume mounts the Jupyter Server configuration file")
}

/// The generated configuration with its paths mapped, and only `ServerApp.port` and
/// `ServerApp.ip` changed: the pod's `0.0.0.0:8888` would collide with anything else on a
/// shared machine (and expose the server beyond it), so the server listens on a free port of
/// 127.0.0.1. That the server answers on that port at all proves it read this file: the port is
/// set nowhere else.
///
/// One more setting only where this test runs as root (CI machines do): `ServerApp.allow_root`,
/// without which Jupyter Server refuses to start as root. The pod never runs as root (its
/// security context says `runAsNonRoot`, which the caller checks), and running the server as
/// the pod's user here is not possible in general (the interpreter may be unreadable to it).
fn server_config(root: &Path, generated: &str, port: u16, allow_root: bool) -> String {
    let mut config: Value = serde_json::from_str(generated).expect("the configuration is JSON");
    map_json(root, &mut config);
    let server = config.get_mut("ServerApp").and_then(Value::as_object_mut).expect("a ServerApp section");
    assert_eq!(server.get("port"), Some(&json!(8888)), "the pod's port");
    server.insert("port".into(), json!(port));
    server.insert("ip".into(), json!("127.0.0.1"));
    if allow_root {
        server.insert("allow_root".into(), json!(true));
    }
    serde_json::to_string_pretty(&config).unwrap()
}

/// The running server: stopped on drop, also when the test fails. It runs in its own process
/// group, so kernels and terminals it started are stopped with it.
struct Server {
    process: Process,
    log: PathBuf,
}

impl Server {
    fn pid(&self) -> String {
        self.process.id().to_string()
    }

    fn signal(&self, signal: &str, target: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, as the kubelet stops a container, and the exit status within `timeout`.
    fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.process.try_wait() {
            return Some(status);
        }
        self.signal("-TERM", &self.pid());
        self.wait_for_exit(timeout)
    }

    fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until the log has a line containing `text`.
    fn await_log(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the server log has no line with {text:?} after {timeout:?}; log ({}):\n{}",
                self.log.display(),
                self.log_tail()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    /// Stops the server when the test did not (it failed): SIGTERM to its process group (the
    /// server, its kernels and terminals), then SIGKILL. The group is signalled only while its
    /// leader has not been reaped, so the group id cannot belong to anything else.
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let group = format!("-{}", self.pid());
            self.signal("-TERM", &group);
            if self.wait_for_exit(Duration::from_secs(10)).is_none() {
                eprintln!("the server did not stop on SIGTERM within 10 s; killing its process group");
                self.signal("-KILL", &group);
                let _ = self.process.wait();
            }
        }
    }
}

/// A response of the server.
struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request to the server on `port`, with an optional token and JSON body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Response, String> {
    let authorization = token.map(|t| format!("token {t}"));
    let mut headers = Vec::new();
    if let Some(authorization) = &authorization {
        headers.push(("Authorization", authorization.as_str()));
    }
    if method != "GET" {
        headers.push(("Content-Type", "application/json"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let response = support::http::request(address, method, path, &headers, &body)?;
    Ok(Response { status: response.status, body: response.body })
}

/// Runs `code` in a kernel through its WebSocket (`/api/kernels/<id>/channels`, the JSON
/// protocol the browser uses) and returns what it printed.
fn execute(port: u16, token: &str, kernel_id: &str, code: &str) -> Result<String, String> {
    let mut socket = WebSocket::connect(
        port,
        &format!("/api/kernels/{kernel_id}/channels?session_id=process-test"),
        token,
    )?;
    let msg_id = format!("process-test-{}", random_token());
    let request = json!({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": "process-test", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": false, "store_history": false, "user_expressions": {},
                    "allow_stdin": false, "stop_on_error": true},
    });
    socket.send_text(&request.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed = String::new();
    while Instant::now() < deadline {
        let Some(text) = socket.receive_text()? else { return Err("the server closed the WebSocket".into()) };
        let message: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text:.200}"))?;
        if message["parent_header"]["msg_id"] != json!(msg_id) {
            continue;
        }
        let content = &message["content"];
        match message["msg_type"].as_str().unwrap_or_default() {
            "stream" => printed.push_str(content["text"].as_str().unwrap_or_default()),
            "error" => return Err(format!("the code raised {}: {}", content["ename"], content["evalue"])),
            "status" if content["execution_state"] == "idle" => return Ok(printed),
            _ => {}
        }
    }
    Err("no answer from the kernel within 60 s".into())
}

/// The client side of a WebSocket (RFC 6455), as much as [`execute`] needs: unfragmented text
/// frames.
struct WebSocket {
    stream: TcpStream,
}

impl WebSocket {
    fn connect(port: u16, path: &str, token: &str) -> Result<WebSocket, String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream =
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| e.to_string())?;
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: ZGF0YXdvcmtzcGFjZS10ZXN0\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: token {token}\r\n\r\n"
        );
        stream.write_all(handshake.as_bytes()).map_err(|e| e.to_string())?;
        // The response head, byte by byte: frames may follow it at once.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).map_err(|e| format!("reading the handshake: {e}"))?;
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            return Err(format!("no WebSocket: {head}"));
        }
        Ok(WebSocket { stream })
    }

    fn send_text(&mut self, text: &str) -> Result<(), String> {
        let payload = text.as_bytes();
        let mut frame = vec![0x81]; // FIN, text
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend((n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend((n as u64).to_be_bytes());
            }
        }
        let mask = [0x5a, 0x17, 0xc3, 0x08]; // clients must mask; any key will do
        frame.extend(mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).map_err(|e| e.to_string())
    }

    /// The next text message; `None` when the server closes. Other frames are skipped.
    fn receive_text(&mut self) -> Result<Option<String>, String> {
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).map_err(|e| e.to_string())?;
            let opcode = head[0] & 0x0f;
            let length = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.stream.read_exact(&mut n).map_err(|e| e.to_string())?;
                    u16::from_be_bytes(n) as usize
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.stream.read_exact(&mut n).map_err(|e| e.to_string())?;
                    u64::from_be_bytes(n) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; length];
            self.stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
            match opcode {
                0x1 => return Ok(Some(String::from_utf8_lossy(&payload).into_owned())),
                0x8 => return Ok(None),
                _ => {}
            }
        }
    }
}

/// The effective user id of this process (from `/proc/self/status`).
fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().nth(1)?.parse().ok()))
        .expect("the effective uid from /proc/self/status")
}

fn random_token() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 24];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    let dir =
        if target.is_absolute() { target } else { manifest_dir().join(target) }.join("notebook-process");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The version pinned for `package` in the requirements file.
fn pinned(requirements: &Path, package: &str) -> String {
    fs::read_to_string(requirements)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{package}==")))
        .map(|v| v.trim_end_matches(['\\', ' ']).to_string())
        .unwrap_or_else(|| panic!("{package} is not pinned in {}", requirements.display()))
}

/// The notebook virtualenv: `hack/python-env.sh` with the notebook's pins.
fn python_env(name: &str, requirements: &Path) -> PathBuf {
    support::venv::python_env(name, requirements, "jupyter")
}

/// A local, explicit opt-out; CI never skips. Written to the process's stderr directly, past
/// the test harness's output capture, so that a skip is never silent.
fn skipped() -> bool {
    let loud = |message: &str| {
        let _ = writeln!(std::io::stderr(), "\n*** {message} ***\n");
    };
    match (std::env::var_os("DWO_PROCESS_SKIP"), std::env::var_os("CI")) {
        (Some(_), None) => {
            loud(
                "SKIPPED: notebook_process (DWO_PROCESS_SKIP is set): the generated Notebook command and \
                 configuration were NOT run with the real JupyterLab",
            );
            true
        }
        (Some(_), Some(_)) => {
            loud("DWO_PROCESS_SKIP is ignored: CI is set, and CI never skips");
            false
        }
        _ => false,
    }
}

#[test]
fn the_generated_command_and_configuration_start_the_real_jupyterlab() {
    if skipped() {
        return;
    }
    let requirements = manifest_dir().join("hack/python/notebook.txt");
    let venv = python_env("notebook", &requirements);

    // What the operator generates.
    let generated = Generated::build();
    let pod = generated.pod();
    assert!(pod.init_containers.is_none(), "the fixture has no source: nothing runs before the server");
    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    let config_map = generated
        .children
        .iter()
        .find_map(|c| match c {
            Child::ConfigMap(m) => m.data.as_ref()?.get(notebook::CONFIG_FILE).cloned(),
            _ => None,
        })
        .expect("a ConfigMap holds the configuration file");
    let generated_config: Value = serde_json::from_str(&config_map).unwrap();
    assert_eq!(generated_config["MappingKernelManager"]["cull_idle_timeout"], json!(IDLE_SECONDS));

    // The pod's file system and environment, under a temporary root.
    let root = TempDir::new("dwo-notebook-process");
    let root = root.0.as_path();
    let port = free_port();
    let token = random_token();
    let as_root = effective_uid() == 0;
    if as_root {
        let security = container.security_context.as_ref().expect("a container security context");
        assert_eq!(security.run_as_non_root, Some(true), "the pod must never run the server as root");
        eprintln!(
            "running as root: the mapped configuration also sets ServerApp.allow_root (the pod runs as non-root)"
        );
    }
    let config_file = lay_out_volumes(&generated, &pod, container, root, port, as_root);
    let env = pod_env(&generated, container, root, &token);
    assert_eq!(
        env.get("JUPYTER_CONFIG_PATH").map(PathBuf::from).as_deref(),
        config_file.parent(),
        "JUPYTER_CONFIG_PATH names the directory the configuration is mounted in"
    );
    assert_eq!(env["ENVIRONMENT"], "process-test", "workspace variables reach the container");
    assert!(!env.contains_key("PATH"), "the pod's PATH comes from the image");
    let root_dir = map_pod_path(root, generated_config["ServerApp"]["root_dir"].as_str().unwrap());

    // The container's command and args, exactly; the venv plays the image.
    let command: Vec<String> =
        container.command.iter().flatten().chain(container.args.iter().flatten()).cloned().collect();
    assert!(!command.is_empty(), "the container has a command");
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let out = out_dir();
    let log = out.join("server.log");
    let stdout = File::create(&log).unwrap();
    let stderr = stdout.try_clone().unwrap();
    let mut description = format!("command: {command:?}\nconfig file: {}\n", config_file.display());
    for (name, value) in &env {
        description.push_str(&format!("env {name}={value}\n"));
    }
    description.push_str(&format!("config:\n{}\n", fs::read_to_string(&config_file).unwrap()));
    fs::write(out.join("pod.txt"), &description).unwrap();
    let mut process = Command::new(&command[0]);
    process
        .args(&command[1..])
        .env_clear()
        .envs(&env)
        .env("PATH", &path)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    for name in ["LANG", "LC_ALL", "LC_CTYPE"] {
        if let Some(value) = std::env::var_os(name) {
            process.env(name, value);
        }
    }
    let started = Instant::now();
    let mut server = Server {
        process: process.spawn().unwrap_or_else(|e| panic!("starting {command:?}: {e}")),
        log: log.clone(),
    };
    eprintln!("started {command:?} on 127.0.0.1:{port}; log: {}", log.display());

    // Ready: the status API answers with the token.
    let status = loop {
        if let Ok(Some(exit)) = server.process.try_wait() {
            panic!(
                "the server exited with {exit} before answering; log ({}):\n{}",
                log.display(),
                server.log_tail()
            );
        }
        match request(port, "GET", "/api/status", Some(&token), None) {
            Ok(response) if response.status == 200 => break response,
            _ if started.elapsed() > START_TIMEOUT => panic!(
                "the server did not answer /api/status on 127.0.0.1:{port} within {START_TIMEOUT:?}; log ({}):\n{}",
                log.display(),
                server.log_tail()
            ),
            _ => thread::sleep(Duration::from_millis(250)),
        }
    };
    eprintln!("the server answered after {:.1?}", started.elapsed());
    assert!(status.json().get("started").is_some(), "a status document: {}", status.body);

    // Authentication: the token of JUPYTER_TOKEN, and nothing else.
    let anonymous = request(port, "GET", "/api/status", None, None).unwrap();
    assert_eq!(anonymous.status, 403, "without the token: {}", anonymous.body);
    let wrong = request(port, "GET", "/api/status", Some("not-the-token"), None).unwrap();
    assert_eq!(wrong.status, 403, "with another token: {}", wrong.body);

    // The base URL `/`: the API is at /api, and it is the pinned Jupyter Server.
    let api = request(port, "GET", "/api", None, None).unwrap();
    assert_eq!(api.status, 200, "/api: {}", api.body);
    assert_eq!(api.json()["version"], json!(pinned(&requirements, "jupyter-server")), "/api: {}", api.body);

    // The root directory of the configuration serves contents.
    server.await_log(&format!("Serving notebooks from local directory: {root_dir}"), Duration::from_secs(5));
    let contents = request(port, "GET", "/api/contents", Some(&token), None).unwrap();
    assert_eq!(contents.status, 200, "/api/contents: {}", contents.body);

    // Kernels: the python3 kernel is there and starts; culling of the configuration is in effect
    // (Jupyter Server starts its culler, and logs it, with the first kernel).
    let specs = request(port, "GET", "/api/kernelspecs", Some(&token), None).unwrap();
    assert_eq!(specs.status, 200, "/api/kernelspecs: {}", specs.body);
    assert!(specs.json()["kernelspecs"].get("python3").is_some(), "no python3 kernel: {}", specs.body);
    // A notebook session, as JupyterLab opens one: its kernel starts in the notebook's directory.
    let notebook = json!({"path": "process-test.ipynb", "type": "notebook", "name": "",
                          "kernel": {"name": "python3"}});
    let session = request(port, "POST", "/api/sessions", Some(&token), Some(&notebook)).unwrap();
    assert_eq!(session.status, 201, "opening a notebook session: {}", session.body);
    let session_id = session.json()["id"].as_str().expect("a session id").to_string();
    let kernel_id = session.json()["kernel"]["id"].as_str().expect("a kernel id").to_string();
    server.await_log(
        &format!("Culling kernels with idle durations > {IDLE_SECONDS} seconds at 60 second intervals"),
        Duration::from_secs(10),
    );
    // The kernel runs code, in the root directory and with the pod's environment.
    let seen = execute(
        port,
        &token,
        &kernel_id,
        "import json, os; print(json.dumps({'cwd': os.getcwd(), 'home': os.environ.get('HOME'), \
         'environment': os.environ.get('ENVIRONMENT')}))",
    )
    .unwrap_or_else(|e| panic!("running code in the kernel: {e}; log:\n{}", server.log_tail()));
    let seen: Value =
        serde_json::from_str(seen.trim()).unwrap_or_else(|e| panic!("kernel output {seen:?}: {e}"));
    assert_eq!(seen["cwd"], json!(root_dir), "the kernel's working directory");
    assert_eq!(seen["home"], json!(env["HOME"]), "the kernel's HOME");
    assert_eq!(seen["environment"], json!("process-test"), "a workspace variable in the kernel");
    let closed = request(port, "DELETE", &format!("/api/sessions/{session_id}"), Some(&token), None).unwrap();
    assert_eq!(closed.status, 204, "closing the session: {}", closed.body);
    let kernels = request(port, "GET", "/api/kernels", Some(&token), None).unwrap();
    assert_eq!(kernels.json(), json!([]), "closing the session stops its kernel");

    // Terminals: culled after the same idle time.
    let terminal = request(port, "POST", "/api/terminals", Some(&token), Some(&json!({}))).unwrap();
    assert_eq!(terminal.status, 200, "starting a terminal: {}", terminal.body);
    let terminal_name = terminal.json()["name"].as_str().expect("a terminal name").to_string();
    server.await_log(
        &format!("Culling terminals with inactivity > {IDLE_SECONDS} seconds at 60 second intervals"),
        Duration::from_secs(10),
    );
    let deleted =
        request(port, "DELETE", &format!("/api/terminals/{terminal_name}"), Some(&token), None).unwrap();
    assert_eq!(deleted.status, 204, "stopping the terminal: {}", deleted.body);

    // Every setting of the file is one the server knows.
    let log_text = server.log();
    let unknown: Vec<&str> = log_text.lines().filter(|l| l.contains("not recognized by")).collect();
    assert!(unknown.is_empty(), "settings the server does not know:\n{}", unknown.join("\n"));

    // It stops on SIGTERM, as the kubelet stops the container.
    let exit = server.terminate(Duration::from_secs(30));
    assert!(exit.is_some(), "the server did not stop within 30 s of SIGTERM; log:\n{}", server.log_tail());
    eprintln!("the server stopped on SIGTERM with {}; total {:.1?}", exit.unwrap(), started.elapsed());
}

/// The kernel spec the Studio gets for a ready Python environment, run by the real Jupyter
/// (`jupyter run`, the Jupyter client's own kernel launcher) from the notebook virtualenv: the
/// kernel is discovered through `JUPYTER_PATH` and imports what the environment holds.
#[test]
fn a_python_environment_kernel_spec_runs_and_imports_the_environment() {
    use dataworkspace_operator::build::python_env::{KERNELS_ROOT, Ready, kernel_specs};
    if skipped() {
        return;
    }
    let venv = python_env("notebook", &manifest_dir().join("hack/python/notebook.txt"));
    let root = TempDir::new("pyenv-kernel");
    let minor = Command::new(venv.join("bin/python"))
        .args(["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"])
        .output()
        .expect("the venv's python");
    let version = String::from_utf8_lossy(&minor.stdout).trim().to_string();
    // A build of the environment, as mounted at <KERNELS_ROOT>/<name>, mapped under the root.
    let envs = root.0.join("envs");
    let site = envs.join(format!("analytics/lib/python{version}/site-packages"));
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("dwo_probe.py"), "VALUE = 'from the environment'\n").unwrap();
    let ready =
        Ready { name: "analytics".into(), python_version: version, directory: "h-u".into(), image: None };
    let specs = kernel_specs(&[ready]);
    let spec = specs["analytics"].replace(KERNELS_ROOT, &envs.display().to_string());
    let jupyter_path = root.0.join("jupyter");
    fs::create_dir_all(jupyter_path.join("kernels/analytics")).unwrap();
    fs::write(jupyter_path.join("kernels/analytics/kernel.json"), spec).unwrap();
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let jupyter = |args: &[&str]| {
        Command::new(venv.join("bin/jupyter"))
            .args(args)
            .env("PATH", &path)
            .env("JUPYTER_PATH", &jupyter_path)
            .env("HOME", &root.0)
            .env("JUPYTER_RUNTIME_DIR", root.0.join("runtime"))
            .current_dir(&root.0)
            .output()
            .expect("running jupyter")
    };
    let listed = jupyter(&["kernelspec", "list", "--json"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("\"analytics\""), "the kernel is not discovered: {listed}");
    fs::write(root.0.join("probe.py"), "import dwo_probe\nprint('probe:', dwo_probe.VALUE)\n").unwrap();
    let ran = jupyter(&["run", "--kernel", "analytics", "probe.py"]);
    let out = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success() && out.contains("probe: from the environment"),
        "the kernel did not import the environment ({}):\n{out}\n{}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
}
