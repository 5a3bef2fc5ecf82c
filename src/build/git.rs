//! The Git checkout every runtime shares: a git-sync container with a pinned image, read-only
//! root filesystem, and credentials mounted from the repository's Secret.
//!
//! Workspaces make their [`Checkout`]s through [`Checkout::new`], which checks the repository's
//! name, clone URL and ref first: what reaches git-sync is a URL of a known form without
//! credentials and a ref Git itself would accept, passed as environment values, never as
//! arguments.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, SecretKeySelector, SecretVolumeSource,
    Volume, VolumeMount,
};

use super::pod::container_security;

/// The git-sync image.
pub const GIT_SYNC_IMAGE: &str = "registry.k8s.io/git-sync/git-sync:v4.7.1";
/// git-sync's user and group.
pub const GIT_SYNC_UID: i64 = 65533;

/// How a repository authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GitAuth {
    /// Public repository.
    None,
    /// https with `username` and `password` keys of the Secret.
    Https {
        /// The Secret's name.
        secret: String,
    },
    /// SSH with `ssh-privatekey` and `known_hosts` keys of the Secret.
    Ssh {
        /// The Secret's name.
        secret: String,
    },
}

/// A repository to check out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    /// Short name: the directory under the checkout root.
    pub name: String,
    /// Clone URL.
    pub url: String,
    /// Branch, tag or commit.
    pub r#ref: String,
    /// Credentials.
    pub auth: GitAuth,
}

impl Checkout {
    /// A checked repository: `name` fits the names derived from it, `url` is one of the
    /// accepted forms (see [`check_url`]) and `ref` follows Git's ref-name rules (see
    /// [`check_ref`]). The error is a sentence about what is wrong that never repeats a
    /// credential.
    pub fn new(name: &str, url: &str, r#ref: &str, secret: Option<&str>) -> Result<Checkout, String> {
        check_name(name)?;
        let url = check_url(url)?;
        check_ref(r#ref)?;
        let auth = match (secret, url.transport) {
            (None, _) => GitAuth::None,
            (Some(s), Transport::Https) => GitAuth::Https { secret: s.into() },
            (Some(s), Transport::Ssh) => GitAuth::Ssh { secret: s.into() },
        };
        Ok(Checkout { name: name.into(), url: url.url, r#ref: r#ref.into(), auth })
    }

    /// The auth mode implied by a URL already checked (see [`check_url`]) and whether a Secret
    /// is given.
    pub fn auth_for(url: &str, secret: Option<&str>) -> GitAuth {
        match secret {
            None => GitAuth::None,
            Some(s) if url.starts_with("https://") => GitAuth::Https { secret: s.into() },
            Some(s) => GitAuth::Ssh { secret: s.into() },
        }
    }

    fn credentials_volume(&self) -> String {
        format!("git-credentials-{}", self.name)
    }
}

/// Longest repository name: it names the clone container (`git-clone-<name>`) and the
/// credentials volume (`git-credentials-<name>`), both DNS labels of at most 63 characters.
pub const MAX_NAME_LENGTH: usize = 63 - "git-credentials-".len();
/// Longest clone URL.
pub const MAX_URL_LENGTH: usize = 2048;
/// Longest ref: one file-system path component on most systems.
pub const MAX_REF_LENGTH: usize = 255;

/// How a repository is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `https://host/path`.
    Https,
    /// `ssh://[user@]host[:port]/path` or `user@host:path`.
    Ssh,
}

/// A clone URL that passed [`check_url`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitUrl {
    /// What git-sync gets. `https://` and `ssh://` URLs are in the `url` crate's normal form, so
    /// git and curl read the same host, user and path the check saw; the scp form is kept as
    /// written. Never starts with `-`, never carries a password, and an https URL carries no
    /// user either.
    pub url: String,
    /// How it is reached.
    pub transport: Transport,
}

/// Checks a repository name: a DNS label short enough for the names derived from it.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if name.is_empty()
        || name.len() > MAX_NAME_LENGTH
        || !name.chars().all(valid_char)
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return Err(format!(
            "the name must be 1 to {MAX_NAME_LENGTH} lowercase letters, digits and '-', starting and ending \
             with a letter or digit (it names the clone container and the credentials volume)"
        ));
    }
    Ok(())
}

