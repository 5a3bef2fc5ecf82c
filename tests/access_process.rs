//! Process test of the access layer: the arguments and files the operator generates for a UI's
//! authenticating proxy, run with the real oauth2-proxy against a mock OpenID Connect provider,
//! everything on loopback.
//!
//! The proxy (github.com/oauth2-proxy/oauth2-proxy/v7) and the provider (a small `main` around
//! github.com/oauth2-proxy/mockoidc) are built from their pinned Go modules by
//! `hack/build-tools.sh access`, like the control-plane tools. Each proxy gets the arguments of
//! `access::proxy_args` with the pod's paths mapped to a temporary directory, its listen
//! address and upstream mapped to loopback, and `--cookie-secure=false` (plain HTTP); the
//! access list is laid out the way the kubelet projects a ConfigMap (`..data` symlink swapped
//! on update) so a list change is seen the way a pod sees it.
//!
//! It needs the Go toolchain and the Go module proxy (first run only); it fails when the tools
//! cannot be built.

mod support;

use support::free_port;

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    thread,
    time::{Duration, Instant},
};

use dataworkspace_operator::build::access::{
    AccessLayer, COOKIE_NAME, Exposure, Files, Owner, emails_file, proxy_args,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use support::{
    http::{Response, request},
    temp::TempDir,
};

const CLIENT_ID: &str = "dataworkspace";
const CLIENT_SECRET: &str = "loopback-client-secret";

/// The provider and an upstream shared by the tests; logins go one at a time (the provider
/// hands out queued users in order).
struct Shared {
    bin: PathBuf,
    /// The provider's standard input: it exits when this closes, with the test process.
    _stdin: std::process::ChildStdin,
    issuer: String,
    control: SocketAddr,
    _provider: Guard,
    login: Mutex<()>,
}

/// Kills a process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let bin = tools();
        let mut provider = Command::new(bin.join("mockoidc"))
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mockoidc");
        let stdin = provider.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(provider.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("mockoidc's address line");
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_string()
        };
        let control = field("control").trim_start_matches("http://").parse().expect("control address");
        Shared {
            bin,
            _stdin: stdin,
            issuer: field("issuer"),
            control,
            _provider: Guard(provider),
            login: Mutex::new(()),
        }
    })
}

/// Builds (or finds, cached) oauth2-proxy and mockoidc; their directory.
fn tools() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("hack/build-tools.sh"))
        .arg("access")
        .stderr(Stdio::inherit())
        .output()
        .expect("run hack/build-tools.sh access");
    assert!(output.status.success(), "hack/build-tools.sh access failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    PathBuf::from(stdout.lines().last().expect("the tools directory").trim())
}

