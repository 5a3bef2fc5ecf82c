//! PythonEnvironment builders: the hash an approval binds to, the build Job (a virtualenv on a
//! volume, made by `python_env_build.py`), and the mount that puts a ready environment into the
//! pods of the runtimes that use it.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, KeyToPath,
            ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
            ResourceRequirements, SecretVolumeSource, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{ObjectMeta, OwnerReference},
    },
};
use serde::Serialize;

use super::{
    children::{Child, hashed_name},
    pod::{container_security, pod_security},
    workload::{claim_template, config_map_volume, empty_dir},
};
use crate::{
    crd::python_environment::{BuildStrategy, PythonEnvironmentSpec},
    names::{LABEL_WORKSPACE, labels},
};

/// The build script, run by the build Job from its ConfigMap.
pub const BUILD_SCRIPT: &str = include_str!("python_env_build.py");
/// Annotation the admission policy `dataworkspace-pyenv-requester` stamps with the username of
/// whoever created the environment or last changed what it installs.
pub const ANNOTATION_REQUESTED_BY: &str = "dataworkspace.io/requested-by";
/// Annotation on the pod templates of the runtimes using an environment: the build they mount,
/// so a new build rolls them.
pub const ANNOTATION_BUILD: &str = "dataworkspace.io/python-environment-build";
/// Where a build lives: the build Job mounts only its own directory of the volume (`<hash>`)
/// there, writable, and the runtimes mount the directory of the build they use there,
/// read-only. Neither ever sees another build, so a package installed by one build cannot
/// touch an earlier build that running Projects use; and the paths the venv records are the
/// paths it is used at.
pub const MOUNT_PATH: &str = "/opt/dataworkspace/python-env";
/// The build's numeric user (restricted pods need one).
pub const BUILD_UID: i64 = 1000;
/// Bump when the build's commands change in a way that must rebuild every environment.
const RECIPE: u32 = 1;
/// Default size of the environment volume.
const DEFAULT_SIZE: &str = "5Gi";

/// The fields that decide what is installed, in a fixed order: their hash is what an approval
/// names, so any change to them needs a new approval.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Installed<'a> {
    python_version: &'a str,
    packages: &'a [String],
    requirements: Option<&'a str>,
    index_url: Option<&'a str>,
    index_credentials: Option<&'a str>,
    extra_index_urls: &'a [String],
    base_image: Option<&'a str>,
    strategy: BuildStrategy,
    image: Option<&'a crate::crd::python_environment::ImageTarget>,
    storage: Option<&'a crate::crd::common::StorageSpec>,
}

