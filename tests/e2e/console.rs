//! The web console against the control plane: the `dataworkspace-console` binary watches the
//! cluster's objects and is asked for its pages as different people. Requests are signed
//! exactly as the authenticating proxy signs them (the library's `signature` module, which the
//! access process test checks against the real oauth2-proxy), and a second test puts the real
//! oauth2-proxy and a mock identity provider in front and drives headless Chromium through the
//! login to each area. Planted Secret values never appear in any page.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use dataworkspace_operator::{
    crd::{Project, User, Workspace},
    signature::{Key, Signed},
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{Api, api::PostParams};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_for, wait_until},
    workspaces::from_yaml,
};

const KEY: &str = "e2e-console-signature-key-0123456789";

/// Kills a process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A console process on loopback, with its pages' and health addresses.
struct Console {
    pages: SocketAddr,
    health: SocketAddr,
    log: PathBuf,
    process: Guard,
}

impl Console {
    async fn start(scope: &Scope, name: &str) -> Result<Console, String> {
        let dir = scope.env.out_dir.join(name);
        std::fs::create_dir_all(&dir).context("creating the console's directory")?;
        let key = dir.join("signature-key");
        std::fs::write(&key, KEY).context("writing the key")?;
        let pages = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let health = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let log = dir.join("console.log");
        let out = std::fs::File::create(&log).context("creating the console log")?;
        let process = Command::new(env!("CARGO_BIN_EXE_dataworkspace-console"))
            .args(["--listen", &pages.to_string(), "--health-listen", &health.to_string()])
            .arg("--signature-key-file")
            .arg(&key)
            .stdout(out.try_clone().context("log")?)
            .stderr(out)
            .spawn()
            .context("starting dataworkspace-console")?;
        let console = Console { pages, health, log, process: Guard(process) };
        wait_until(WAIT, "the console's caches to sync", || {
            let health = console.health;
            async move { Ok(get(health, "/readyz", &[]).map(|r| r.0 == 200).unwrap_or(false)) }
        })
        .await
        .map_err(|e| format!("{e}\n{}", console.log()))?;
        Ok(console)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A page as `email`, signed with `key` as the proxy signs it.
    fn page_as(&self, email: &str, path: &str, key: &str) -> Result<(u16, String), String> {
        let headers = [("X-Forwarded-Email", email), ("X-Forwarded-User", email)];
        let (path_only, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
        let bytes: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        let signature =
            Key::new(key)?.sign(Signed { method: "GET", path: path_only, query, body: b"" }, &bytes);
        let mut all = headers.to_vec();
        all.push(("GAP-Signature", &signature));
        get(self.pages, path, &all)
    }

    fn page(&self, email: &str, path: &str) -> Result<String, String> {
        let (status, body) = self.page_as(email, path, KEY)?;
        ensure!(status == 200, "{path} as {email}: {status} {body}\n{}", self.log());
        Ok(body)
    }
}

/// A GET with headers over HTTP/1.1; the status and body.
fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).context("connecting")?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).context("timeout")?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).context("sending")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading")?;
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status line")?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// The workspaces, people and objects of one test: `<id>a` (a team as developer, a workspace
/// admin, a disabled viewer) and `<id>b` (the admin as viewer), a project in each, and a Secret
/// with a marker value that `<id>a` references as a secret and a connection.
struct Platform {
    id: String,
    marker: String,
}

impl Platform {
    fn email(&self, who: &str) -> String {
        format!("{}-{who}@example.com", self.id)
    }
}

