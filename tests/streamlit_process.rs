//! Process test of the Streamlit runtime: the app container's command, arguments and working
//! directory exactly as the operator generates them, run with the real Streamlit (pinned with
//! hashes in `hack/python/streamlit.txt`, installed into a cached virtualenv from PyPI) against an
//! app laid out where the Git checkout puts it; Streamlit's health endpoint — the pod's probes —
//! answers 200 and the app's page is served.
//!
//! It needs python3 (with venv) and PyPI; it fails, saying so, when either is missing.

mod support;

use support::free_port;

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
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
    runtime,
};
use support::temp::TempDir;

const WORKSPACE: &str = "metadata: {name: analytics, uid: uid-1}\nspec:\n  members: [{user: alice, role: admin}]\n  variables: {ENVIRONMENT: test}\n  gitRepositories: [{name: pipelines, url: 'https://git.example.com/analytics/pipelines.git', ref: main}]\n";
const PROJECT: &str = "metadata: {name: sales, namespace: dw-analytics, uid: uid-p}\nspec:\n  runtime: Streamlit\n  source: {repository: pipelines, path: apps/sales/app.py}\n  streamlit: {image: registry.example.com/streamlit:1.67.0, replicas: 2}\n";

/// A minimal HTTP GET on loopback: status code and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

#[test]
fn the_generated_command_runs_the_real_streamlit_and_its_probe_answers() {
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
    let project: Project = serde_yaml::from_str(PROJECT).unwrap();
    let project = runtime::validate(&project, workspace).expect("the fixture Project validates");
    let children = runtime::build(&project, &config);
    let deployment = children
        .iter()
        .find_map(|c| if let Child::Deployment(d) = c { Some(d) } else { None })
        .expect("a Deployment");
    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let app = &pod.containers[0];
    let probe = app.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.clone().unwrap();
    let port_arg =
        app.args.as_ref().unwrap().iter().find(|a| a.starts_with("--server.port=")).cloned().unwrap();
    let pod_port: i32 = port_arg.trim_start_matches("--server.port=").parse().unwrap();
    assert_eq!(app.ports.as_ref().unwrap()[0].container_port, pod_port, "the probe's port is Streamlit's");

    // The pod's paths under a temporary root: the checkout where git-sync links it, HOME.
    let root = TempDir::new("dwo-streamlit-process");
    let map = |pod_path: &str| format!("{}{pod_path}", root.path().display());
    let working_dir = app.working_dir.clone().unwrap();
    let args: Vec<String> = app.args.clone().unwrap();
    let app_file = &args[1];
    fs::create_dir_all(Path::new(&map(app_file)).parent().unwrap()).unwrap();
    fs::write(
        map(app_file),
        "import os\nimport streamlit as st\nst.title('Sales')\nst.write('environment', os.environ.get('ENVIRONMENT'))\n",
    )
    .unwrap();
    let home = app.env.iter().flatten().find(|v| v.name == "HOME").and_then(|v| v.value.clone()).unwrap();
    fs::create_dir_all(map(&home)).unwrap();

    let venv = support::venv::python_env(
        "streamlit",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/python/streamlit.txt"),
        "streamlit",
    );
    // Exactly the generated command and arguments; only the paths and the port are this
    // machine's (another test may hold 8501).
    let port = free_port();
    let mut args: Vec<String> = args
        .iter()
        .map(|a| {
            if a == app_file {
                map(a)
            } else if a.starts_with("--server.port=") {
                format!("--server.port={port}")
            } else {
                a.clone()
            }
        })
        .collect();
    // Loopback only on this machine; the pod listens on every address.
    for a in args.iter_mut().filter(|a| a.starts_with("--server.address=")) {
        *a = "--server.address=127.0.0.1".into();
    }
    let command = app.command.clone().unwrap();
    assert_eq!(command, vec!["streamlit".to_string()]);
    let log = root.path().join("streamlit.log");
    let mut child = Command::new(venv.join("bin").join(&command[0]))
        .args(&args)
        .current_dir(map(&working_dir))
        .env("HOME", map(&home))
        .env("ENVIRONMENT", "test")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(Stdio::from(fs::File::create(root.path().join("streamlit.err")).unwrap()))
        .spawn()
        .expect("starting streamlit");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut health = None;
    while Instant::now() < deadline {
        if let Some(answer) = get(port, &probe) {
            health = Some(answer);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "streamlit exited with {status}: {}",
                fs::read_to_string(root.path().join("streamlit.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let page = get(port, "/");
    let _ = child.kill();
    let _ = child.wait();
    let (code, body) = health.unwrap_or_else(|| {
        panic!(
            "no answer on {probe} within 90 s: {}",
            fs::read_to_string(root.path().join("streamlit.err")).unwrap_or_default()
        )
    });
    assert_eq!((code, body.trim()), (200, "ok"), "the probe's endpoint answers");
    let (code, body) = page.expect("the app's page");
    assert_eq!(code, 200, "{body:.300}");
    assert!(
        body.contains("<div id=\"root\">") || body.to_lowercase().contains("streamlit"),
        "not Streamlit's page: {body:.300}"
    );
}