/// SHA-256 (hex) of what the spec installs. Computed from the typed spec, so the order of keys
/// in the manifest never matters, while every change to what is installed does.
pub fn spec_hash(spec: &PythonEnvironmentSpec) -> String {
    let installed = Installed {
        python_version: &spec.python_version,
        packages: &spec.packages,
        requirements: spec.requirements.as_deref(),
        index_url: spec.index_url.as_deref(),
        index_credentials: spec.index_credentials.as_deref(),
        extra_index_urls: &spec.extra_index_urls,
        base_image: spec.base_image.as_deref(),
        strategy: spec.strategy,
        image: spec.image.as_ref(),
        storage: spec.storage.as_ref(),
    };
    sha256_hex(serde_json::to_string(&installed).unwrap_or_default().as_bytes())
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The image the environment is built in and meant to run with.
pub fn image(spec: &PythonEnvironmentSpec) -> String {
    spec.base_image
        .clone()
        .unwrap_or_else(|| format!("docker.io/library/python:{}-slim-bookworm", spec.python_version))
}

/// The requirements file: the packages, one per line, then the requirements text.
pub fn requirements(spec: &PythonEnvironmentSpec) -> String {
    let mut text: String = spec.packages.iter().map(|p| format!("{p}\n")).collect();
    if let Some(more) = &spec.requirements {
        text.push_str(more);
        if !more.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// An approved environment to build.
#[derive(Clone, Debug)]
pub struct Approved<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its namespace (a workspace's).
    pub namespace: &'a str,
    /// The workspace, for the label.
    pub workspace: &'a str,
    /// Owner reference to the PythonEnvironment.
    pub owner: OwnerReference,
    /// The approved spec.
    pub spec: &'a PythonEnvironmentSpec,
    /// Its [`spec_hash`].
    pub hash: &'a str,
    /// The Secret key of the connection named by `indexCredentials`.
    pub index_credentials: Option<crate::crd::common::SecretKeyRef>,
    /// The Secret key of the connection named by `image.pushCredentials`.
    pub push_credentials: Option<crate::crd::common::SecretKeyRef>,
}

impl Approved<'_> {
    fn meta(&self, name: &str, component: &str) -> ObjectMeta {
        let mut all = labels("python-environment", self.name, component);
        all.insert(LABEL_WORKSPACE.into(), self.workspace.into());
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.into()),
            labels: Some(all),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Name of an environment's volume.
pub fn volume_name(environment: &str) -> String {
    format!("{environment}-env")
}

/// Name of an environment's lock ConfigMap.
pub fn lock_name(environment: &str) -> String {
    format!("{environment}-lock")
}

/// Name of the build Job of one spec: a new spec (or recipe) makes a new Job, since a Job's
/// spec is immutable. Environment names have at most 48 characters; the base keeps 52, and the
/// hash covers the whole name, so two environments sharing a prefix never share a Job.
pub fn job_name(environment: &str, hash: &str) -> String {
    let base: String = environment.chars().take(46).collect();
    hashed_name(&format!("{base}-build"), &(environment, hash, RECIPE))
}

/// The directory of one build on the volume: the spec hash and the build Job's UID, so a
/// rebuild of the same spec (its Job deleted to retry, say) never rewrites a directory that
/// running pods mount.
pub fn build_directory(hash: &str, job_uid: &str) -> String {
    format!("{hash}-{job_uid}")
}

/// The pod label the Job controller sets to the Job's UID (reserved: no tenant sets it).
pub const LABEL_CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";

/// What the build script reads (`environment.json`): never a command line, so nothing in the
/// spec can become an option.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildConfig<'a> {
    requirements: String,
    index_url: Option<&'a str>,
    extra_index_urls: &'a [String],
    target: String,
}

/// The children of an approved environment, in apply order: the build's ConfigMap (its
/// configuration and script), for strategy `Virtualenv` the volume (created once, kept while
/// the environment exists), and the build Job (created once per spec). Strategy `Image` builds
/// the same virtualenv in an init container, as a layer that a second container appends to the
/// base image and pushes (crane): no privileges, no container runtime, Pod Security
/// `restricted` like every other build.
pub fn children(env: &Approved) -> Vec<Child> {
    let config_name = format!("{}-build", env.name);
    let config = BuildConfig {
        requirements: requirements(env.spec),
        index_url: env.spec.index_url.as_deref(),
        extra_index_urls: &env.spec.extra_index_urls,
        target: MOUNT_PATH.into(),
    };
    let config_map = ConfigMap {
        metadata: env.meta(&config_name, "build"),
        data: Some(BTreeMap::from([
            ("environment.json".into(), serde_json::to_string_pretty(&config).unwrap_or_default()),
            ("build.py".into(), BUILD_SCRIPT.into()),
        ])),
        ..ConfigMap::default()
    };
    let storage = env.spec.storage.as_ref();
    let size = storage.and_then(|s| s.size.clone()).unwrap_or_else(|| Quantity(DEFAULT_SIZE.into()));
    let mut volume =
        claim_template(&volume_name(env.name), &size, storage.and_then(|s| s.storage_class_name.as_deref()));
    volume.metadata = env.meta(&volume_name(env.name), "volume");
    match env.spec.strategy {
        BuildStrategy::Virtualenv => {
            vec![
                Child::ConfigMap(config_map),
                Child::Volume(volume),
                Child::Job(build_job(env, &config_name)),
            ]
        }
        BuildStrategy::Image => vec![Child::ConfigMap(config_map), Child::Job(build_job(env, &config_name))],
    }
}

/// The crane image (go-containerregistry) that pushes strategy `Image`'s layer: its debug
/// variant, for the shell that keeps the pushed reference.
pub const CRANE_IMAGE: &str = "gcr.io/go-containerregistry/crane/debug:v0.22.1";
/// The numeric user of the push container (distroless `nonroot`).
const PUSH_UID: i64 = 65532;
/// The push: the venv's layer on top of the base image, tagged, its digest reference kept in
/// the termination message. The base image and tag come as positional parameters ($1, $2),
/// never as shell text.
pub const PUSH_SCRIPT: &str =
    "set -eu\ncrane append --base \"$1\" --new_layer \"$LAYER\" --new_tag \"$2\" > \"$MESSAGE\"\n";

/// The tag strategy `Image` pushes: the repository and the first 16 digits of the spec hash.
pub fn image_tag(repository: &str, hash: &str) -> String {
    format!("{repository}:{}", &hash[..hash.len().min(16)])
}

fn build_job(env: &Approved, config_name: &str) -> Job {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let var = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let image_target = match env.spec.strategy {
        BuildStrategy::Image => env.spec.image.as_ref(),
        BuildStrategy::Virtualenv => None,
    };
    let mut vars = vec![
        var("HOME", "/tmp"),
        var("TMPDIR", "/tmp"),
        var("DWO_ENV_CONFIG", "/config/environment.json"),
        var("PYTHONDONTWRITEBYTECODE", "1"),
        EnvVar {
            name: "BUILD_ID".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: format!("metadata.labels['{LABEL_CONTROLLER_UID}']"),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        },
    ];
    // The index credentials stay in their Secret; the build reads them from its environment.
    vars.extend(
        env.index_credentials
            .as_ref()
            .map(|r| super::env::from_secret("DWO_INDEX_CREDENTIALS", &r.name, &r.key)),
    );
    let mut volumes = vec![config_map_volume("config", config_name), empty_dir("tmp")];
    let mut venv_mounts = vec![mount("config", "/config", true), mount("tmp", "/tmp", false)];
    if image_target.is_some() {
        // The venv goes into a layer of its own, on top of the base image.
        vars.push(var("DWO_LAYER", "/work/layer.tar"));
        venv_mounts.push(mount("target", MOUNT_PATH, false));
        venv_mounts.push(mount("work", "/work", false));
        volumes.extend([empty_dir("target"), empty_dir("work")]);
    } else {
        // Its own directory of the volume only, named by the spec hash and this Job's UID
        // (the downward API).
        venv_mounts.push(VolumeMount {
            sub_path_expr: Some(build_directory(env.hash, "$(BUILD_ID)")),
            ..mount("env", MOUNT_PATH, false)
        });
        volumes.push(Volume {
            name: "env".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume_name(env.name),
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    let venv = Container {
        name: "build".into(),
        image: Some(image(env.spec)),
        command: Some(vec!["python3".into(), "/config/build.py".into()]),
        env: Some(vars),
        resources: Some(build_resources()),
        security_context: Some(container_security(BUILD_UID, true)),
        volume_mounts: Some(venv_mounts),
        // The lock (or the error) goes to the termination message, read by the operator: the
        // build needs no API rights.
        termination_message_policy: Some("File".into()),
        ..Container::default()
    };
    let (init_containers, containers) = match image_target {
        None => (None, vec![venv]),
        Some(target) => {
            let mut push_vars = vec![
                var("HOME", "/tmp"),
                var("LAYER", "/work/layer.tar"),
                var("MESSAGE", "/dev/termination-log"),
            ];
            let mut push_mounts = vec![mount("work", "/work", true), mount("tmp", "/tmp", false)];
            if let Some(credentials) = &env.push_credentials {
                // The connection's Secret key, mounted as config.json: referenced, not copied.
                push_vars.push(var("DOCKER_CONFIG", "/docker"));
                push_mounts.push(mount("docker", "/docker", true));
                volumes.push(Volume {
                    name: "docker".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(credentials.name.clone()),
                        items: Some(vec![KeyToPath {
                            key: credentials.key.clone(),
                            path: "config.json".into(),
                            mode: None,
                        }]),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                });
            }
            let push = Container {
                name: "push".into(),
                image: Some(CRANE_IMAGE.into()),
                command: Some(vec![
                    "/busybox/sh".into(),
                    "-c".into(),
                    PUSH_SCRIPT.into(),
                    "push".into(),
                    image(env.spec),
                    image_tag(&target.repository, env.hash),
                ]),
                env: Some(push_vars),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".into(), Quantity("100m".into())),
                        ("memory".into(), Quantity("128Mi".into())),
                    ])),
                    limits: Some(BTreeMap::from([("memory".into(), Quantity("512Mi".into()))])),
                    ..ResourceRequirements::default()
                }),
                security_context: Some(container_security(PUSH_UID, true)),
                volume_mounts: Some(push_mounts),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                ..Container::default()
            };
            (Some(vec![venv]), vec![push])
        }
    };
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        restart_policy: Some("Never".into()),
        security_context: Some(pod_security(BUILD_UID, BUILD_UID, Some(BUILD_UID))),
        init_containers,
        containers,
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    let name = job_name(env.name, env.hash);
    Job {
        metadata: env.meta(&name, "build"),
        spec: Some(JobSpec {
            // pip's failures are deterministic: one attempt, its error in status.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(1800),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("python-environment", env.name, "build")),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

fn build_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity("500m".into())),
            ("memory".into(), Quantity("1Gi".into())),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), Quantity("2".into())),
            ("memory".into(), Quantity("2Gi".into())),
        ])),
        ..ResourceRequirements::default()
    }
}