/// An upstream that answers every request with 200 and records the requests it saw.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut stream = stream;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read_exact(&mut byte).is_ok() {
                    head.push(byte[0]);
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let body = "the UI answered";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Upstream { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One proxy as the operator would run it for a UI, on loopback.
struct Proxy {
    address: SocketAddr,
    list: List,
    process: Guard,
    log: PathBuf,
    _dir: TempDir,
}

/// The access list as the kubelet projects a ConfigMap key: `<volume>/emails` links to
/// `..data/emails`, and an update writes a new directory and swaps the `..data` symlink to it
/// atomically.
struct List {
    file: PathBuf,
    generation: u32,
}

impl List {
    fn project(&mut self, content: &str) {
        let volume = self.file.parent().unwrap();
        let name = self.file.file_name().unwrap();
        fs::create_dir_all(volume).unwrap();
        self.generation += 1;
        let version = format!("..{}", self.generation);
        fs::create_dir_all(volume.join(&version)).unwrap();
        fs::write(volume.join(&version).join(name), content).unwrap();
        let _ = fs::remove_file(volume.join("..data_tmp"));
        symlink(&version, volume.join("..data_tmp")).unwrap();
        fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
        if self.generation == 1 {
            symlink(Path::new("..data").join(name), &self.file).unwrap();
        } else {
            fs::remove_dir_all(volume.join(format!("..{}", self.generation - 1))).unwrap();
        }
    }
}

impl Proxy {
    /// Starts a proxy for `ui` admitting `allowed`, in front of `upstream`.
    fn start(ui: &str, allowed: &[&str], upstream: &Upstream) -> Proxy {
        let shared = shared();
        let dir = TempDir::new(&format!("dwo-access-{ui}"));
        let port = free_port();
        let layer = AccessLayer {
            namespace: "dataworkspace-access".into(),
            domain: "data.example.com".into(),
            issuer_url: shared.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: "oidc-client".into(),
            image: "unused".into(),
            ingress_class: None,
            tls_secret: None,
            gateway: None,
        };
        let exposure = Exposure {
            owner: Owner {
                namespace: "dw-test".into(),
                reference: OwnerReference { uid: "uid".into(), ..OwnerReference::default() },
            },
            ui: ui.into(),
            host: format!("127.0.0.1:{port}"),
            service: ui.into(),
            port: 8888,
            pod_labels: BTreeMap::new(),
            allowed: allowed.iter().map(|e| e.to_string()).collect(),
        };
        // The pod's files, under the temporary directory.
        let in_pod = Files::in_pod();
        let mapped = |path: &str| dir.0.join(path.trim_start_matches('/')).to_string_lossy().into_owned();
        let files = Files {
            client_secret: mapped(&in_pod.client_secret),
            cookie_secret: mapped(&in_pod.cookie_secret),
            emails: mapped(&in_pod.emails),
        };
        write_file(&files.client_secret, CLIENT_SECRET);
        // What the operator generates: 16 random bytes, hex-encoded.
        write_file(&files.cookie_secret, &random_hex(16));
        let mut list = List { file: PathBuf::from(&files.emails), generation: 0 };
        list.project(&emails_file(exposure.allowed.iter().map(String::as_str)));

        let mut args = proxy_args(&layer, &exposure, &files, false);
        for arg in &mut args {
            if arg.starts_with("--http-address=") {
                *arg = format!("--http-address=127.0.0.1:{port}");
            } else if arg.starts_with("--upstream=") {
                *arg = format!("--upstream=http://127.0.0.1:{}/", upstream.port);
            }
        }
        let log = dir.0.join("proxy.log");
        let output = fs::File::create(&log).unwrap();
        let process = Command::new(shared.bin.join("oauth2-proxy"))
            .args(&args)
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start oauth2-proxy");
        let proxy = Proxy {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            list,
            process: Guard(process),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while request(proxy.address, "GET", "/ping", &[], "").map(|r| r.status) != Ok(200) {
            assert!(Instant::now() < deadline, "the proxy did not answer /ping: {}", proxy.log());
            thread::sleep(Duration::from_millis(100));
        }
        proxy
    }

    fn update_list(&mut self, allowed: &[&str]) {
        self.list.project(&emails_file(allowed.iter().copied()));
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }
}

fn write_file(path: &str, content: &str) {
    fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    fs::File::open("/dev/urandom").unwrap().read_exact(&mut buffer).unwrap();
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// A browser: follows redirects across the proxy and the provider, keeping cookies per host.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, BTreeMap<String, String>>,
    /// Every `Set-Cookie` header received, as sent.
    set_cookies: Vec<String>,
}

impl Browser {
    /// GETs `url` and follows redirects; the final response.
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Response {
        let mut url = url.to_string();
        for _ in 0..10 {
            let (host, path) = split(&url);
            let cookie = self
                .cookies
                .get(&host)
                .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
                .unwrap_or_default();
            let mut all: Vec<(&str, &str)> = headers.to_vec();
            if !cookie.is_empty() {
                all.push(("Cookie", &cookie));
            }
            let response = request(host.parse().unwrap(), "GET", &path, &all, "").unwrap();
            for set in response.header_values("set-cookie") {
                self.set_cookies.push(set.to_string());
                let pair = set.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    let jar = self.cookies.entry(host.clone()).or_default();
                    // An expired cookie (the proxy clearing it) has an empty value.
                    if value.is_empty()
                        || set.contains("Max-Age=0")
                        || set.contains("Expires=Thu, 01 Jan 1970")
                    {
                        jar.remove(name);
                    } else {
                        jar.insert(name.to_string(), value.to_string());
                    }
                }
            }
            match (response.status, response.header("location")) {
                (301 | 302 | 303 | 307, Some(location)) => {
                    url = if location.starts_with("http") {
                        location.to_string()
                    } else {
                        format!("http://{host}{location}")
                    };
                }
                _ => return response,
            }
        }
        panic!("too many redirects from {url}");
    }

    fn session(&self, proxy: &Proxy) -> Option<String> {
        self.cookies.get(&proxy.address.to_string())?.get(COOKIE_NAME).cloned()
    }
}

fn split(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("http://");
    match rest.split_once('/') {
        Some((host, path)) => (host.to_string(), format!("/{path}")),
        None => (rest.to_string(), "/".into()),
    }
}

/// Logs `email` in at `proxy` through the provider; the response of the page the login lands on.
fn login(browser: &mut Browser, proxy: &Proxy, email: &str) -> Response {
    let shared = shared();
    let _one_at_a_time = shared.login.lock().unwrap_or_else(|e| e.into_inner());
    let encoded: String = email
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"@._-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let queued = request(shared.control, "POST", &format!("/users?email={encoded}"), &[], "").unwrap();
    assert_eq!(queued.status, 204, "queueing {email}: {}", queued.body);
    browser.get(&format!("http://{}/", proxy.address), &[])
}

#[test]
fn an_allowed_address_reaches_the_ui_and_others_are_refused() {
    let upstream = Upstream::start();
    let proxy = Proxy::start("allowed", &["alice@example.com"], &upstream);

    // No session: a browser is sent to the provider, an API client gets 401; neither reaches the UI.
    let anonymous = request(proxy.address, "GET", "/", &[], "").unwrap();
    assert_eq!(anonymous.status, 302, "{}", anonymous.body);
    assert!(anonymous.header("location").unwrap().starts_with(&shared().issuer), "{:?}", anonymous.headers);
    let api = request(proxy.address, "GET", "/api/status", &[("Accept", "application/json")], "").unwrap();
    assert_eq!(api.status, 401);
    assert!(upstream.requests().is_empty(), "the UI saw requests without a session");

    let mut alice = Browser::default();
    let page = login(&mut alice, &proxy, "alice@example.com");
    assert_eq!(page.status, 200, "alice: {}\n{}", page.body, proxy.log());
    assert_eq!(page.body, "the UI answered");
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].to_ascii_lowercase().contains("x-forwarded-email: alice@example.com"), "{}", seen[0]);

    // The memory one exposed UI costs: the proxy's resident set after serving a login.
    let status = fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap_or_default();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or("?").trim().to_string();
    println!("oauth2-proxy resident memory after a login: {rss}");

    let mut mallory = Browser::default();
    let refused = login(&mut mallory, &proxy, "mallory@example.com");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(mallory.session(&proxy).is_none(), "no session for a refused address");
    assert_eq!(upstream.requests().len(), 1, "the UI saw mallory");

    // A forged identity header is replaced by the session's.
    let forged =
        alice.get(&format!("http://{}/x", proxy.address), &[("X-Forwarded-Email", "admin@example.com")]);
    assert_eq!(forged.status, 200);
    let last = upstream.requests().pop().unwrap().to_ascii_lowercase();
    assert!(
        !last.contains("admin@example.com") && last.contains("x-forwarded-email: alice@example.com"),
        "{last}"
    );
}

