//! The e2e harness: connects to the control plane of `KUBECONFIG`, installs the CRDs, runs the
//! operator binary against it, gives each test its own namespace, and dumps what a failed test
//! touched together with the operator log.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
    runtime::wait::{Condition, await_condition},
};
use serde::de::DeserializeOwned;

/// A test's outcome: `Err` carries what went wrong.
pub type TestResult = Result<(), String>;

/// Fails the test with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Turns any error into a test failure with context.
pub trait Context<T> {
    /// Adds what was being done.
    fn context(self, what: &str) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// How long a test waits for a condition before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// Everything the tests share.
pub struct Env {
    /// Client of the control plane.
    pub client: Client,
    /// The repository root (for `crds/` and `examples/`).
    pub repo: PathBuf,
    /// Where logs and dumps go.
    pub out_dir: PathBuf,
    operator: Mutex<Option<Operator>>,
    counter: AtomicU32,
}

/// The operator binary, running against the cluster.
pub struct Operator {
    child: Child,
    /// Address of its /metrics, /healthz and /readyz endpoint.
    pub address: SocketAddr,
}

impl Operator {
    /// Sends `signal` (`KILL`, `TERM`) and waits for the process to end; its exit status.
    pub fn signal(&mut self, signal: &str) -> Result<std::process::ExitStatus, String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args([&format!("-{signal}"), &pid]).status().context("kill")?;
        self.child.wait().context("waiting for the operator")
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the operator at `address` answers `/readyz` with 200.
pub async fn wait_ready(address: SocketAddr) -> TestResult {
    wait_until(WAIT, "the operator's /readyz to answer 200", || async move {
        Ok(http_get(address, "/readyz").map(|(code, _)| code == 200).unwrap_or(false))
    })
    .await
}

impl Env {
    /// Connects and prepares the cluster, or explains why it cannot.
    pub async fn setup() -> Result<Arc<Env>, String> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out_dir = repo.join("target").join("e2e");
        fs::create_dir_all(&out_dir).context("creating target/e2e")?;
        let unreachable = |e: String| {
            format!(
                "no Kubernetes control plane is reachable ({e}).\n\
                 The e2e tests need one: run `make test` (starts a local control plane), or \
                 `make cluster-up` and `eval \"$(make -s cluster-env)\"` before `cargo test --test e2e`."
            )
        };
        if std::env::var_os("KUBECONFIG").is_none() {
            return Err(unreachable("KUBECONFIG is not set".into()));
        }
        let client = Client::try_default().await.map_err(|e| unreachable(e.to_string()))?;
        tokio::time::timeout(Duration::from_secs(15), client.apiserver_version())
            .await
            .map_err(|_| unreachable("no answer within 15 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;

        // What an installation provides: CRDs and roles; and what the cluster lacks: volumes.
        // The GitOps rendering of the chart: CRDs, roles, admission policies, and the operator's
        // ServiceAccount and least-privilege ClusterRole (its Deployment's pods are simulated by
        // kwok; the operator under test is this suite's own process).
        // (Forced: on a cluster kept from an earlier run, Helm may own these fields.)
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            &repo.join("deploy").to_string_lossy(),
        ])?;
        kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &repo.join("hack/cluster-storage.yaml").to_string_lossy(),
        ])?;
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &repo.join("crds").to_string_lossy(),
        ])?;
        // Refresh kubectl's discovery cache, which may predate the CRDs (their category included).
        kubectl(&["api-resources", "--api-group=dataworkspace.io"])?;
        // The PythonEnvironment requester policy (a MutatingAdmissionPolicy) needs the new
        // kind's schema, which the API server learns a moment after the CRD is established;
        // until then it refuses PythonEnvironments as unavailable.
        let probe = "apiVersion: dataworkspace.io/v1alpha1\nkind: PythonEnvironment\nmetadata: {name: probe, namespace: default}\nspec: {packages: [six]}\n";
        wait_until(WAIT, "the API server to admit PythonEnvironments", || async move {
            Ok(kubectl_with_input(&["create", "--dry-run=server", "-f", "-"], probe).is_ok())
        })
        .await?;

        let env =
            Arc::new(Env { client, repo, out_dir, operator: Mutex::new(None), counter: AtomicU32::new(0) });
        env.start_operator().await?;
        Ok(env)
    }

    /// Starts the operator binary and waits until it reports ready.
    pub async fn start_operator(&self) -> TestResult {
        self.start_operator_with(&[]).await
    }

    /// Starts the operator binary with extra `run` flags and waits until it reports ready.
    pub async fn start_operator_with(&self, flags: &[&str]) -> TestResult {
        let operator = self.spawn_operator(flags, &[], "operator.log")?;
        let address = operator.address;
        *self.operator.lock().unwrap() = Some(operator);
        wait_ready(address).await
    }

    /// Starts another operator process (not the suite's own) with extra `run` flags and
    /// environment, logging to `target/e2e/<log>`; it is not waited for.
    pub fn spawn_operator(
        &self,
        flags: &[&str],
        envs: &[(&str, &str)],
        log: &str,
    ) -> Result<Operator, String> {
        let address = free_address()?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out_dir.join(log))
            .context("opening the operator log")?;
        let child = Command::new(env!("CARGO_BIN_EXE_dataworkspace-operator"))
            .args(["run", "--listen-address", &address.to_string()])
            .args(flags)
            .env("RUST_LOG", "info,dataworkspace_operator=debug")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log file")?)
            .stderr(log)
            .spawn()
            .context("starting the operator binary")?;
        Ok(Operator { child, address })
    }

    /// Stops the operator (SIGTERM, then waits for it to exit).
    pub fn stop_operator(&self) -> TestResult {
        if let Some(mut operator) = self.operator.lock().unwrap().take() {
            let status = operator.signal("TERM")?;
            ensure!(status.success(), "the operator exited with {status} after SIGTERM");
        }
        Ok(())
    }

    /// Whether the suite's operator process has ended by itself.
    pub fn operator_exited(&self) -> bool {
        self.operator.lock().unwrap().as_mut().is_none_or(|o| o.exited().is_some())
    }

    /// The address of the running operator's HTTP endpoint.
    pub fn operator_address(&self) -> Option<SocketAddr> {
        self.operator.lock().unwrap().as_ref().map(|o| o.address)
    }

    /// The operator's log file.
    pub fn operator_log(&self) -> PathBuf {
        self.out_dir.join("operator.log")
    }

    /// A unique, DNS-safe name with the given prefix.
    pub fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}-{}", std::process::id() % 10000, self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Creates a fresh namespace for one test.
    pub async fn namespace(&self, prefix: &str) -> Result<String, String> {
        let name = self.unique(&format!("e2e-{prefix}"));
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .context("creating the test namespace")?;
        Ok(name)
    }

    /// Deletes a test namespace (without waiting for it to go).
    pub async fn drop_namespace(&self, name: &str) {
        let _ = Api::<Namespace>::all(self.client.clone()).delete(name, &DeleteParams::default()).await;
    }

    /// What a failed test leaves behind for debugging: the objects it touched and the operator log.
    pub fn dump(&self, test: &str, namespaces: &[String]) -> String {
        let get = |args: &[&str]| kubectl(args).unwrap_or_else(|e| e);
        let mut summary = format!("==== dump for {test} ====\n");
        summary += &get(&["get", "dataworkspace", "-A", "-o", "wide"]);
        for ns in namespaces {
            summary += &get(&["get", "all,events", "-n", ns, "-o", "wide"]);
        }
        let log = fs::read_to_string(self.operator_log()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        summary += "---- operator log (last 40 lines) ----\n";
        summary += &tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        let path = self.out_dir.join(format!("{}.dump.txt", test.replace("::", "-")));
        let full =
            format!("{summary}\n---- objects ----\n{}", get(&["get", "dataworkspace", "-A", "-o", "yaml"]));
        let _ = fs::write(&path, full);
        format!("{summary}\n(objects as YAML in {})", path.display())
    }

    /// Path of a file in the repository.
    pub fn path(&self, relative: &str) -> String {
        self.repo.join(relative).to_string_lossy().into_owned()
    }
}