/// A built environment a runtime mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The PythonEnvironment's name.
    pub name: String,
    /// Python minor version, for the `site-packages` path.
    pub python_version: String,
    /// The build's directory on the volume ([`build_directory`]), for strategy `Virtualenv`.
    pub directory: String,
    /// The built image by digest, for strategy `Image`: the runtimes run it.
    pub image: Option<String>,
}

/// Mounts a ready environment read-only into every container of a pod (they all run user
/// code) and puts its `site-packages` first on the import path; the pod template's annotation
/// names the build, so a new build rolls the pods.
pub fn mount(template: &mut PodTemplateSpec, env: &Ready) {
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata.annotations.get_or_insert_with(BTreeMap::new).insert(
        ANNOTATION_BUILD.into(),
        format!("{}/{}", env.name, env.image.as_deref().unwrap_or(&env.directory)),
    );
    let Some(pod) = template.spec.as_mut() else { return };
    if env.image.is_none() {
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: "python-env".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: volume_name(&env.name),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    let site_packages = format!("{MOUNT_PATH}/lib/python{}/site-packages", env.python_version);
    for container in &mut pod.containers {
        match &env.image {
            // The environment is in the image: the container runs it.
            Some(image) => container.image = Some(image.clone()),
            None => container.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
                name: "python-env".into(),
                mount_path: MOUNT_PATH.into(),
                sub_path: Some(env.directory.clone()),
                read_only: Some(true),
                ..VolumeMount::default()
            }),
        }
        let vars = container.env.get_or_insert_with(Vec::new);
        vars.retain(|v| v.name != "PYTHONPATH");
        vars.push(EnvVar {
            name: "PYTHONPATH".into(),
            value: Some(site_packages.clone()),
            ..EnvVar::default()
        });
        vars.push(EnvVar {
            name: "DATAWORKSPACE_PYTHON_ENV".into(),
            value: Some(MOUNT_PATH.into()),
            ..EnvVar::default()
        });
    }
}

