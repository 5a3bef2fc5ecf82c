//! Process test of the Airflow runtime: the operator's generated configuration runs the real
//! Airflow. The pinned `apache-airflow` (`hack/python/airflow.txt`, a cached virtualenv from
//! PyPI) and a PostgreSQL from the distribution's packages (`hack/postgres.sh`) run the commands
//! of the migration Job and of the five components with exactly the environment their pods get
//! (Secret and ConfigMap values resolved, `$(VAR)` expanded as the kubelet does), the operator's
//! files where the pods mount them, and the pods' paths and Service addresses mapped to this
//! machine. Then:
//! - the migration succeeds;
//! - every component's probe passes (the API servers' health routes, the scheduler's health
//!   server, `airflow jobs check` for the DAG processor and the triggerer);
//! - a DAG from a Git checkout laid out as git-sync lays it out is parsed;
//! - through the auth manager, with the header the access layer's proxy sets, an admin unpauses
//!   and triggers it, a viewer may not, and nobody gets in without the header;
//! - its task runs on the LocalExecutor and reads the workspace's variables, secrets and
//!   connections through the Execution API (the scheduler itself holds none);
//! - its log is on the logs volume and readable through the API.
//!
//! git-sync itself is not run (its Go module is not served here); the checkout is laid out from
//! the generated git-sync environment (root, link) as git-sync v4 does: a worktree per commit
//! under `<root>/.worktrees/`, and a relative link.
//!
//! It needs python3 (with venv), PyPI, git, and PostgreSQL server binaries (installed from the
//! distribution by `hack/postgres.sh` when missing and root); it fails, saying so, without them.

mod support;

use support::free_port;

use std::{
    collections::BTreeMap,
    fs,
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child as Process, Command, Stdio},
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
    runtime::{
        self, RuntimeSpec,
        airflow::{AirflowRole, Migration, Rollout},
    },
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use support::{http, pod::PodWorld, temp::TempDir};

const WORKSPACE: &str = "metadata: {name: analytics, uid: uid-1}
spec:
  members: [{user: alice, role: admin}, {user: bob, role: viewer}]
  variables: {ENVIRONMENT: test}
  connections: [{name: warehouse, secretRef: {name: warehouse-connection, key: uri}}]
  secrets: [{name: SLACK_WEBHOOK_URL, secretRef: {name: slack, key: webhook-url}}]
  gitRepositories: [{name: pipelines, url: 'https://git.example.com/analytics/pipelines.git', ref: main}]
";
const PROJECT: &str = "metadata: {name: etl, namespace: dw-analytics, uid: uid-p}
spec:
  runtime: Airflow
  airflow:
    executor: LocalExecutor
    parallelism: 2
    dags: [{repository: pipelines, path: dags}]
    variables: {REPORT_RECIPIENTS: team@example.com}
    host: airflow.example.com
";
/// The DAG: its one task reads what the workspace shares, through the Execution API, and fails
/// unless every value is the workspace's.
const DAG: &str = r#"
from datetime import datetime

from airflow.sdk import DAG, task

with DAG(dag_id="hello", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):

    @task
    def greet():
        from airflow.sdk import Connection, Variable

        environment = Variable.get("ENVIRONMENT")
        webhook = Variable.get("SLACK_WEBHOOK_URL")
        recipients = Variable.get("REPORT_RECIPIENTS")
        warehouse = Connection.get("warehouse")
        print(f"hello from the task: {environment} {recipients} {warehouse.host} {len(webhook)}")
        assert environment == "test", environment
        assert webhook == "https://hooks.example.com/secret-path", "the secret"
        assert recipients == "team@example.com", recipients
        assert warehouse.host == "warehouse.example.com" and warehouse.login == "reader", warehouse

    greet()
"#;