/// Checks a clone URL and returns what git-sync gets. Accepted: `https://host/path`,
/// `ssh://[user@]host[:port]/path` and `user@host:path`, in printable ASCII. Refused: a leading
/// `-` (git would read an option), whitespace and control characters (also percent-encoded),
/// any password, any user on https, an empty host or path, a query or fragment. Messages never
/// repeat the URL, which may hold a credential.
pub fn check_url(url: &str) -> Result<GitUrl, String> {
    const FORMS: &str = "https://host/path, ssh://[user@]host[:port]/path or user@host:path";
    if url.is_empty() {
        return Err("the url is empty".into());
    }
    if url.len() > MAX_URL_LENGTH {
        return Err(format!("the url is {} bytes long; at most {MAX_URL_LENGTH} are allowed", url.len()));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the url contains whitespace or a control character".into());
    }
    if !url.is_ascii() {
        return Err("the url contains a non-ASCII character; write host names in their xn-- form and \
                    percent-encode paths"
            .into());
    }
    if url.starts_with('-') {
        return Err("the url must not start with '-'".into());
    }
    if url.contains('\\') {
        return Err("the url must not contain a backslash".into());
    }
    match url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("ssh") => {
            check_standard_url(url)
        }
        Some((scheme, _)) => {
            let shown = if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            {
                format!("'{scheme}'")
            } else {
                "of the url".into()
            };
            Err(format!("the scheme {shown} is not supported; use {FORMS}"))
        }
        None => check_scp_url(url, FORMS),
    }
}

/// `https://…` and `ssh://…`, read by the `url` crate.
fn check_standard_url(raw: &str) -> Result<GitUrl, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("the url cannot be read: {e}"))?;
    let transport = match url.scheme() {
        "https" => Transport::Https,
        "ssh" => Transport::Ssh,
        _ => return Err("the url scheme must be https or ssh".into()),
    };
    if url.password().is_some() || raw_userinfo(raw).is_some_and(|u| u.contains(':')) {
        return Err("the url carries a password; remove it from the url and put the credentials in \
                    the Secret named by credentialsSecret"
            .into());
    }
    match transport {
        Transport::Https if !url.username().is_empty() || raw_userinfo(raw).is_some() => {
            return Err("the https url carries a user name or token; remove it from the url and put \
                        the credentials in the Secret named by credentialsSecret"
                .into());
        }
        Transport::Ssh if !url.username().is_empty() => check_ssh_user(url.username())?,
        _ => {}
    }
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("the url has no host".into());
    }
    check_host(host.trim_start_matches('[').trim_end_matches(']'), url.host())?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the url must not have a query ('?…') or a fragment ('#…')".into());
    }
    check_path(url.path().trim_start_matches('/'))?;
    Ok(GitUrl { url: url.as_str().to_string(), transport })
}

/// The user information of an `scheme://` URL as written (before the last `@` of the
/// authority), if any. The `url` crate drops an empty one, which is still not a clean URL.
fn raw_userinfo(raw: &str) -> Option<&str> {
    let rest = raw.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

/// `user@host:path`, git's scp-like form.
fn check_scp_url(raw: &str, forms: &str) -> Result<GitUrl, String> {
    let Some((user, rest)) = raw.split_once('@') else {
        return Err(format!("the url is not one of {forms}"));
    };
    if user.contains(':') && !user.contains('/') {
        return Err("the url carries a password; remove it from the url and put the credentials in \
                    the Secret named by credentialsSecret"
            .into());
    }
    if user.contains([':', '/']) {
        return Err(format!("the url is not one of {forms}"));
    }
    // A '/' before the first ':' makes it a local path for git, not a remote.
    let Some((host, path)) = rest.split_once(':').filter(|(host, _)| !host.contains('/')) else {
        return Err(format!("the url is not one of {forms}"));
    };
    check_ssh_user(user)?;
    if host.is_empty() {
        return Err("the url has no host".into());
    }
    check_host(host, None)?;
    if path.starts_with('-') {
        return Err("the repository path of the url must not start with '-'".into());
    }
    check_path(path)?;
    Ok(GitUrl { url: raw.to_string(), transport: Transport::Ssh })
}

fn check_ssh_user(user: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if user.is_empty() || user.starts_with('-') || !user.chars().all(valid_char) {
        return Err("the ssh user of the url must be letters, digits, '.', '_' and '-', not starting \
                    with '-'"
            .into());
    }
    Ok(())
}

/// A host name (or IP address, which the `url` crate has already read as one).
fn check_host(host: &str, parsed: Option<url::Host<&str>>) -> Result<(), String> {
    if matches!(parsed, Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        return Ok(());
    }
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if host.starts_with(['-', '.']) || !host.chars().all(valid_char) {
        return Err("the host of the url must be letters, digits, '.', '_' and '-', not starting with \
                    '-' or '.'"
            .into());
    }
    Ok(())
}

/// A repository path: present, and no control characters hidden in percent-encoding.
fn check_path(path: &str) -> Result<(), String> {
    if path.trim_matches('/').is_empty() {
        return Err("the url names no repository path".into());
    }
    let bytes = path.as_bytes();
    let hidden_control = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .is_some_and(|b| b < 0x20 || b == 0x7f)
    });
    if hidden_control {
        return Err("the url contains a percent-encoded control character".into());
    }
    Ok(())
}