#[test]
fn a_list_change_is_honoured_without_a_restart() {
    let upstream = Upstream::start();
    let mut proxy = Proxy::start("reload", &["alice@example.com", "bob@example.com"], &upstream);
    let pid = proxy.pid();
    let mut alice = Browser::default();
    assert_eq!(login(&mut alice, &proxy, "alice@example.com").status, 200, "{}", proxy.log());

    // Alice is removed: her existing session is refused once the file changes (the proxy
    // re-checks the list on every request).
    proxy.update_list(&["bob@example.com"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        thread::sleep(Duration::from_millis(200));
        let status = alice.get(&format!("http://{}/", proxy.address), &[]).status;
        if status != 200 || Instant::now() > deadline {
            break status;
        }
    };
    assert_eq!(status, 403, "alice still admitted after her removal: {}", proxy.log());

    // Carol is added and gets in, through the same process.
    proxy.update_list(&["bob@example.com", "carol@example.com"]);
    thread::sleep(Duration::from_millis(500));
    let mut carol = Browser::default();
    assert_eq!(login(&mut carol, &proxy, "carol@example.com").status, 200, "{}", proxy.log());
    assert_eq!(proxy.pid(), pid, "the same proxy process throughout");
}

#[test]
fn crafted_addresses_inject_nothing_and_lock_no_one_out() {
    let upstream = Upstream::start();
    // What a careless admin might put in User e-mails: the list keeps only plain addresses.
    let proxy = Proxy::start(
        "crafted",
        &[
            "alice+data@example.com",
            "Carol@Example.com",
            "x,mallory@evil.test",
            "ops$http_x_e@evil.test",
            "a&allowed_emails=mallory@evil.test",
            "\"eve\"@evil.test",
            "z@a%2Cmallory%40evil.test",
        ],
        &upstream,
    );
    let mut plus = Browser::default();
    assert_eq!(
        login(&mut plus, &proxy, "alice+data@example.com").status,
        200,
        "plus-addressing: {}",
        proxy.log()
    );
    let mut carol = Browser::default();
    assert_eq!(login(&mut carol, &proxy, "CAROL@example.COM").status, 200, "case: {}", proxy.log());
    for intruder in ["mallory@evil.test", "x", "ops$http_x_e@evil.test", "eve@evil.test"] {
        let mut browser = Browser::default();
        let response = login(&mut browser, &proxy, intruder);
        assert_eq!(response.status, 403, "{intruder} got in: {}", response.body);
    }
}

#[test]
fn a_session_cookie_of_one_ui_is_worthless_at_another() {
    let upstream_a = Upstream::start();
    let upstream_b = Upstream::start();
    let a = Proxy::start("ui-a", &["alice@example.com"], &upstream_a);
    let b = Proxy::start("ui-b", &["alice@example.com", "bob@example.com"], &upstream_b);
    let mut alice = Browser::default();
    assert_eq!(login(&mut alice, &b, "alice@example.com").status, 200);
    // B's UI (code a tenant controls) sees Alice's cookie for B...
    let stolen = alice.session(&b).expect("a session at B");
    assert!(
        upstream_b.requests().iter().any(|r| r.contains(&stolen[..stolen.len().min(40)])),
        "B's UI saw no cookie"
    );
    // ...and replays it at A: refused, A's UI sees nothing.
    let replay = request(
        a.address,
        "GET",
        "/",
        &[("Cookie", &format!("{COOKIE_NAME}={stolen}")), ("Accept", "application/json")],
        "",
    )
    .unwrap();
    assert_eq!(replay.status, 401, "a cookie of B was accepted at A: {}", replay.body);
    assert!(upstream_a.requests().is_empty());
    // Each UI's cookie is host-only: no Domain attribute widens it to other hosts.
    let session_cookies: Vec<&String> =
        alice.set_cookies.iter().filter(|c| c.starts_with(&format!("{COOKIE_NAME}="))).collect();
    assert!(!session_cookies.is_empty());
    assert!(
        session_cookies.iter().all(|c| !c.to_ascii_lowercase().contains("domain=")),
        "{session_cookies:?}"
    );
}