/// Runs the pinned kubectl (first on PATH) and returns stdout, or stderr as the error.
pub fn kubectl(args: &[&str]) -> Result<String, String> {
    let output = Command::new("kubectl").args(args).output().map_err(|e| format!("running kubectl: {e}"))?;
    kubectl_result(args, output)
}

/// Runs kubectl with `input` on standard input (`-f -` manifests).
pub fn kubectl_with_input(args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running kubectl: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .map_err(|e| format!("kubectl stdin: {e}"))?;
    let output = child.wait_with_output().map_err(|e| format!("running kubectl: {e}"))?;
    kubectl_result(args, output)
}

fn kubectl_result(args: &[&str], output: std::process::Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {} failed ({}): {} {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Polls `check` until it returns `Ok(true)`, failing after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = String::new();
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = e,
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what} {last_error}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits on a watch until the named object satisfies `condition`.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    condition: impl Condition<K>,
) -> Result<K, String>
where
    K: kube::Resource + Clone + std::fmt::Debug + DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => Ok(object),
        Ok(Ok(None)) => Err(format!("{name} was deleted while waiting for {what}")),
        Ok(Err(e)) => Err(format!("watching {name} for {what}: {e}")),
        Err(_) => Err(format!("timed out after {WAIT:?} waiting for {name}: {what}")),
    }
}

fn free_address() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("finding a free port")
}

/// A minimal HTTP/1.0 GET: the status code and body.
pub fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).context("timeout")?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").context("sending")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading")?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response:.80}"))?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// The `# expect: ` line of an invalid example.
pub fn expected_error(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| l.strip_prefix("# expect: ").map(str::to_string))
}