/// Where the Studio mounts each environment it offers as a kernel: `<KERNELS_ROOT>/<name>`.
pub const KERNELS_ROOT: &str = "/opt/dataworkspace/python-envs";
/// Where the Studio's kernel specs are mounted (added to `JUPYTER_PATH`).
pub const KERNEL_SPECS: &str = "/opt/dataworkspace/jupyter";
/// Annotation naming the environment builds the Studio offers, so a new build rolls it.
pub const ANNOTATION_KERNELS: &str = "dataworkspace.io/python-environment-kernels";

/// The Jupyter kernel spec (`kernel.json`) of each environment: the server's own Python with
/// the environment's `site-packages` first on the import path.
pub fn kernel_specs(kernels: &[Ready]) -> BTreeMap<String, String> {
    kernels
        .iter()
        .map(|k| {
            let spec = serde_json::json!({
                "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": format!("Python {} ({})", k.python_version, k.name),
                "language": "python",
                "env": {
                    "PYTHONPATH": format!("{KERNELS_ROOT}/{}/lib/python{}/site-packages", k.name, k.python_version),
                    "DATAWORKSPACE_PYTHON_ENV": format!("{KERNELS_ROOT}/{}", k.name),
                },
            });
            (k.name.clone(), serde_json::to_string_pretty(&spec).unwrap_or_default())
        })
        .collect()
}