async fn platform(scope: &Scope) -> Result<Platform, String> {
    let client = scope.env.client.clone();
    let id = scope.env.unique("con");
    let marker = format!("MARKER-{id}-never-shown");
    let users: Api<User> = Api::all(client.clone());
    for (who, extra) in [
        ("dev", format!("teams: [{id}-team]")),
        ("adm", String::new()),
        ("root", "admin: true".into()),
        ("off", "disabled: true, admin: true".into()),
    ] {
        let user: User = from_yaml(&format!(
            "metadata: {{name: {id}-{who}}}\nspec: {{username: '{id}-{who}@example.com', email: '{id}-{who}@example.com', {extra}}}"
        ))?;
        users.create(&PostParams::default(), &user).await.context("creating a User")?;
    }
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let a: Workspace = from_yaml(&format!(
        r#"
metadata: {{name: {id}a}}
spec:
  displayName: 'Console <b>test</b>'
  members: [{{team: {id}-team, role: developer}}, {{user: {id}-adm, role: admin}}, {{user: {id}-off, role: viewer}}]
  variables: {{REGION: eu-west-1, SCRIPTY: '<script>alert(1)</script>'}}
  secrets: [{{name: API_TOKEN, description: the API token, secretRef: {{name: creds, key: token}}}}]
  connections: [{{name: warehouse, secretRef: {{name: creds, key: uri}}}}]
"#
    ))?;
    let b: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}b}}\nspec: {{members: [{{user: {id}-adm, role: viewer}}]}}"
    ))?;
    for ws in [a, b] {
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    }
    for suffix in ["a", "b"] {
        let ns = format!("dw-{id}{suffix}");
        scope.involve(&ns);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        wait_for(&namespaces, &ns, "the workspace namespace", |n: Option<&Namespace>| n.is_some()).await?;
        let project: Project = from_yaml(&format!(
            "metadata: {{name: nb-{suffix}}}\nspec: {{runtime: Notebook, stopped: true, notebook: {{storage: {{size: 1Gi}}}}}}"
        ))?;
        Api::<Project>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &project)
            .await
            .context("creating a Project")?;
    }
    let secret: Secret = from_yaml(&format!(
        "metadata: {{name: creds}}\nstringData: {{token: '{marker}', uri: 'postgresql://u:{marker}@db/x'}}"
    ))?;
    Api::<Secret>::namespaced(client, &format!("dw-{id}a"))
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the Secret")?;
    Ok(Platform { id, marker })
}

pub async fn each_person_sees_exactly_their_workspaces(scope: Scope) -> TestResult {
    let platform = platform(&scope).await?;
    let id = platform.id.clone();
    let console = Console::start(&scope, "console-visibility").await?;
    let (a, b) = (format!("{id}a"), format!("{id}b"));
    // The caches follow the cluster: wait until both projects are there for the admin.
    wait_until(WAIT, "the console to show both projects", || {
        let page = console.page(&platform.email("adm"), "/runtime");
        async move { Ok(page.is_ok_and(|p| p.contains("nb-a") && p.contains("nb-b"))) }
    })
    .await?;

    let mut pages = Vec::new();
    for (who, sees, hidden) in [
        ("dev", vec![&a], vec![&b]),
        ("adm", vec![&a, &b], vec![]),
        ("root", vec![&a, &b], vec![]),
        ("off", vec![], vec![&a, &b]),
        ("nobody", vec![], vec![&a, &b]),
    ] {
        let email = platform.email(who);
        for area in ["/runtime", "/studio", "/admin"] {
            let page = console.page(&email, area)?;
            for ws in &hidden {
                ensure!(!page.contains(ws.as_str()), "{who} sees {ws} on {area}:\n{page}");
            }
            if area != "/admin" {
                for ws in &sees {
                    ensure!(page.contains(ws.as_str()), "{who} does not see {ws} on {area}:\n{page}");
                }
            }
            pages.push((format!("{who} {area}"), page));
        }
    }
    let page = |who: &str, area: &str| {
        pages.iter().find(|(k, _)| k == &format!("{who} {area}")).map(|(_, p)| p.clone()).unwrap_or_default()
    };
    // Team membership gives the developer role; the Admin area is for admins only.
    ensure!(page("dev", "/studio").contains("developer"), "{}", page("dev", "/studio"));
    ensure!(page("dev", "/admin").contains("You administer no workspace"), "{}", page("dev", "/admin"));
    ensure!(
        page("adm", "/admin").contains(&a)
            && !page("adm", "/admin").contains(&format!("data-workspace=\"{b}\"")),
        "{}",
        page("adm", "/admin")
    );
    ensure!(
        page("root", "/admin").contains(&a) && page("root", "/admin").contains(&b),
        "{}",
        page("root", "/admin")
    );
    ensure!(page("root", "/runtime").contains("platform admin"), "{}", page("root", "/runtime"));
    ensure!(page("off", "/runtime").contains("disabled"), "{}", page("off", "/runtime"));
    ensure!(
        page("nobody", "/runtime").contains("No User has the e-mail address"),
        "{}",
        page("nobody", "/runtime")
    );
    // Variables with their values; secrets and connections by name; tenant text escaped.
    let studio = page("dev", "/studio");
    ensure!(
        studio.contains("eu-west-1") && studio.contains("API_TOKEN") && studio.contains("warehouse"),
        "{studio}"
    );
    ensure!(
        !studio.contains("<script>alert") && studio.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{studio}"
    );
    ensure!(
        !studio.contains("<b>test</b>") && studio.contains("Console &lt;b&gt;test&lt;/b&gt;"),
        "{studio}"
    );

    // A project page of one's own workspace, with its conditions; another's is not found.
    let own = console.page(&platform.email("dev"), &format!("/runtime/dw-{a}/nb-a"))?;
    ensure!(own.contains("Conditions") && own.contains("Recent events"), "{own}");
    let (status, other) = console.page_as(&platform.email("dev"), &format!("/runtime/dw-{b}/nb-b"), KEY)?;
    ensure!(status == 404 && !other.contains("nb-b"), "{status} {other}");
    pages.push(("dev project".into(), own));

    // Bypassing the proxy or forging the identity is refused, and nothing is shown.
    let dev = platform.email("dev");
    let root = platform.email("root");
    let (status, body) = get(console.pages, "/runtime", &[("X-Forwarded-Email", &root)])?;
    ensure!(status == 403 && !body.contains(&a), "unsigned: {status} {body}");
    let (status, body) = console.page_as(&root, "/admin", "a-guessed-key-of-the-right-length-00")?;
    ensure!(status == 403 && !body.contains(&a), "wrong key: {status} {body}");
    let bytes: Vec<(&str, &[u8])> = vec![("X-Forwarded-Email", dev.as_bytes())];
    let signature =
        Key::new(KEY)?.sign(Signed { method: "GET", path: "/admin", query: None, body: b"" }, &bytes);
    let (status, body) =
        get(console.pages, "/admin", &[("X-Forwarded-Email", &root), ("GAP-Signature", &signature)])?;
    ensure!(status == 403 && !body.contains(&a), "tampered e-mail: {status} {body}");
    let (status, _) = get(
        console.pages,
        "/admin",
        &[("X-Forwarded-Email", &dev), ("GAP-Signature", &signature), ("X-Forwarded-Email", &root)],
    )?;
    ensure!(status == 403, "a second e-mail header: {status}");

    // No Secret value anywhere, for anyone.
    for (name, page) in &pages {
        ensure!(!page.contains(&platform.marker), "the Secret's value appears on {name}");
    }
    let (status, metrics) = get(console.health, "/metrics", &[])?;
    ensure!(
        status == 200 && metrics.contains("dataworkspace_console_refused_total{reason=\"SignatureMissing\"}"),
        "{metrics}"
    );
    ensure!(!console.log().contains(&platform.marker), "the Secret's value is in the console's log");
    drop(console.process);
    Ok(())
}

