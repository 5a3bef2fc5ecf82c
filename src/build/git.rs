//! The Git checkout every runtime shares: a git-sync container with a pinned image, read-only
//! root filesystem, and credentials mounted from the repository's Secret.

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
    /// The auth mode implied by the URL and whether a Secret is given.
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

/// Whether the container runs once (an init container) or keeps syncing (a sidecar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Clone once and exit.
    Once,
    /// Keep the checkout up to date.
    Continuous,
}

/// A git-sync container that checks `repo` out as `<root>/<name>` in the volume `volume`.
pub fn container(repo: &Checkout, volume: &str, root: &str, mode: Mode) -> Container {
    let mut env = vec![
        env_var("GITSYNC_REPO", &repo.url),
        env_var("GITSYNC_REF", &repo.r#ref),
        env_var("GITSYNC_ROOT", root),
        env_var("GITSYNC_LINK", &repo.name),
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
        VolumeMount { name: volume.into(), mount_path: root.into(), ..VolumeMount::default() },
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
        let c = container(&repo(GitAuth::Https { secret: "creds".into() }), "repos", "/repos", Mode::Once);
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
        let c = container(&r, "repos", "/repos", Mode::Continuous);
        let mount = c.volume_mounts.unwrap().into_iter().find(|m| m.mount_path == "/etc/git-secret").unwrap();
        assert_eq!(mount.read_only, Some(true));
        let vols = volumes(&[r]);
        assert_eq!(vols.len(), 2);
        assert_eq!(vols[1].secret.as_ref().unwrap().default_mode, Some(0o440));
    }

    #[test]
    fn runs_with_read_only_root_and_pinned_image() {
        let c = container(&repo(GitAuth::None), "repos", "/repos", Mode::Once);
        assert_eq!(c.image.as_deref(), Some(GIT_SYNC_IMAGE));
        let sc = c.security_context.unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn auth_follows_the_url() {
        assert_eq!(Checkout::auth_for("https://h/r", None), GitAuth::None);
        assert_eq!(Checkout::auth_for("https://h/r", Some("s")), GitAuth::Https { secret: "s".into() });
        assert_eq!(Checkout::auth_for("ssh://h/r", Some("s")), GitAuth::Ssh { secret: "s".into() });
    }
}