/// Offers `kernels` in the container `container` of a pod (the Studio's JupyterLab): each
/// build mounted read-only at `<KERNELS_ROOT>/<name>`, the kernel specs from the ConfigMap
/// `specs` at `<KERNEL_SPECS>/kernels/<name>/kernel.json` on `JUPYTER_PATH`, and the builds
/// named on the template so a new one rolls the pod.
pub fn offer_kernels(template: &mut PodTemplateSpec, container: &str, kernels: &[Ready], specs: &str) {
    if kernels.is_empty() {
        return;
    }
    let builds: Vec<String> = kernels.iter().map(|k| format!("{}/{}", k.name, k.directory)).collect();
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ANNOTATION_KERNELS.into(), builds.join(","));
    let Some(pod) = template.spec.as_mut() else { return };
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    volumes.extend(kernels.iter().map(|k| Volume {
        name: format!("pyenv-{}", k.name),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: volume_name(&k.name),
            read_only: Some(true),
        }),
        ..Volume::default()
    }));
    volumes.push(Volume {
        name: "kernel-specs".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: specs.into(),
            items: Some(
                kernels
                    .iter()
                    .map(|k| KeyToPath {
                        key: k.name.clone(),
                        path: format!("kernels/{}/kernel.json", k.name),
                        mode: None,
                    })
                    .collect(),
            ),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    });
    let Some(lab) = pod.containers.iter_mut().find(|c| c.name == container) else { return };
    let mounts = lab.volume_mounts.get_or_insert_with(Vec::new);
    mounts.extend(kernels.iter().map(|k| VolumeMount {
        name: format!("pyenv-{}", k.name),
        mount_path: format!("{KERNELS_ROOT}/{}", k.name),
        sub_path: Some(k.directory.clone()),
        read_only: Some(true),
        ..VolumeMount::default()
    }));
    mounts.push(VolumeMount {
        name: "kernel-specs".into(),
        mount_path: KERNEL_SPECS.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    lab.env.get_or_insert_with(Vec::new).push(EnvVar {
        name: "JUPYTER_PATH".into(),
        value: Some(KERNEL_SPECS.into()),
        ..EnvVar::default()
    });
}

/// The image reference a push reported in its termination message: `<repository>@sha256:<64
/// hex>` of the expected repository, nothing else.
pub fn image_from_message(message: &str, repository: &str) -> Option<String> {
    let reference = message.trim();
    let digest = reference.strip_prefix(repository)?.strip_prefix("@sha256:")?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| reference.to_string())
}