fn address(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command as the PostgreSQL server's user: `postgres` when we are root (the server refuses to
/// run as root), else ourselves.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A process in its own group, stopped with its children (SIGTERM to the group, then SIGKILL)
/// when dropped.
struct Running {
    name: String,
    process: Process,
    log: PathBuf,
}

impl Running {
    fn start(name: &str, mut command: Command, logs: &Path) -> Running {
        let log = logs.join(format!("{name}.log"));
        let process = command
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::from(fs::File::create(&log).unwrap().try_clone().unwrap()))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Running { name: name.into(), process, log }
    }

    /// Panics with its log when it has exited.
    fn check(&mut self) {
        if let Ok(Some(status)) = self.process.try_wait() {
            panic!("{} exited with {status}:\n{}", self.name, tail(&self.log));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.process.id());
        let quiet =
            |signal: &str| Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
        let _ = quiet("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = quiet("-KILL");
        let _ = self.process.wait();
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Waits until `ready` holds, checking that `processes` still run; panics after `limit`.
fn wait_for(
    what: &str,
    limit: Duration,
    processes: &mut [&mut Running],
    mut ready: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return started.elapsed();
        }
        for p in processes.iter_mut() {
            p.check();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: Vec<String> = processes.iter().map(|p| format!("--- {}:\n{}", p.name, tail(&p.log))).collect();
    panic!("{what}: not within {limit:?}\n{}", logs.join("\n"));
}

/// The generated project, its children and its world.
struct Generated {
    children: Vec<Child>,
    name: String,
    namespace: String,
}

impl Generated {
    fn new() -> Generated {
        let users: Vec<Valid<User>> = [
            "metadata: {name: alice}\nspec: {username: alice@example.com, email: alice@example.com}",
            "metadata: {name: bob}\nspec: {username: bob@example.com, email: bob@example.com}",
        ]
        .iter()
        .map(|y| serde_yaml::from_str::<User>(y).unwrap().into())
        .collect();
        let config = Config::default();
        let observed = Observed { identities: Identities::new(&users, &config), ..Observed::default() };
        let workspace: Workspace = serde_yaml::from_str(WORKSPACE).unwrap();
        let workspace = validate(&workspace, &observed).expect("the fixture Workspace validates");
        let project: Project = serde_yaml::from_str(PROJECT).unwrap();
        let mut project = runtime::validate(&project, workspace).expect("the fixture Project validates");
        let RuntimeSpec::Airflow(airflow) = &mut project.runtime else { panic!("not Airflow") };
        // What the controller decides from the caches and the access list: the database is
        // ready and migrated, alice (admin) and bob (viewer) may sign in.
        airflow.rollout =
            Rollout { database_ready: true, migration: Some(Migration::Succeeded), ..Rollout::default() };
        airflow.roles = vec![
            ("alice@example.com".into(), AirflowRole::Admin),
            ("bob@example.com".into(), AirflowRole::Viewer),
        ];
        let children = runtime::build(&project, &config);
        Generated { children, name: project.name.clone(), namespace: project.namespace.clone() }
    }

    fn pod(&self, kind: &str, name: &str) -> PodSpec {
        self.children
            .iter()
            .find_map(|c| {
                if c.key() != (kind_of(kind), name.to_string()) {
                    return None;
                }
                match c {
                    Child::Deployment(d) => d.spec.clone()?.template.spec,
                    Child::StatefulSet(s) => s.spec.clone()?.template.spec,
                    Child::Job(j) => j.spec.clone()?.template.spec,
                    _ => None,
                }
            })
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    fn component(&self, component: &str) -> Container {
        self.pod("Deployment", &format!("{}-{component}", self.name)).containers[0].clone()
    }
}

fn kind_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        _ => "Job",
    }
}

/// An Airflow command with a container's environment, as its image's entrypoint runs it
/// (`airflow <args>`), Airflow's home where the pod has it.
fn airflow(
    venv: &Path,
    world: &PodWorld,
    container: &Container,
    args: &[String],
    extra: &[(&str, String)],
) -> Command {
    let mut command = Command::new(venv.join("bin/airflow"));
    command.args(args).env_clear();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", venv.join("bin").display());
    command
        .env("PATH", path)
        .env("HOME", world.path("/opt/airflow"))
        .env("AIRFLOW_HOME", world.path("/opt/airflow"))
        .env("TMPDIR", world.path("/tmp"))
        .env("LANG", "C.UTF-8");
    for (name, value) in world.env(container) {
        command.env(name, value);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    command
}

#[test]
fn the_generated_configuration_runs_the_real_airflow() {
    let started = Instant::now();
    let generated = Generated::new();
    let (name, namespace) = (generated.name.clone(), generated.namespace.clone());
    let root = TempDir::new("dwo-airflow-process");
    let local = |p: &str| root.path().join(p).display().to_string();
    for dir in ["home", "dags", "task-logs", "roles", "tmp", "out", "pg"] {
        fs::create_dir_all(local(dir)).unwrap();
    }

    // The Secrets and ConfigMaps the pods read: the keys generated as the apply layer generates
    // them, the workspace's own.
    let mut world = PodWorld {
        paths: vec![
            ("/opt/airflow".into(), local("home")),
            ("/opt/dataworkspace/dags".into(), local("dags")),
            ("/opt/dataworkspace/logs".into(), local("task-logs")),
            ("/opt/dataworkspace/airflow-roles".into(), local("roles")),
            ("/tmp".into(), local("tmp")),
        ],
        ..PodWorld::default()
    };
    for child in &generated.children {
        match child {
            Child::GeneratedSecret(secret) => {
                let values = secret
                    .keys
                    .iter()
                    .map(|(key, encoding)| (key.clone(), encoding.generate(secret.bytes).unwrap()))
                    .collect();
                world.secrets.insert(secret.metadata.name.clone().unwrap(), values);
            }
            Child::ConfigMap(map) => {
                world.config_maps.insert(map.metadata.name.clone().unwrap(), map.data.clone().unwrap());
            }
            _ => {}
        }
    }
    world.secrets.insert(
        "warehouse-connection".into(),
        BTreeMap::from([("uri".into(), "postgresql://reader:pw@warehouse.example.com:5432/wh".into())]),
    );
    world.secrets.insert(
        "slack".into(),
        BTreeMap::from([("webhook-url".into(), "https://hooks.example.com/secret-path".into())]),
    );
    world
        .config_maps
        .insert("workspace-variables".into(), BTreeMap::from([("ENVIRONMENT".into(), "test".into())]));
    // The files ConfigMap where every Airflow pod mounts it.
    let files_dir = world.path("/opt/airflow/config");
    fs::create_dir_all(&files_dir).unwrap();
    for (file, text) in &world.config_maps[&format!("{name}-airflow")] {
        fs::write(Path::new(&files_dir).join(file), text).unwrap();
    }
    // The roles ConfigMap where the UI's API server mounts it.
    let roles_mount = generated
        .component("api-server")
        .volume_mounts
        .unwrap()
        .into_iter()
        .find(|m| m.name == "roles")
        .unwrap();
    for (file, text) in &world.config_maps[&format!("{name}-airflow-roles")] {
        fs::write(Path::new(&world.path(&roles_mount.mount_path)).join(file), text).unwrap();
    }
    let (pg_port, exec_port, api_port, health_port) = (free_port(), free_port(), free_port(), free_port());
    world.addresses = vec![
        (format!("{name}-postgres.{namespace}.svc:5432"), format!("127.0.0.1:{pg_port}")),
        (format!("{name}-execution-api.{namespace}.svc:8080"), format!("127.0.0.1:{exec_port}")),
    ];

    // The DAG repository, checked out as git-sync does from the dags Deployment's environment.
    let git = |dir: &str, args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(dir)
            .status()
            .expect("git is needed");
        assert!(status.success(), "git {args:?}");
    };
    let repo = local("repo");
    fs::create_dir_all(format!("{repo}/dags")).unwrap();
    fs::write(format!("{repo}/dags/hello.py"), DAG).unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "hello"]);
    let sync = generated.pod("Deployment", &format!("{name}-dags")).containers[0].clone();
    let sync_env: BTreeMap<String, String> = world.env(&sync).into_iter().collect();
    let (sync_root, link) =
        (PathBuf::from(&sync_env["GITSYNC_ROOT"]), PathBuf::from(&sync_env["GITSYNC_LINK"]));
    let worktree = sync_root.join(".worktrees/0123abc");
    fs::create_dir_all(worktree.parent().unwrap()).unwrap();
    let status = Command::new("git")
        .args(["clone", "-q", "--depth", "1", "-b", &sync_env["GITSYNC_REF"]])
        .arg(format!("file://{repo}"))
        .arg(&worktree)
        .status()
        .unwrap();
    assert!(status.success(), "clone");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    let relative = pathdiff(&worktree, link.parent().unwrap());
    std::os::unix::fs::symlink(&relative, &link).unwrap();

    // PostgreSQL, as the managed database's container makes it: its user, database and
    // password from the generated environment.
    let pg_bin = {
        let output = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/postgres.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("hack/postgres.sh");
        assert!(output.status.success(), "hack/postgres.sh could not provide a PostgreSQL server");
        PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
    };
    let pg = local("pg");
    if is_root() {
        assert!(Command::new("chown").args(["-R", "postgres:postgres", &pg]).status().unwrap().success());
    }
    let database = generated.pod("StatefulSet", &format!("{name}-postgres")).containers[0].clone();
    let db_env: BTreeMap<String, String> = world.env(&database).into_iter().collect();
    let initdb = as_postgres(&pg_bin.join("initdb"))
        .args([
            "-N",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-D",
        ])
        .arg(format!("{pg}/data"))
        .output()
        .unwrap();
    assert!(initdb.status.success(), "initdb: {}", String::from_utf8_lossy(&initdb.stderr));
    let mut server = Running::start(
        "postgres",
        {
            let mut c = as_postgres(&pg_bin.join("postgres"));
            c.args(["-D", &format!("{pg}/data"), "-h", "127.0.0.1", "-p", &pg_port.to_string(), "-k", &pg]);
            c
        },
        Path::new(&local("out")),
    );
    wait_for("PostgreSQL", Duration::from_secs(30), &mut [&mut server], || {
        std::net::TcpStream::connect(address(pg_port)).is_ok()
    });
    let user = format!("CREATE USER {} PASSWORD '{}'", db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"]);
    let db = format!("CREATE DATABASE {} OWNER {}", db_env["POSTGRES_DB"], db_env["POSTGRES_USER"]);
    let psql = Command::new(pg_bin.join("psql"))
        .args(["-h", &pg, "-p", &pg_port.to_string(), "-U", "postgres", "-v", "ON_ERROR_STOP=1"])
        .args(["-c", &user, "-c", &db])
        .output()
        .unwrap();
    assert!(psql.status.success(), "psql: {}", String::from_utf8_lossy(&psql.stderr));
    eprintln!("PostgreSQL ready at {:.1?}", started.elapsed());

    let venv = support::venv::python_env(
        "airflow",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/python/airflow.txt"),
        "airflow",
    );

    // The migration Job.
    let job = generated
        .children
        .iter()
        .find_map(|c| if let Child::Job(j) = c { j.metadata.name.clone() } else { None })
        .expect("the migration Job");
    let migrate = generated.pod("Job", &job).containers[0].clone();
    let migration_started = Instant::now();
    let output = airflow(&venv, &world, &migrate, migrate.args.as_ref().unwrap(), &[]).output().unwrap();
    assert!(
        output.status.success(),
        "airflow {:?} failed:\n{}\n{}",
        migrate.args,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let migration = migration_started.elapsed();
    eprintln!("migration ({job}) in {migration:.1?}");

    // The components, each with its container's arguments (plus, for the servers, this
    // machine's port and loopback address).
    let logs = PathBuf::from(local("out"));
    let start = |component: &str, extra_args: &[String], extra_env: &[(&str, String)]| {
        let container = generated.component(component);
        let mut args = container.args.clone().unwrap();
        args.extend(extra_args.iter().cloned());
        Running::start(component, airflow(&venv, &world, &container, &args, extra_env), &logs)
    };
    let on = |port: u16| vec!["--port".to_string(), port.to_string(), "--host".into(), "127.0.0.1".into()];
    let mut api = start("api-server", &on(api_port), &[]);
    let mut execution = start("execution-api", &on(exec_port), &[]);
    let mut scheduler = start(
        "scheduler",
        &[],
        &[("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", health_port.to_string())],
    );
    let mut dag_processor = start("dag-processor", &[], &[]);
    let mut triggerer = start("triggerer", &[], &[]);

    // Every probe, as the pods have them.
    let probe_path = |component: &str| {
        let c = generated.component(component);
        c.readiness_probe.unwrap().http_get.unwrap().path.unwrap()
    };
    let answers = |port: u16, path: &str| {
        http::request(address(port), "GET", path, &[], "").is_ok_and(|r| r.status == 200)
    };
    let mut all = [&mut api, &mut execution, &mut scheduler, &mut dag_processor, &mut triggerer];
    let limit = Duration::from_secs(180);
    let took =
        wait_for("the API server's health", limit, &mut all, || answers(api_port, &probe_path("api-server")));
    eprintln!("api-server healthy after {took:.1?}");
    wait_for("the Execution API's health", limit, &mut all, || {
        answers(exec_port, &probe_path("execution-api"))
    });
    wait_for("the scheduler's health server", limit, &mut all, || {
        answers(health_port, &probe_path("scheduler"))
    });
    for component in ["dag-processor", "triggerer"] {
        let container = generated.component(component);
        let probe = container.liveness_probe.clone().unwrap().exec.unwrap().command.unwrap();
        assert_eq!(probe[0], "airflow");
        wait_for(&format!("the {component}'s jobs check"), limit, &mut all, || {
            airflow(&venv, &world, &container, &probe[1..], &[])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }
    eprintln!("every component healthy at {:.1?}", started.elapsed());

    // Through the auth manager: the proxy's header is the only credential.
    let call = |method: &str, path: &str, email: Option<&str>, body: &str| {
        let mut headers = vec![("Content-Type", "application/json"), ("Accept", "application/json")];
        if let Some(email) = email {
            headers.push(("X-Forwarded-Email", email));
        }
        http::request(address(api_port), method, path, &headers, body).unwrap()
    };
    let admin = Some("Alice@Example.com");
    let took = wait_for("the DAG from the checkout to be parsed", limit, &mut all, || {
        call("GET", "/api/v2/dags/hello", admin, "").status == 200
    });
    eprintln!("DAG parsed after {took:.1?}");
    assert_eq!(call("GET", "/api/v2/dags", None, "").status, 401, "no header, no access");
    assert_eq!(call("GET", "/api/v2/dags", Some("mallory@example.com"), "").status, 401, "not on the list");
    assert_eq!(call("GET", "/api/v2/dags", Some("bob@example.com"), "").status, 200, "a viewer reads");
    let viewer_patch =
        call("PATCH", "/api/v2/dags/hello", Some("bob@example.com"), r#"{"is_paused": false}"#);
    assert_eq!(viewer_patch.status, 403, "a viewer may not unpause: {}", viewer_patch.body);
    let login = http::request(
        address(api_port),
        "POST",
        "/auth/token",
        &[("Content-Type", "application/json")],
        r#"{"username":"admin","password":"admin"}"#,
    )
    .unwrap();
    assert_eq!(login.status, 404, "no password sign-in exists: {}", login.body);
    let forged = call("GET", "/api/v2/dags", None, "");
    assert_eq!(forged.status, 401);

    let unpause = call("PATCH", "/api/v2/dags/hello", admin, r#"{"is_paused": false}"#);
    assert_eq!(unpause.status, 200, "{}", unpause.body);
    let trigger = call("POST", "/api/v2/dags/hello/dagRuns", admin, r#"{"logical_date": null}"#);
    assert_eq!(trigger.status, 200, "{}", trigger.body);
    let run: serde_json::Value = serde_json::from_str(&trigger.body).unwrap();
    let run_id = run["dag_run_id"].as_str().unwrap().to_string();
    let encoded = run_id.replace(':', "%3A").replace('+', "%2B");
    let run_path = format!("/api/v2/dags/hello/dagRuns/{encoded}");
    let mut state = String::new();
    let took = wait_for("the DAG run to finish", Duration::from_secs(240), &mut all, || {
        let r = call("GET", &run_path, admin, "");
        state = serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["state"].as_str().map(String::from))
            .unwrap_or_default();
        state == "success" || state == "failed"
    });
    let log = call("GET", &format!("{run_path}/taskInstances/greet/logs/1?full_content=true"), admin, "");
    assert_eq!(state, "success", "the task failed; its log:\n{}", log.body);
    eprintln!("DAG run succeeded {took:.1?} after the trigger");
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(
        log.body.contains("hello from the task: test team@example.com warehouse.example.com"),
        "{}",
        log.body
    );
    // On the logs volume, where every pod of the project reads it.
    let on_volume =
        Command::new("grep").args(["-rl", "hello from the task", &local("task-logs")]).output().unwrap();
    assert!(on_volume.status.success(), "the task's log is not on the logs volume");
    // The scheduler ran the task without holding the workspace's connections or variables.
    let scheduler_env = world.env(&generated.component("scheduler"));
    assert!(
        !scheduler_env.iter().any(|(n, _)| n.starts_with("AIRFLOW_CONN_") || n.starts_with("AIRFLOW_VAR_"))
    );
    eprintln!("total {:.1?} (migration {migration:.1?})", started.elapsed());
}

/// `target` relative to the directory `base` (both absolute, no symlinks between).
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let target: Vec<_> = target.components().collect();
    let base: Vec<_> = base.components().collect();
    let common = target.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let mut relative = PathBuf::new();
    for _ in common..base.len() {
        relative.push("..");
    }
    for part in &target[common..] {
        relative.push(part);
    }
    relative
}
