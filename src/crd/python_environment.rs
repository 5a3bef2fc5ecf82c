//! `PythonEnvironment`: a requested Python environment, approved by an admin, then built.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Conditions, IMAGE_MESSAGE, IMAGE_RULE, StorageSpec, conditions_schema};

/// A Python environment a workspace member requests. An admin other than the requester must
/// approve it, and the approval binds to the exact spec it saw: changing what is installed needs
/// a new approval. Approved environments are built once and used by Projects that reference them.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[kube(
    group = "dataworkspace.io",
    version = "v1alpha1",
    kind = "PythonEnvironment",
    plural = "pythonenvironments",
    shortname = "pyenv",
    category = "dataworkspace",
    namespaced,
    status = "PythonEnvironmentStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A requested Python environment: approved by an admin, built once, used by Projects.",
    printcolumn(name = "Python", type_ = "string", json_path = ".spec.pythonVersion"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".status.requester"),
    printcolumn(name = "Approver", type_ = "string", json_path = ".status.approver"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 48").message("PythonEnvironment names are at most 48 characters: the build Job and volume names are derived from them"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("PythonEnvironment names must be DNS labels that start with a letter"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.packages) && size(self.packages) > 0) || has(self.requirements)").message("list packages or give requirements (or both)"))]
#[x_kube(validation = Rule::new("self.strategy != 'Image' || has(self.image)").message("strategy Image needs spec.image: the repository to push the built image to"))]
pub struct PythonEnvironmentSpec {
    /// Python minor version, for example `3.12`.
    #[serde(default = "default_python_version")]
    #[schemars(regex(pattern = r"^3\.[0-9]{1,2}$"))]
    pub python_version: String,
    /// Requirement specifiers (PEP 508 without direct references), for example
    /// `pandas==2.3.3` or `psycopg[binary]>=3.2; python_version >= "3.11"`. pip options, URLs,
    /// paths, archives and `name @ url` references are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), inner(length(min = 1, max = 512)))]
    #[x_kube(validation = Rule::new("self.all(p, !p.startsWith('-'))").message("each package is a requirement specifier such as 'pandas==2.3.3'; pip options are not allowed"))]
    #[x_kube(validation = Rule::new(PACKAGES_RULE).message("each package is a name with optional extras, version and markers, such as 'pandas==2.3.3'; URLs, paths, archives, direct references ('name @ url') and options are not allowed"))]
    pub packages: Vec<String>,
    /// A requirements file, as text: one requirement specifier per line (as in `packages`),
    /// blank lines and `#` comments. pip options (lines starting with `-`), URLs, paths and
    /// direct references are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    #[x_kube(validation = Rule::new("!self.matches('(?m)^\\\\s*-')").message("requirements may not contain pip options (lines starting with '-')"))]
    #[x_kube(validation = Rule::new(REQUIREMENTS_RULE).message("requirements lines must be requirement specifiers such as 'pandas==2.3.3', blank or '#' comments; URLs, paths, archives, direct references ('name @ url'), options and line continuations are not allowed"))]
    pub requirements: Option<String>,
    /// Package index to install from instead of the default index: `https://host[:port]/path`,
    /// without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(INDEX_URL_RULE).message("indexUrl must be an https://host[:port]/path URL without whitespace"))]
    #[x_kube(validation = Rule::new(INDEX_URL_CREDENTIALS_RULE).message("indexUrl must not carry credentials (user:password@ or token@)"))]
    pub index_url: Option<String>,
    /// A Workspace connection (`spec.connections[].name`) whose value is `user:password` for
    /// the indexes: the build gets it from the connection's Secret, for the index hosts only.
    /// The packages being built can read it, so give a read-only token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub index_credentials: Option<String>,
    /// Further package indexes, each as `indexUrl`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(min = 1, max = 2048)))]
    #[x_kube(validation = Rule::new(EXTRA_INDEX_URLS_RULE).message("extraIndexUrls must be https://host[:port]/path URLs without whitespace"))]
    #[x_kube(validation = Rule::new(EXTRA_INDEX_URLS_CREDENTIALS_RULE).message("extraIndexUrls must not carry credentials (user:password@ or token@)"))]
    pub extra_index_urls: Vec<String>,
    /// Image the environment is built in and run with; the operator's default for the Python
    /// version when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub base_image: Option<String>,
    /// How the environment is built.
    #[serde(default)]
    pub strategy: BuildStrategy,
    /// Where strategy `Image` pushes the image it builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageTarget>,
    /// Volume for the virtualenv (strategy `Virtualenv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// The admin's approval. Set by someone allowed to `approve` pythonenvironments who is not
    /// the requester, naming themselves (the admission policy `dataworkspace-pyenv-approval`
    /// checks all three); valid only while `specHash` equals `status.specHash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// An admin's rejection, with a reason; it holds for the spec it names (`specHash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection: Option<Rejection>,
}