/// The lock a build reported in its termination message: the plain lock, or `gz:` and the
/// base64 of its gzip. `None` for anything else (an error, a truncated message).
pub fn lock_from_message(message: &str) -> Option<String> {
    let lock = match message.strip_prefix("gz:") {
        Some(encoded) => {
            use base64::Engine;
            let compressed = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut text)
                .ok()?;
            text
        }
        None => message.to_string(),
    };
    let well_formed = !lock.is_empty()
        && lock.lines().all(|line| {
            let Some((requirement, hash)) = line.split_once(" --hash=sha256:") else { return false };
            requirement.contains("==") && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
        });
    well_formed.then_some(lock)
}

/// Whether a spec can be built: strategy `Image` needs its target (the schema asks for it too).
pub fn buildable(spec: &PythonEnvironmentSpec) -> Result<(), String> {
    match (spec.strategy, &spec.image) {
        (BuildStrategy::Image, None) => Err("strategy Image needs spec.image".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::pod::tests::assert_restricted;

    fn spec(yaml: &str) -> PythonEnvironmentSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn approved(spec: &PythonEnvironmentSpec, hash: &str) -> Vec<Child> {
        children(&approved_env(spec, hash))
    }

    fn approved_env<'a>(spec: &'a PythonEnvironmentSpec, hash: &'a str) -> Approved<'a> {
        Approved {
            name: "analytics-py312",
            namespace: "dw-analytics",
            workspace: "analytics",
            owner: OwnerReference {
                api_version: "dataworkspace.io/v1alpha1".into(),
                kind: "PythonEnvironment".into(),
                name: "analytics-py312".into(),
                uid: "uid-env".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
            spec,
            hash,
            index_credentials: Some(crate::crd::common::SecretKeyRef {
                name: "pypi-token".into(),
                key: "value".into(),
            }),
            push_credentials: None,
        }
    }

    #[test]
    fn the_spec_hash_ignores_key_order_and_follows_what_is_installed() {
        let a = spec(
            "pythonVersion: '3.12'\npackages: [pandas==2.3.3, six]\nindexUrl: https://pypi.example/simple",
        );
        let b = spec(
            "indexUrl: https://pypi.example/simple\npackages: [pandas==2.3.3, six]\npythonVersion: '3.12'",
        );
        assert_eq!(spec_hash(&a), spec_hash(&b));
        assert_eq!(spec_hash(&a).len(), 64);
        let mut c = a.clone();
        c.packages[0] = "pandas==2.3.2".into();
        assert_ne!(spec_hash(&a), spec_hash(&c), "a package change needs a new approval");
        let mut d = a.clone();
        d.index_url = Some("https://other.example/simple".into());
        assert_ne!(spec_hash(&a), spec_hash(&d), "so does another index");
        // What does not change what is installed does not change the hash.
        let mut e = a.clone();
        e.approval = Some(Default::default());
        e.rejection = Some(Default::default());
        assert_eq!(spec_hash(&a), spec_hash(&e));
        // The volume is part of what is approved (a StorageClass is the platform's business).
        let mut f = a.clone();
        f.storage = Some(Default::default());
        assert_ne!(spec_hash(&a), spec_hash(&f));
    }

    fn pod_mounts(children: &[Child]) -> Vec<VolumeMount> {
        let Some(Child::Job(job)) = children.iter().find(|c| matches!(c, Child::Job(_))) else { panic!() };
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.containers[0].volume_mounts.clone().unwrap()
    }

    #[test]
    fn the_build_reads_its_input_from_a_file_and_runs_restricted() {
        let s = spec(
            "packages: [six==1.17.0]\nrequirements: |\n  attrs==25.4.0\nindexUrl: https://pypi.example/simple",
        );
        let children = approved(&s, "abc");
        let Child::ConfigMap(config) = &children[0] else { panic!("{children:?}") };
        let json: serde_json::Value =
            serde_json::from_str(&config.data.as_ref().unwrap()["environment.json"]).unwrap();
        assert_eq!(json["requirements"], "six==1.17.0\nattrs==25.4.0\n");
        assert_eq!(json["target"], MOUNT_PATH);
        let mounts = pod_mounts(&children);
        let env_mount = mounts.iter().find(|m| m.name == "env").unwrap();
        assert_eq!(
            env_mount.sub_path_expr.as_deref(),
            Some("abc-$(BUILD_ID)"),
            "the build sees only its own directory"
        );
        assert_eq!(json["indexUrl"], "https://pypi.example/simple");
        let Child::Job(job) = &children[2] else { panic!("{children:?}") };
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_restricted(pod);
        let command = pod.containers[0].command.clone().unwrap();
        assert_eq!(command, vec!["python3", "/config/build.py"], "no spec value on the command line");
        assert!(pod.containers[0].args.is_none());
        assert_eq!(pod.automount_service_account_token, Some(false), "the build has no API rights");
        let credentials =
            pod.containers[0].env.iter().flatten().find(|v| v.name == "DWO_INDEX_CREDENTIALS").unwrap();
        assert_eq!(credentials.value, None, "credentials stay in their Secret");
        assert_eq!(
            credentials.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
            "pypi-token"
        );
        assert!(!config.data.as_ref().unwrap()["environment.json"].contains("pypi-token"));
        assert!(job.metadata.name.as_ref().unwrap().len() <= 63);
        let long = job_name(&"e".repeat(48), "abc");
        assert!(long.len() <= 63, "{long}");
        assert_ne!(job_name("e", "abc"), job_name("e", "abd"), "a new spec, a new Job");
        let prefix = "p".repeat(46);
        assert_ne!(job_name(&format!("{prefix}-a"), "abc"), job_name(&format!("{prefix}-b"), "abc"));
    }

    #[test]
    fn a_ready_environment_is_mounted_read_only_first_on_the_path_and_rolls_the_pods() {
        let mut template = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "notebook".into(),
                    env: Some(vec![EnvVar {
                        name: "PYTHONPATH".into(),
                        value: Some("/x".into()),
                        ..EnvVar::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..PodTemplateSpec::default()
        };
        let ready = Ready {
            name: "py".into(),
            python_version: "3.12".into(),
            directory: "h1-u1".into(),
            image: None,
        };
        mount(&mut template, &ready);
        let pod = template.spec.as_ref().unwrap();
        let volume = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(volume.persistent_volume_claim.as_ref().unwrap().read_only, Some(true));
        let container = &pod.containers[0];
        let mounted = &container.volume_mounts.as_ref().unwrap()[0];
        assert_eq!((mounted.sub_path.as_deref(), mounted.read_only), (Some("h1-u1"), Some(true)));
        let path: Vec<&str> = container
            .env
            .iter()
            .flatten()
            .filter(|v| v.name == "PYTHONPATH")
            .filter_map(|v| v.value.as_deref())
            .collect();
        assert_eq!(path, vec!["/opt/dataworkspace/python-env/lib/python3.12/site-packages"]);
        let annotations = template.metadata.as_ref().unwrap().annotations.as_ref().unwrap();
        assert_eq!(annotations[ANNOTATION_BUILD], "py/h1-u1");
    }

    #[test]
    fn only_a_well_formed_lock_is_taken() {
        let hash = "a".repeat(64);
        let lock = format!("six==1.17.0 --hash=sha256:{hash}\n");
        assert_eq!(lock_from_message(&lock).as_deref(), Some(lock.as_str()));
        let compressed = {
            use base64::Engine;
            use std::io::Write;
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(lock.as_bytes()).unwrap();
            format!("gz:{}", base64::engine::general_purpose::STANDARD.encode(encoder.finish().unwrap()))
        };
        assert_eq!(lock_from_message(&compressed).as_deref(), Some(lock.as_str()));
        for bad in ["", "error: no such package", "six==1.17.0\n", "six --hash=sha256:abc\n", "gz:!!!"] {
            assert_eq!(lock_from_message(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strategy_image_builds_a_layer_and_pushes_it_with_referenced_credentials_restricted() {
        let s = spec(
            "strategy: Image\nbaseImage: quay.io/jupyter/minimal-notebook:python-3.12\npackages: [six==1.17.0]\nimage: {repository: registry.example.com/data/envs, pushCredentials: registry}",
        );
        let hash = spec_hash(&s);
        let mut env = approved_env(&s, &hash);
        env.push_credentials = Some(crate::crd::common::SecretKeyRef {
            name: "registry-push".into(),
            key: "config.json".into(),
        });
        let children = children(&env);
        assert!(!children.iter().any(|c| matches!(c, Child::Volume(_))), "no volume: the image holds it");
        let Some(Child::Job(job)) = children.iter().find(|c| matches!(c, Child::Job(_))) else { panic!() };
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_restricted(pod);
        let build = &pod.init_containers.as_ref().unwrap()[0];
        assert!(build.env.iter().flatten().any(|v| v.name == "DWO_LAYER"));
        let push = &pod.containers[0];
        let command = push.command.clone().unwrap();
        // The script is fixed text; the base image and tag are positional parameters.
        assert_eq!(command[2], PUSH_SCRIPT);
        assert_eq!(
            &command[4..],
            [
                "quay.io/jupyter/minimal-notebook:python-3.12".to_string(),
                format!("registry.example.com/data/envs:{}", &hash[..16])
            ]
        );
        let docker =
            pod.volumes.iter().flatten().find(|v| v.name == "docker").unwrap().secret.as_ref().unwrap();
        assert_eq!(
            docker.secret_name.as_deref(),
            Some("registry-push"),
            "the connection's Secret, referenced"
        );
        assert_eq!(docker.items.as_ref().unwrap()[0].path, "config.json");
        insta::assert_yaml_snapshot!("build-job-image", job);
    }

    #[test]
    fn only_a_digest_of_the_repository_is_taken_from_the_push() {
        let digest = "0123456789abcdef".repeat(4);
        let repository = "registry.example.com/data/envs";
        let reference = format!("{repository}@sha256:{digest}");
        assert_eq!(
            image_from_message(&format!("{reference}\n"), repository).as_deref(),
            Some(reference.as_str())
        );
        for bad in [
            format!("evil.example.com/x@sha256:{digest}"),
            format!("{repository}:latest"),
            format!("{repository}@sha256:{}", &digest[..10]),
            format!("{repository}-other@sha256:{digest}"),
            "Error: unauthorized".to_string(),
        ] {
            assert_eq!(image_from_message(&bad, repository), None, "{bad}");
        }
        // A Project runs the image, without a volume.
        let mut template = PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![Container { name: "c".into(), ..Container::default() }],
                ..PodSpec::default()
            }),
            ..PodTemplateSpec::default()
        };
        let ready = Ready {
            name: "py".into(),
            python_version: "3.12".into(),
            directory: String::new(),
            image: Some(reference.clone()),
        };
        mount(&mut template, &ready);
        let pod = template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some(reference.as_str()));
        assert!(pod.volumes.is_none());
    }

    #[test]
    fn golden_build_objects() {
        let s = spec("packages: [six==1.17.0]");
        for child in approved(&s, &spec_hash(&s)) {
            match child {
                Child::ConfigMap(mut o) => {
                    // The script is its own file; the snapshot shows the configuration.
                    o.data.as_mut().unwrap().remove("build.py");
                    insta::assert_yaml_snapshot!("build-config", o)
                }
                Child::Volume(o) => insta::assert_yaml_snapshot!("volume", o),
                Child::Job(o) => insta::assert_yaml_snapshot!("build-job", o),
                other => panic!("{other:?}"),
            }
        }
    }
}