/// Checks a branch, tag or commit with Git's rules for ref names (`git check-ref-format`), not
/// starting with `-`, without invisible or text-direction characters, and at most
/// [`MAX_REF_LENGTH`] bytes.
pub fn check_ref(r#ref: &str) -> Result<(), String> {
    if r#ref.is_empty() {
        return Err("the ref is empty".into());
    }
    if r#ref.len() > MAX_REF_LENGTH {
        return Err(format!("the ref is {} bytes long; at most {MAX_REF_LENGTH} are allowed", r#ref.len()));
    }
    if r#ref.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the ref contains whitespace or a control character".into());
    }
    if r#ref.chars().any(is_invisible) {
        return Err("the ref contains an invisible or text-direction character".into());
    }
    // From here on every character of the ref shows as itself: it is safe to repeat.
    let refuse = |why: &str| Err(format!("the ref '{}' {why}", r#ref));
    if r#ref.starts_with('-') {
        return refuse("must not start with '-'");
    }
    if let Some(c) = r#ref.chars().find(|c| "~^:?*[\\".contains(*c)) {
        return refuse(&format!("contains '{c}', which Git does not allow in ref names"));
    }
    for (sequence, what) in [("..", "'..'"), ("@{", "'@{'"), ("//", "'//'")] {
        if r#ref.contains(sequence) {
            return refuse(&format!("contains {what}, which Git does not allow in ref names"));
        }
    }
    if r#ref == "@" {
        return refuse("is not a ref name");
    }
    if r#ref.starts_with('/') || r#ref.ends_with('/') || r#ref.ends_with('.') {
        return refuse("must not start or end with '/' or end with '.'");
    }
    if r#ref.split('/').any(|part| part.starts_with('.') || part.ends_with(".lock")) {
        return refuse("has a part that starts with '.' or ends with '.lock'");
    }
    Ok(())
}

/// Unicode format characters (zero-width, text-direction): they make a value read as
/// something else.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Whether the container runs once (an init container) or keeps syncing (a sidecar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Clone once and exit.
    Once,
    /// Keep the checkout up to date.
    Continuous,
}

/// Where git-sync keeps a repository inside the volume mounted at `mount`: a directory of its
/// own. git-sync empties its root when that is not a valid checkout, so the root must never be
/// a directory that holds anything else (a home with notebooks in it).
pub fn sync_root(mount: &str, repo: &str) -> String {
    format!("{mount}/.git-sync/{repo}")
}

