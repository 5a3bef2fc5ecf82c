//! Process tests of the Spark runtime: the driver's command, arguments and configuration files
//! exactly as the operator generates them (the ConfigMap's `spark-defaults.conf` and executor
//! template, spark-submit's arguments with the kubelet's `$(VAR)` expansion), run with the real
//! Spark (pyspark 4.1.2, pinned with hashes in `hack/python/spark.txt`, installed into a cached
//! virtualenv from PyPI; Java from the machine's distribution packages). Only the master is
//! local (`local[2]` instead of the Kubernetes API server) and the paths are mapped to a
//! temporary directory: the Spark Connect server starts with the generated ports and
//! configuration and answers a query from a Connect client; a batch application runs with the
//! generated submit arguments, and spark-submit's exit status is the application's, for a
//! success and a failure.
//!
//! They need python3 (with venv), PyPI and `java` (17 or later) on PATH; they fail, saying so,
//! when one is missing.

mod support;

use std::{
    collections::BTreeMap,
    fs,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child as Process, Command, Output, Stdio},
    time::{Duration, Instant},
};

use dataworkspace_operator::{
    build::children::Child,
    config::Config,
    controller::{
        Valid,
        identity::Identities,
        workspace::validate::{Observed, validate},
    },
    crd::{Project, User, Workspace},
    runtime::{self, spark},
};
use k8s_openapi::api::core::v1::{Container, Pod};
use support::temp::TempDir;

const WORKSPACE: &str = "metadata: {name: analytics, uid: uid-1}\nspec:\n  members: [{user: alice, role: admin}]\n  variables: {ENVIRONMENT: test}\n  gitRepositories: [{name: pipelines, url: 'https://git.example.com/analytics/pipelines.git', ref: main}]\n";
const CONNECT: &str = "metadata: {name: shared-spark, namespace: dw-analytics, uid: uid-p}\nspec:\n  runtime: Spark\n  spark:\n    mode: Connect\n    driver: {resources: {requests: {cpu: '1', memory: 1Gi}}}\n    executors: {instances: 1, maxInstances: 4, resources: {requests: {cpu: 500m, memory: 1Gi}}}\n    conf: {spark.sql.shuffle.partitions: '4'}\n";
const BATCH: &str = "metadata: {name: report, namespace: dw-analytics, uid: uid-b}\nspec:\n  runtime: Spark\n  source: {repository: pipelines}\n  spark:\n    mode: Batch\n    driver: {resources: {requests: {memory: 1Gi}}}\n    conf: {spark.sql.shuffle.partitions: '4'}\n    application:\n      mainApplicationFile: jobs/report.py\n      args: ['--rows', '1000', '$(HOME)']\n      run: 2\n";

/// The report: sums a range on Spark, prints what it was given, and fails on request.
const REPORT: &str = r#"import sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()
rows = int(sys.argv[sys.argv.index("--rows") + 1])
total = spark.range(rows).selectExpr("sum(id) AS total").collect()[0]["total"]
print(f"REPORT total={total} partitions={spark.conf.get('spark.sql.shuffle.partitions')} args={sys.argv[1:]}")
spark.stop()
if "--fail" in sys.argv:
    raise SystemExit("the report failed on purpose")
"#;