/// Builds (or finds, cached) oauth2-proxy and mockoidc; their directory.
fn access_tools(repo: &Path) -> Result<PathBuf, String> {
    let output = Command::new(repo.join("hack/build-tools.sh"))
        .arg("access")
        .stderr(Stdio::inherit())
        .output()
        .context("running hack/build-tools.sh access")?;
    ensure!(output.status.success(), "hack/build-tools.sh access failed");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(PathBuf::from(stdout.lines().last().ok_or("no tools directory")?.trim()))
}

/// Chromium from the distribution: `hack/chromium.sh` installs it when missing.
fn chromium(repo: &Path) -> Result<PathBuf, String> {
    let output = Command::new(repo.join("hack/chromium.sh"))
        .stderr(Stdio::inherit())
        .output()
        .context("running hack/chromium.sh")?;
    ensure!(output.status.success(), "hack/chromium.sh failed: no headless browser");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Ok(PathBuf::from(stdout.lines().last().ok_or("no chromium path")?.trim()))
}

pub async fn a_browser_signs_in_through_the_proxy_and_sees_each_area(scope: Scope) -> TestResult {
    let repo = scope.env.repo.clone();
    // The examples' people: alice administers analytics.
    kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    scope.involve("dw-analytics");
    let tools = access_tools(&repo)?;
    let browser = chromium(&repo)?;
    let console = Console::start(&scope, "console-browser").await?;
    let dir = scope.env.out_dir.join("console-browser");

    // The identity provider: logs in whoever is queued next.
    let mut provider = Command::new(tools.join("mockoidc"))
        .args(["--client-id", "console", "--client-secret", "console-secret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting mockoidc")?;
    let _stdin = provider.stdin.take();
    let mut line = String::new();
    BufReader::new(provider.stdout.take().ok_or("no stdout")?)
        .read_line(&mut line)
        .context("mockoidc's address")?;
    let _provider = Guard(provider);
    let field = |key: &str| -> Result<String, String> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .ok_or(format!("no {key} in {line:?}"))
    };
    let issuer = field("issuer")?;
    let control: SocketAddr =
        field("control")?.trim_start_matches("http://").parse().context("control address")?;

    // The console's proxy, configured as the chart configures it (loopback, plain HTTP).
    std::fs::write(dir.join("client-secret"), "console-secret").context("client secret")?;
    std::fs::write(dir.join("cookie-secret"), "0123456789abcdef0123456789abcdef").context("cookie secret")?;
    let port = free_port();
    let proxy_log = dir.join("proxy.log");
    let out = std::fs::File::create(&proxy_log).context("proxy log")?;
    let proxy = Command::new(tools.join("oauth2-proxy"))
        .args([
            "--provider=oidc".to_string(),
            format!("--oidc-issuer-url={issuer}"),
            "--client-id=console".into(),
            format!("--client-secret-file={}", dir.join("client-secret").display()),
            "--code-challenge-method=S256".into(),
            format!("--cookie-secret-file={}", dir.join("cookie-secret").display()),
            "--cookie-name=_dataworkspace_console".into(),
            "--cookie-secure=false".into(),
            "--email-domain=*".into(),
            format!("--upstream=http://{}/", console.pages),
            format!("--http-address=127.0.0.1:{port}"),
            format!("--redirect-url=http://127.0.0.1:{port}/oauth2/callback"),
            "--skip-provider-button=true".into(),
            format!("--signature-key=sha256:{KEY}"),
        ])
        .stdout(out.try_clone().context("log")?)
        .stderr(out)
        .spawn()
        .context("starting oauth2-proxy")?;
    let _proxy = Guard(proxy);
    let proxy_address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until(WAIT, "the proxy to answer", || async move {
        Ok(get(proxy_address, "/ping", &[]).map(|r| r.0 == 200).unwrap_or(false))
    })
    .await?;
    // The examples reach the caches.
    wait_until(WAIT, "the console to show the examples", || {
        let page = console.page("alice@example.com", "/runtime");
        async move { Ok(page.is_ok_and(|p| p.contains("daily-etl"))) }
    })
    .await?;

    let screenshots = std::env::var_os("DWO_UPDATE_SCREENSHOTS").is_some();
    for (area, expect) in [
        ("runtime", vec!["<table id=\"projects\"", "daily-etl", "aria-current=\"page\">Runtime"]),
        ("studio", vec!["Studio server", "Python environments", "aria-current=\"page\">Studio"]),
        ("admin", vec!["Members", "Usage against quota", "aria-current=\"page\">Admin"]),
    ] {
        let url = format!("http://127.0.0.1:{port}/{area}");
        let mut runs = vec![("--dump-dom".to_string(), None)];
        let shot = if screenshots {
            repo.join(format!("docs/console/{area}.png"))
        } else {
            dir.join(format!("{area}.png"))
        };
        runs.push((format!("--screenshot={}", shot.display()), Some(shot.clone())));
        for (mode, file) in runs {
            // A fresh profile, a fresh login for alice.
            let profile = dir.join(format!("profile-{area}-{}", file.is_some()));
            let _ = std::fs::remove_dir_all(&profile);
            let queued = post(control, "/users?email=alice@example.com")?;
            ensure!(queued == 204, "queueing alice: {queued}");
            // Bounded: a page that never finishes loading fails the test instead of hanging it.
            let output = Command::new("timeout")
                .arg("90")
                .arg(&browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(&mode)
                .arg(&url)
                .output()
                .context("running chromium")?;
            let dom = String::from_utf8_lossy(&output.stdout).into_owned();
            let proxy_text = std::fs::read_to_string(&proxy_log).unwrap_or_default();
            match file {
                None => {
                    for needle in &expect {
                        ensure!(
                            dom.contains(needle),
                            "{area}: {needle:?} not in the rendered page:\n{dom}\n{}\nproxy:\n{proxy_text}",
                            String::from_utf8_lossy(&output.stderr)
                        );
                    }
                    ensure!(
                        dom.contains("alice@example.com (alice)"),
                        "{area}: not signed in as alice:\n{dom}"
                    );
                }
                Some(shot) => ensure!(
                    shot.exists(),
                    "{area}: no screenshot: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        }
    }
    // The proxy's signatures were all accepted: the console refused nothing it forwarded.
    let (_, metrics) = get(console.health, "/metrics", &[])?;
    ensure!(!metrics.contains("reason=\"SignatureMismatch\""), "{metrics}");
    Ok(())
}

fn post(address: SocketAddr, path: &str) -> Result<u16, String> {
    let mut stream = TcpStream::connect(address).context("connecting to mockoidc")?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .context("sending")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).context("reading")?;
    response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("no status".into())
}