/// A git-sync container that checks `repo` out in the volume `volume`, mounted at `mount` as in
/// the containers that use it, and publishes it as `<checkout_dir>/<name>` (a symlink, relative,
/// to the synced worktree under [`sync_root`]).
pub fn container(repo: &Checkout, volume: &str, mount: &str, checkout_dir: &str, mode: Mode) -> Container {
    let mut env = vec![
        env_var("GITSYNC_REPO", &repo.url),
        env_var("GITSYNC_REF", &repo.r#ref),
        env_var("GITSYNC_ROOT", &sync_root(mount, &repo.name)),
        env_var("GITSYNC_LINK", &format!("{checkout_dir}/{}", repo.name)),
        env_var("GITSYNC_DEPTH", "1"),
    ];
    match mode {
        Mode::Once => env.push(env_var("GITSYNC_ONE_TIME", "true")),
        Mode::Continuous => {
            env.push(env_var("GITSYNC_PERIOD", "30s"));
            env.push(env_var("GITSYNC_MAX_FAILURES", "-1"));
        }
    }
    let mut mounts = vec![
        VolumeMount { name: volume.into(), mount_path: mount.into(), ..VolumeMount::default() },
        VolumeMount { name: "git-sync-tmp".into(), mount_path: "/tmp".into(), ..VolumeMount::default() },
    ];
    match &repo.auth {
        GitAuth::None => {}
        GitAuth::Https { secret } => {
            env.push(env_var("GITSYNC_USERNAME", "").with_secret(secret, "username"));
            env.push(env_var("GITSYNC_PASSWORD", "").with_secret(secret, "password"));
        }
        GitAuth::Ssh { .. } => {
            env.push(env_var("GITSYNC_SSH_KEY_FILE", "/etc/git-secret/ssh"));
            env.push(env_var("GITSYNC_SSH_KNOWN_HOSTS_FILE", "/etc/git-secret/known_hosts"));
            mounts.push(VolumeMount {
                name: repo.credentials_volume(),
                mount_path: "/etc/git-secret".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    let suffix = match mode {
        Mode::Once => "clone",
        Mode::Continuous => "sync",
    };
    Container {
        name: format!("git-{suffix}-{}", repo.name),
        image: Some(GIT_SYNC_IMAGE.into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(container_security(GIT_SYNC_UID, true)),
        ..Container::default()
    }
}

/// The volumes the git-sync containers of `repos` need besides the checkout volume itself.
pub fn volumes(repos: &[Checkout]) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: "git-sync-tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    for repo in repos {
        if let GitAuth::Ssh { secret } = &repo.auth {
            volumes.push(Volume {
                name: repo.credentials_volume(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.clone()),
                    default_mode: Some(0o440),
                    items: Some(vec![
                        KeyToPath {
                            key: "ssh-privatekey".into(),
                            path: "ssh".into(),
                            ..KeyToPath::default()
                        },
                        KeyToPath {
                            key: "known_hosts".into(),
                            path: "known_hosts".into(),
                            ..KeyToPath::default()
                        },
                    ]),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
    }
    volumes
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

trait FromSecret {
    fn with_secret(self, secret: &str, key: &str) -> Self;
}

impl FromSecret for EnvVar {
    fn with_secret(self, secret: &str, key: &str) -> Self {
        EnvVar {
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.into(),
                    key: key.into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(auth: GitAuth) -> Checkout {
        Checkout {
            name: "pipelines".into(),
            url: "https://git.example.com/p.git".into(),
            r#ref: "main".into(),
            auth,
        }
    }

    #[test]
    fn https_credentials_are_referenced_not_copied() {
        let c = container(
            &repo(GitAuth::Https { secret: "creds".into() }),
            "repos",
            "/home",
            "/home/repos",
            Mode::Once,
        );
        let env = c.env.unwrap();
        let password = env.iter().find(|e| e.name == "GITSYNC_PASSWORD").unwrap();
        assert_eq!(password.value, None);
        let selector = password.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
        assert_eq!((selector.name.as_str(), selector.key.as_str()), ("creds", "password"));
        assert!(env.iter().any(|e| e.name == "GITSYNC_ONE_TIME"));
        assert_eq!(c.name, "git-clone-pipelines");
    }

    #[test]
    fn ssh_mounts_key_and_known_hosts_read_only() {
        let r = Checkout {
            url: "git@git.example.com:a/p.git".into(),
            ..repo(Checkout::auth_for("git@x:y", Some("key")))
        };
        let c = container(&r, "repos", "/home", "/home/repos", Mode::Continuous);
        let mount = c.volume_mounts.unwrap().into_iter().find(|m| m.mount_path == "/etc/git-secret").unwrap();
        assert_eq!(mount.read_only, Some(true));
        let vols = volumes(&[r]);
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[1].secret.as_ref().unwrap().default_mode, Some(0o440));
    }

    #[test]
    fn git_sync_owns_only_a_directory_of_its_own() {
        // git-sync empties its root when that is not a valid checkout: never the home itself.
        let c = container(&repo(GitAuth::None), "home", "/home/jovyan", "/home/jovyan/repos", Mode::Once);
        let env: std::collections::BTreeMap<String, String> =
            c.env.unwrap().into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect();
        assert_eq!(env["GITSYNC_ROOT"], "/home/jovyan/.git-sync/pipelines");
        assert_eq!(env["GITSYNC_LINK"], "/home/jovyan/repos/pipelines");
        let mounts = c.volume_mounts.unwrap();
        assert_eq!(mounts[0].mount_path, "/home/jovyan", "mounted where its consumers mount it");
    }

    #[test]
    fn runs_with_read_only_root_and_pinned_image() {
        let c = container(&repo(GitAuth::None), "repos", "/home", "/home/repos", Mode::Once);
        assert_eq!(c.image.as_deref(), Some(GIT_SYNC_IMAGE));
        let sc = c.security_context.unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn accepted_urls_keep_their_form_and_transport() {
        for (url, expected, transport) in [
            ("git@github.com:org/repo.git", "git@github.com:org/repo.git", Transport::Ssh),
            ("https://github.com/org/repo.git", "https://github.com/org/repo.git", Transport::Https),
            ("ssh://git@host:2222/x.git", "ssh://git@host:2222/x.git", Transport::Ssh),
            ("ssh://host/x.git", "ssh://host/x.git", Transport::Ssh),
            ("ssh://git@[::1]/x.git", "ssh://git@[::1]/x.git", Transport::Ssh),
            // Normal form: what git and curl read is what was checked.
            ("HTTPS://GitHub.com:443/Org/Repo.git", "https://github.com/Org/Repo.git", Transport::Https),
            (
                "https://dev.azure.com/org/My%20Project/_git/r",
                "https://dev.azure.com/org/My%20Project/_git/r",
                Transport::Https,
            ),
        ] {
            assert_eq!(check_url(url), Ok(GitUrl { url: expected.into(), transport }), "{url}");
        }
    }

    #[test]
    fn unsafe_urls_are_refused_with_the_reason() {
        for (url, why) in [
            ("", "is empty"),
            ("-oProxyCommand=evil", "must not start with '-'"),
            ("https://github.com/org/repo.git --upload-pack=x", "whitespace"),
            ("https://github.com/org/\u{7}repo", "control character"),
            ("https://gith\u{fc}b.com/org/repo", "non-ASCII"),
            ("https://evil.com\\@github.com/r", "backslash"),
            ("https://user:s3cret@github.com/org/repo.git", "carries a password"),
            ("ssh://git:s3cret@host/x.git", "carries a password"),
            ("git:s3cret@host:x.git", "carries a password"),
            ("https://ghp_s3cret@github.com/org/repo.git", "user name or token"),
            ("https://@github.com/org/repo.git", "user name or token"),
            ("ssh://-oProxyCommand=s3cret/x", "host of the url"),
            ("ssh://-user@host/x", "ssh user"),
            ("-user@host:x", "must not start with '-'"),
            ("user@-host:x", "host of the url"),
            ("user@host:-x", "must not start with '-'"),
            ("ssh:///x.git", "no host"),
            ("@host:x", "ssh user"),
            ("user@:x", "no host"),
            ("https://github.com/", "no repository path"),
            ("git@github.com:", "no repository path"),
            ("https://github.com/r?x=1", "query"),
            ("https://github.com/r#x", "fragment"),
            ("ssh://host/r%0a", "percent-encoded control"),
            ("http://github.com/r", "scheme 'http' is not supported"),
            ("file:///etc/passwd", "scheme 'file' is not supported"),
            ("ext::sh -c x", "whitespace"),
            ("host:path", "not one of"),
            ("/srv/git/r.git", "not one of"),
            ("./r@x:y", "not one of"),
            ("https://github.com:99999/r", "cannot be read"),
        ] {
            let message = check_url(url).expect_err(url);
            assert!(message.contains(why), "{url}: {message}");
            assert!(!message.contains("s3cret"), "{url}: {message}");
        }
        assert!(check_url(&format!("https://h/{}", "a".repeat(MAX_URL_LENGTH))).is_err());
    }

    #[test]
    fn refs_follow_gits_rules() {
        for r#ref in [
            "main",
            "release/1.2",
            "v1.0.0",
            "feature/JIRA-12_x",
            "0123456789abcdef0123456789abcdef01234567",
            "refs/heads/main",
            "feature/caf\u{e9}",
        ] {
            assert_eq!(check_ref(r#ref), Ok(()), "{ref}");
        }
        assert_eq!(check_ref(&"a".repeat(MAX_REF_LENGTH)), Ok(()));
        for (r#ref, why) in [
            ("", "empty"),
            ("-main", "'-'"),
            ("a..b", "'..'"),
            ("a@{1}", "'@{'"),
            ("a b", "whitespace"),
            ("a\u{0}", "control"),
            ("a\u{202e}b", "text-direction"),
            ("a\u{200b}", "invisible"),
            ("a\u{3000}b", "whitespace"),
            ("a~1", "'~'"),
            ("a^", "'^'"),
            ("a:b", "':'"),
            ("a?", "'?'"),
            ("a*", "'*'"),
            ("a[b", "'['"),
            ("a\\b", "'\\'"),
            ("a//b", "'//'"),
            ("/a", "'/'"),
            ("a/", "'/'"),
            ("a.", "'.'"),
            ("a.lock", ".lock"),
            ("a/.b", "starts with '.'"),
            ("x.lock/y", ".lock"),
            ("@", "not a ref name"),
        ] {
            let message = check_ref(r#ref).expect_err(r#ref);
            assert!(message.contains(why), "{ref:?}: {message}");
            assert!(message.len() < 400, "{message}");
        }
        assert!(check_ref(&"a".repeat(MAX_REF_LENGTH + 1)).unwrap_err().contains("at most 255"));
        assert_eq!(
            check_ref("a..b").unwrap_err(),
            "the ref 'a..b' contains '..', which Git does not allow in ref names"
        );
    }

    #[test]
    fn names_fit_the_container_and_volume_names() {
        assert_eq!(check_name(&"a".repeat(MAX_NAME_LENGTH)), Ok(()));
        let longest = Checkout::new(&"a".repeat(MAX_NAME_LENGTH), "https://h/r", "main", Some("s")).unwrap();
        assert!(longest.credentials_volume().len() <= 63);
        for name in ["", "-a", "a-", "A", "a_b", "a.b", "..", "a/b"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LENGTH + 1)).is_err());
    }

    #[test]
    fn values_reach_git_sync_as_environment_values_only() {
        let checkout = Checkout::new("p", "git@github.com:org/repo.git", "release/1.2", Some("key")).unwrap();
        assert_eq!(checkout.auth, GitAuth::Ssh { secret: "key".into() });
        for mode in [Mode::Once, Mode::Continuous] {
            let c = container(&checkout, "repos", "/home", "/home/repos", mode);
            assert_eq!(
                (c.command.as_ref(), c.args.as_ref()),
                (None, None),
                "no argv a value could turn into an option"
            );
            let env = c.env.unwrap();
            let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
            assert_eq!(value("GITSYNC_REPO").as_deref(), Some("git@github.com:org/repo.git"));
            assert_eq!(value("GITSYNC_REF").as_deref(), Some("release/1.2"));
        }
        let https = Checkout::new("p", "https://github.com/org/repo.git", "main", Some("creds")).unwrap();
        assert_eq!(https.auth, GitAuth::Https { secret: "creds".into() });
        assert_eq!(Checkout::new("p", "https://h/r", "main", None).unwrap().auth, GitAuth::None);
    }

    #[test]
    fn auth_follows_the_url() {
        assert_eq!(Checkout::auth_for("https://h/r", None), GitAuth::None);
        assert_eq!(Checkout::auth_for("https://h/r", Some("s")), GitAuth::Https { secret: "s".into() });
        assert_eq!(Checkout::auth_for("ssh://h/r", Some("s")), GitAuth::Ssh { secret: "s".into() });
    }
}