/// The driver container and the ConfigMap's files of a project built from `manifest`.
fn driver_of(manifest: &str) -> (Container, BTreeMap<String, String>) {
    let users: Vec<Valid<User>> = vec![
        serde_yaml::from_str::<User>(
            "metadata: {name: alice}\nspec: {username: alice@example.com, email: alice@example.com}",
        )
        .unwrap()
        .into(),
    ];
    let config = Config::default();
    let observed = Observed { identities: Identities::new(&users, &config), ..Observed::default() };
    let workspace: Workspace = serde_yaml::from_str(WORKSPACE).unwrap();
    let workspace = validate(&workspace, &observed).expect("the fixture Workspace validates");
    let project: Project = serde_yaml::from_str(manifest).unwrap();
    let mut project = runtime::validate(&project, workspace).expect("the fixture Project validates");
    // As the operator runs it: with the executor policy installed.
    if let runtime::RuntimeSpec::Spark(spark) = &mut project.runtime {
        spark.fenced = true;
    }
    let children = runtime::build(&project, &config);
    let files = children
        .iter()
        .find_map(|c| if let Child::ConfigMap(m) = c { m.data.clone() } else { None })
        .expect("the configuration ConfigMap");
    let pod = children
        .iter()
        .find_map(|c| match c {
            Child::Deployment(d) => d.spec.clone()?.template.spec,
            Child::Job(j) => j.spec.clone()?.template.spec,
            _ => None,
        })
        .expect("the driver's pod");
    (pod.containers[0].clone(), files)
}

/// The pod's files under `root`: the ConfigMap at its mount path, with the master made local.
fn lay_out(root: &Path, files: &BTreeMap<String, String>) -> PathBuf {
    let conf_dir = root.join(spark::CONF_DIR.trim_start_matches('/'));
    fs::create_dir_all(&conf_dir).unwrap();
    for (name, content) in files {
        let content = if name == spark::CONF_FILE {
            assert!(content.contains("spark.master=k8s://https://kubernetes.default.svc:443\n"), "{content}");
            content.replace("spark.master=k8s://https://kubernetes.default.svc:443", "spark.master=local[2]")
        } else {
            content.clone()
        };
        fs::write(conf_dir.join(name), content).unwrap();
    }
    let template: Pod =
        serde_yaml::from_str(&files[spark::EXECUTOR_TEMPLATE]).expect("the executor template is a Pod");
    assert!(template.spec.is_some());
    fs::create_dir_all(root.join("tmp")).unwrap();
    conf_dir
}

/// spark-submit's arguments as the kubelet passes them: `$(VAR)` expanded from the container's
/// environment (here: this pod's address and name), `$$` unescaped; the pod's paths under `root`.
fn expand(args: &[String], root: &Path) -> Vec<String> {
    let vars = [("SPARK_DRIVER_HOST", "127.0.0.1"), ("SPARK_DRIVER_POD_NAME", "driver-0")];
    args.iter()
        .map(|a| {
            let mut out = String::new();
            let mut rest = a.as_str();
            while let Some(i) = rest.find('$') {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
                if let Some(after) = rest.strip_prefix("$$") {
                    out.push('$');
                    rest = after;
                } else if let Some((name, value)) =
                    vars.iter().find(|(n, _)| rest.starts_with(&format!("$({n})")))
                {
                    out.push_str(value);
                    rest = &rest[name.len() + 3..];
                } else {
                    out.push('$');
                    rest = &rest[1..];
                }
            }
            out.push_str(rest);
            if out.starts_with('/')
                && !out.starts_with("//")
                && (out.starts_with("/opt/") || out.starts_with("/srv/"))
            {
                format!("{}{out}", root.display())
            } else {
                out
            }
        })
        .collect()
}

fn venv() -> PathBuf {
    support::venv::python_env(
        "spark",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/python/spark.txt"),
        "spark-submit",
    )
}

fn java_on_path() {
    let java = Command::new("java").arg("-version").output();
    assert!(
        java.as_ref().is_ok_and(|o| o.status.success()),
        "the Spark process tests need `java` (17 or later) on PATH, from the distribution's packages (Debian: default-jre-headless): {java:?}"
    );
}

/// spark-submit from the venv, as the image's /opt/spark/bin/spark-submit, with the pod's
/// environment (HOME mapped).
fn spark_submit(venv: &Path, driver: &Container, root: &Path) -> Command {
    assert_eq!(driver.command.as_deref(), Some(&["/opt/spark/bin/spark-submit".to_string()][..]));
    let mut command = Command::new(venv.join("bin/spark-submit"));
    command.args(expand(driver.args.as_deref().unwrap_or_default(), root)).stdin(Stdio::null());
    for var in driver.env.iter().flatten() {
        if let Some(value) = &var.value {
            let value =
                if value.starts_with('/') { format!("{}{value}", root.display()) } else { value.clone() };
            command.env(&var.name, value);
        }
    }
    command
        .env("PATH", format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default()));
    command.env("PYSPARK_PYTHON", venv.join("bin/python"));
    command
}