/// Where a built image goes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageTarget {
    /// The repository, without tag or digest: `registry.example.com[:port]/path`. The image is
    /// tagged with the spec hash and used by its digest.
    #[schemars(length(min = 3, max = 255))]
    #[x_kube(validation = Rule::new(REPOSITORY_RULE).message("image.repository must be a registry host (with an optional port) and a lower-case path, such as registry.example.com/data/environments, without tag or digest"))]
    pub repository: String,
    /// A Workspace connection (`spec.connections[].name`) whose value is a Docker
    /// `config.json` with the credentials to push to the repository; none for a registry that
    /// takes anonymous pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub push_credentials: Option<String>,
}

/// A registry host with a dot or a port (so it is never taken for a Docker Hub user) and a
/// path of lower-case components: no tag, digest, option or whitespace.
const REPOSITORY_RULE: &str = r"self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+$') && (self.split('/')[0].contains('.') || self.split('/')[0].contains(':'))";

/// A rejection of one exact spec.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// Username of the rejecting admin.
    #[schemars(length(min = 1, max = 253))]
    pub rejected_by: String,
    /// The `status.specHash` the admin rejected.
    #[schemars(length(min = 1, max = 128))]
    pub spec_hash: String,
    /// Why, for the requester.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
}

/// One requirement specifier: a name starting with a letter or digit, then only what extras,
/// version specifiers and environment markers use. No `@`, `/`, `\`, `:`, `$`, `#` or control
/// character (so no URL, path, direct reference or variable), no ` -` (no per-requirement
/// option) and no archive file name.
const PACKAGES_RULE: &str = r#"self.all(p, p.matches(r'''^[A-Za-z0-9][-A-Za-z0-9._\[\],<>=!~*+;'"() ]*$''') && !p.contains(' -') && !p.matches(r'\.(whl|zip|tar|gz|tgz|bz2|xz)\s*$'))"#;
/// Every line of a requirements text is blank, a `#` comment, or a requirement specifier as in
/// [`PACKAGES_RULE`] with an optional trailing comment (preceded by whitespace, as pip requires).
const REQUIREMENTS_RULE: &str = r#"self.matches(r'''^(([ \t]*|[ \t]*#[^\n]*|[ \t]*[A-Za-z0-9][-A-Za-z0-9._\[\],<>=!~*+;'"() \t]*([ \t]#[^\n]*)?)\r?(\n|$))*$''') && !self.matches(r'(?m)^[^#\n]*[ \t]-') && !self.matches(r'(?m)^[^#\n]*\.(whl|zip|tar|gz|tgz|bz2|xz)[ \t\r]*(#|$)')"#;
/// An https URL with a host, optionally user info (refused by the credentials rule, for a
/// clearer message), and no whitespace or control characters.
const INDEX_URL_RULE: &str = r"self.matches(r'^https://([^/@]*@)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^\s\p{Cc}]*)?$')";
/// No user info in an https URL.
const INDEX_URL_CREDENTIALS_RULE: &str = r"!self.matches(r'^https://[^/]*@')";
/// [`INDEX_URL_RULE`] for every item.
const EXTRA_INDEX_URLS_RULE: &str = r"self.all(u, u.matches(r'^https://([^/@]*@)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^\s\p{Cc}]*)?$'))";
/// [`INDEX_URL_CREDENTIALS_RULE`] for every item.
const EXTRA_INDEX_URLS_CREDENTIALS_RULE: &str = r"self.all(u, !u.matches(r'^https://[^/]*@'))";

fn default_python_version() -> String {
    "3.12".into()
}

/// How an environment is built.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum BuildStrategy {
    /// A virtualenv on a volume, built by a Job and mounted into the Projects that use it.
    #[default]
    Virtualenv,
    /// A container image built in the cluster.
    Image,
}

/// An approval of one exact spec.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// Username of the approving admin.
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: String,
    /// The `status.specHash` the admin approved.
    #[schemars(length(min = 1, max = 128))]
    pub spec_hash: String,
    /// Why it was approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub comment: Option<String>,
}

/// Observed state of a PythonEnvironment.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PythonEnvironmentStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` summarises; `Approved` and `Built` detail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// `PendingApproval`, `Rejected`, `Building`, `Ready` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Who asked for what the spec installs: the user who created the environment or last
    /// changed what it installs, as the API server authenticated them (stamped by the admission
    /// policy `dataworkspace-pyenv-requester`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Who approved the current spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// Hash of everything that decides what is installed; an approval names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The spec hash the approval names, when it is not the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_spec_hash: Option<String>,
    /// The ready build's directory on the environment's volume (`<specHash>-<build Job UID>`),
    /// which the Projects mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The built image by digest (strategy `Image`), which the Projects run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Name of the ConfigMap holding the resolved lock of the last build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_config_map: Option<String>,
    /// SHA-256 of the lock: Projects using the environment roll when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_hash: Option<String>,
    /// Projects that use this environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
}