struct Running(Process);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_generated_connect_server_serves_a_connect_client() {
    java_on_path();
    let (driver, files) = driver_of(CONNECT);
    let root = TempDir::new("dwo-spark-connect");
    lay_out(root.path(), &files);
    let venv = venv();
    let port =
        driver.ports.iter().flatten().find(|p| p.name.as_deref() == Some("connect")).unwrap().container_port;
    assert_eq!(port, spark::CONNECT_PORT);
    let probe =
        driver.readiness_probe.as_ref().and_then(|p| p.tcp_socket.as_ref()).expect("a TCP readiness probe");
    assert_eq!(
        probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("connect".into())
    );
    let log = root.path().join("connect.log");
    let started = Instant::now();
    let server = Running(
        spark_submit(&venv, &driver, root.path())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting the Spark Connect server"),
    );
    let mut server = server;
    // What the readiness probe checks: the Connect port accepts connections.
    while TcpStream::connect(("127.0.0.1", u16::try_from(port).unwrap())).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "the Connect server exited with {status}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no Connect port within 180 s: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("Spark Connect server listening after {:.1?}", started.elapsed());
    let client = format!(
        "from pyspark.sql import SparkSession\n\
         s = SparkSession.builder.remote('sc://127.0.0.1:{port}').getOrCreate()\n\
         print('TOTAL', s.range(100).selectExpr('sum(id) AS t').collect()[0]['t'])\n\
         print('PARTITIONS', s.conf.get('spark.sql.shuffle.partitions'))\n\
         print('APP', s.conf.get('spark.app.name'))\n"
    );
    let output = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(&client)
        .output()
        .expect("running the Connect client");
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Connect client failed: {}\n{}\nserver log:\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr),
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(stdout.contains("TOTAL 4950"), "{stdout}");
    assert!(stdout.contains("PARTITIONS 4"), "the project's tuning reached the server: {stdout}");
    assert!(stdout.contains("APP shared-spark"), "{stdout}");
    eprintln!("Spark Connect answered a query {:.1?} after start", started.elapsed());
}

fn run_report(fail: bool) -> (Output, String) {
    java_on_path();
    let manifest = if fail { BATCH.replace("'$(HOME)']", "'$(HOME)', '--fail']") } else { BATCH.to_string() };
    let (driver, files) = driver_of(&manifest);
    let root = TempDir::new("dwo-spark-batch");
    lay_out(root.path(), &files);
    // The checkout, where git-sync links the repository.
    let main = driver.args.as_ref().unwrap().iter().find(|a| a.ends_with(".py")).unwrap().clone();
    assert_eq!(main, "/srv/app/pipelines/jobs/report.py");
    let file = root.path().join(main.trim_start_matches('/'));
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, REPORT).unwrap();
    let venv = venv();
    let started = Instant::now();
    let output = spark_submit(&venv, &driver, root.path()).output().expect("running spark-submit");
    eprintln!("the batch application ran in {:.1?} ({})", started.elapsed(), output.status);
    let text =
        format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output, text)
}

#[test]
fn the_generated_batch_submission_runs_the_application_and_reports_its_exit_status() {
    let (output, text) = run_report(false);
    assert!(output.status.success(), "{text}");
    // The arguments reach the application unchanged: `$(HOME)` is not expanded by the kubelet.
    assert!(text.contains("REPORT total=499500 partitions=4 args=['--rows', '1000', '$(HOME)']"), "{text}");
    let (output, text) = run_report(true);
    assert!(!output.status.success(), "a failing application makes spark-submit fail: {text}");
    assert!(text.contains("the report failed on purpose"), "{text}");
}
