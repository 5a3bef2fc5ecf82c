//! Validation of a Workspace into a [`ValidatedWorkspace`]: everything downstream reads this, not
//! the raw spec. Checks what the API server's schema cannot: names derived from other objects,
//! conflicts with existing namespaces, and the people behind members.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::ResourceRequirements,
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::OwnerReference},
};

use crate::{
    build::{git::Checkout, owner_reference},
    controller::Valid,
    controller::identity::Identities,
    crd::{
        User, Workspace,
        common::{AccessList, Role, SecretKeyRef},
        workspace::{DeletionPolicy, EgressRule},
    },
    error::{Error, Result},
    names::{ANNOTATION_ADOPT, LABEL_WORKSPACE_UID, check_dns_label, workspace_namespace},
};

/// Default quota when the spec sets none.
pub const DEFAULT_CPU: &str = "8";
/// Default memory quota.
pub const DEFAULT_MEMORY: &str = "32Gi";
/// Default storage quota.
pub const DEFAULT_STORAGE: &str = "100Gi";
/// Default pod count quota.
pub const DEFAULT_PODS: i32 = 50;
/// Default home volume size of the Studio server.
pub const DEFAULT_STUDIO_STORAGE: &str = "10Gi";

/// What the API server told us about the world, read before validation.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The Users that may be bound, and the teams that may not be bound as groups.
    pub identities: Identities,
    /// The target namespace, if it exists.
    pub namespace: Option<ExistingNamespace>,
    /// Referenced Secrets that do not exist, as `name` (the namespace is the workspace's).
    pub missing_secrets: BTreeSet<String>,
    /// RoleBindings in the namespace that the operator did not make.
    pub foreign_role_bindings: Vec<String>,
    /// The prefix of namespaces the operator creates (empty: any).
    pub namespace_prefix: String,
    /// The PythonEnvironments of the namespace that are ready as volumes, by name: the Studio
    /// offers each as a kernel.
    pub environments: Vec<crate::build::python_env::Ready>,
}

/// What an existing namespace says about who it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingNamespace {
    /// Its workspace label.
    pub workspace: Option<String>,
    /// Its workspace UID label.
    pub uid: Option<String>,
    /// The Workspace a cluster admin handed it over to (the adoption annotation).
    pub adopt: Option<String>,
    /// Another live Workspace whose UID it carries.
    pub live_owner: Option<String>,
}

/// How the Workspace holds its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// It does not exist yet: the operator creates it.
    Create,
    /// The operator created it for this Workspace.
    Owned,
    /// A cluster admin handed an existing namespace over to this Workspace. It is never
    /// deleted with the Workspace.
    Adopted,
}

/// Decides whether the Workspace may use its namespace. A namespace is used only when it was
/// created for this Workspace (its name and UID labels) or a cluster admin handed it over; an
/// existing namespace is never taken over silently, and one kept from an earlier Workspace of
/// the same name is not inherited.
pub fn ownership(
    workspace: &str,
    uid: &str,
    namespace: &str,
    existing: Option<&ExistingNamespace>,
) -> Result<Ownership> {
    let Some(existing) = existing else { return Ok(Ownership::Create) };
    let adopted = existing.adopt.as_deref() == Some(workspace);
    // A hand-over applies to a namespace no Workspace has stamped yet. Once stamped, the
    // namespace belongs to that Workspace's UID: a later Workspace of the same name needs a
    // new hand-over (the old stamp removed), or a stale annotation would pass a retained
    // namespace on.
    let hand_over = match existing.uid {
        None => format!(
            "a cluster admin can hand it over with: kubectl annotate namespace {namespace} {ANNOTATION_ADOPT}={workspace}"
        ),
        Some(_) => format!(
            "a cluster admin can hand it over with: kubectl label namespace {namespace} {LABEL_WORKSPACE_UID}- && kubectl annotate --overwrite namespace {namespace} {ANNOTATION_ADOPT}={workspace}"
        ),
    };
    if existing.uid.as_deref() == Some(uid) && !uid.is_empty() {
        return Ok(if adopted { Ownership::Adopted } else { Ownership::Owned });
    }
    if let Some(other) = &existing.live_owner {
        return Err(conflict(
            "NamespaceConflict",
            format!("namespace {namespace} belongs to Workspace {other}; choose another spec.namespace"),
        ));
    }
    if adopted && existing.uid.is_none() {
        return Ok(Ownership::Adopted);
    }
    match existing.workspace.as_deref() {
        Some(name) if name == workspace => Err(conflict(
            "RetainedNamespace",
            format!(
                "namespace {namespace} was kept when an earlier Workspace named {workspace} was deleted; its Secrets, volumes and bindings are not passed on to a new Workspace automatically ({hand_over})"
            ),
        )),
        Some(other) => Err(conflict(
            "NamespaceConflict",
            format!(
                "namespace {namespace} was made for Workspace {other}; choose another spec.namespace, or {hand_over}"
            ),
        )),
        None => Err(conflict(
            "NamespaceConflict",
            format!(
                "namespace {namespace} already exists and was not created for this Workspace; the operator never takes over an existing namespace. Choose another spec.namespace, or {hand_over}"
            ),
        )),
    }
}

/// The namespace's state, not the spec, is in the way: another object's change (a Workspace
/// deleted, a namespace handed over or removed) resolves it, so it is retried.
fn conflict(reason: &'static str, message: String) -> Error {
    Error::Dependency { reason, message }
}

/// A person bound in the workspace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Person {
    /// Name of the User object.
    pub user: String,
    /// The username the API server authenticates.
    pub username: String,
    /// E-mail, for the access proxy.
    pub email: Option<String>,
}

/// A workspace ready to build.
#[derive(Clone, Debug)]
pub struct ValidatedWorkspace {
    /// Workspace name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// How it holds the namespace.
    pub ownership: Ownership,
    /// RoleBindings in the namespace that the operator did not make.
    pub foreign_role_bindings: Vec<String>,
    /// Owner reference to the Workspace.
    pub owner: OwnerReference,
    /// Who is bound to which role (strongest role per person; roles are cumulative in RBAC, but
    /// binding only the strongest keeps the bindings readable).
    pub people: BTreeMap<Role, Vec<Person>>,
    /// Teams bound to each role.
    pub teams: BTreeMap<Role, Vec<String>>,
    /// Entries of `spec.members`.
    pub member_count: usize,
    /// Plain variables.
    pub variables: BTreeMap<String, String>,
    /// Secret-backed environment variables: name → Secret key.
    pub secret_env: BTreeMap<String, SecretKeyRef>,
    /// The connections by name (also in `secret_env`, as `CONN_<NAME>`).
    pub connections: BTreeMap<String, SecretKeyRef>,
    /// The secrets by name (also in `secret_env`).
    pub secrets: BTreeMap<String, SecretKeyRef>,
    /// Git repositories.
    pub repos: Vec<Checkout>,
    /// Quota and container defaults.
    pub quota: Quota,
    /// The Studio server, if enabled.
    pub studio: Option<Studio>,
    /// What deleting the Workspace does.
    pub deletion_policy: DeletionPolicy,
    /// Destinations allowed beyond the default egress.
    pub egress: Vec<EgressRule>,
}

/// Resolved quota.
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    /// CPU requests and limits.
    pub cpu: Quantity,
    /// Memory requests and limits.
    pub memory: Quantity,
    /// PVC storage requests.
    pub storage: Quantity,
    /// Pods.
    pub pods: i32,
    /// LimitRange defaults.
    pub container_defaults: ResourceRequirements,
}

/// Resolved Studio settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Studio {
    /// Scale to zero.
    pub stopped: bool,
    /// JupyterLab image.
    pub image: String,
    /// Server resources.
    pub resources: Option<ResourceRequirements>,
    /// Home volume size.
    pub storage_size: Quantity,
    /// Home volume StorageClass.
    pub storage_class: Option<String>,
    /// Kernel idle timeout in seconds (0 = off).
    pub idle_timeout_seconds: u64,
    /// People allowed to open it.
    pub allowed: Vec<Person>,
    /// Host name for the Ingress.
    pub host: Option<String>,
    /// Ready Python environments offered as extra kernels.
    pub kernels: Vec<crate::build::python_env::Ready>,
}

/// The JupyterLab image of the Studio server.
pub const STUDIO_IMAGE: &str = crate::build::jupyter::IMAGE;

/// Validates `workspace` against what was observed.
pub fn validate(workspace: &Workspace, observed: &Observed) -> Result<ValidatedWorkspace> {
    let spec = &workspace.spec;
    let name = workspace.metadata.name.clone().unwrap_or_default();
    let namespace = workspace_namespace(&name, spec.namespace.as_deref());
    check_dns_label(&namespace)
        .map_err(|m| Error::InvalidSpec { reason: "InvalidNamespace", message: format!("namespace {m}") })?;
    let uid = workspace.metadata.uid.clone().unwrap_or_default();
    let ownership = ownership(&name, &uid, &namespace, observed.namespace.as_ref())?;
    if ownership != Ownership::Adopted && !namespace.starts_with(&observed.namespace_prefix) {
        return Err(Error::InvalidSpec {
            reason: "NamespacePrefix",
            message: format!(
                "namespace {namespace} does not start with {:?}: the operator creates only namespaces with the platform's prefix, so that a Workspace can never claim a name other software expects; use a prefixed spec.namespace, or have a cluster admin hand over an existing namespace",
                observed.namespace_prefix
            ),
        });
    }

    let (people, teams) = resolve_members(workspace, &observed.identities);
    let secret_env = secret_env(spec)?;
    let repos = repositories(spec)?;
    let idle_timeout_seconds =
        match spec.studio.as_ref().filter(|s| s.enabled).and_then(|s| s.idle_timeout.as_deref()) {
            Some(value) => parse_idle_timeout(value)?,
            None => 0,
        };

    let studio = spec.studio.as_ref().filter(|s| s.enabled).map(|s| Studio {
        stopped: s.stopped,
        image: s.image.clone().unwrap_or_else(|| STUDIO_IMAGE.into()),
        resources: s.resources.clone(),
        storage_size: s
            .storage
            .as_ref()
            .and_then(|st| st.size.clone())
            .unwrap_or(Quantity(DEFAULT_STUDIO_STORAGE.into())),
        storage_class: s.storage.as_ref().and_then(|st| st.storage_class_name.clone()),
        idle_timeout_seconds,
        allowed: studio_access(s.access.as_ref(), &people, &observed.identities.bindable),
        host: s.host.clone(),
        kernels: observed.environments.clone(),
    });

    Ok(ValidatedWorkspace {
        owner: owner_reference(workspace),
        uid,
        name,
        namespace,
        ownership,
        foreign_role_bindings: observed.foreign_role_bindings.clone(),
        people,
        teams,
        member_count: spec.members.len(),
        variables: spec.variables.clone(),
        secret_env,
        connections: spec.connections.iter().map(|c| (c.name.clone(), c.secret_ref.clone())).collect(),
        secrets: spec.secrets.iter().map(|c| (c.name.clone(), c.secret_ref.clone())).collect(),
        repos,
        quota: quota(workspace),
        studio,
        deletion_policy: spec.deletion_policy,
        egress: egress(spec.network.as_ref().map(|n| n.egress.as_slice()).unwrap_or_default())?,
    })
}

fn quota(workspace: &Workspace) -> Quota {
    let q = workspace.spec.quota.clone().unwrap_or_default();
    Quota {
        cpu: q.cpu.unwrap_or(Quantity(DEFAULT_CPU.into())),
        memory: q.memory.unwrap_or(Quantity(DEFAULT_MEMORY.into())),
        storage: q.storage.unwrap_or(Quantity(DEFAULT_STORAGE.into())),
        pods: q.pods.unwrap_or(DEFAULT_PODS),
        container_defaults: q.container_defaults.unwrap_or_else(|| ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("100m".into())),
                ("memory".into(), Quantity("256Mi".into())),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".into(), Quantity("1".into())),
                ("memory".into(), Quantity("1Gi".into())),
            ])),
            ..ResourceRequirements::default()
        }),
    }
}

/// The people of the workspace with their strongest role, and the teams that may be bound as
/// groups per role. Users who may not be bound (disabled, duplicate or reserved usernames) and
/// members naming unknown users are left out, and so are the teams such users list.
pub fn resolve_members(
    workspace: &Workspace,
    identities: &Identities,
) -> (BTreeMap<Role, Vec<Person>>, BTreeMap<Role, Vec<String>>) {
    let mut strongest: BTreeMap<String, (Role, Person)> = BTreeMap::new();
    let mut teams: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for member in &workspace.spec.members {
        let matching: Vec<&User> = identities
            .bindable
            .iter()
            .filter(|u| match (&member.user, &member.team) {
                (Some(name), _) => u.metadata.name.as_deref() == Some(name.as_str()),
                (None, Some(team)) => u.spec.teams.contains(team),
                (None, None) => false,
            })
            .map(|u| &**u)
            .collect();
        if let Some(team) = &member.team
            && !identities.untrusted_teams.contains(team)
        {
            teams.entry(member.role).or_default().push(team.clone());
        }
        for user in matching {
            let person = Person {
                user: user.metadata.name.clone().unwrap_or_default(),
                username: user.spec.username.clone(),
                email: user.spec.email.clone(),
            };
            // Role orders Admin < Developer < Viewer: the smallest is the strongest.
            strongest
                .entry(person.user.clone())
                .and_modify(|(role, _)| *role = (*role).min(member.role))
                .or_insert((member.role, person));
        }
    }
    let mut people: BTreeMap<Role, Vec<Person>> = BTreeMap::new();
    for (role, person) in strongest.into_values() {
        people.entry(role).or_default().push(person);
    }
    for list in teams.values_mut() {
        list.sort();
        list.dedup();
    }
    (people, teams)
}

/// Who may open the Studio server: the access list, or every developer and admin.
pub fn studio_access(
    access: Option<&AccessList>,
    people: &BTreeMap<Role, Vec<Person>>,
    users: &[Valid<User>],
) -> Vec<Person> {
    let members: Vec<&Person> = people.values().flatten().collect();
    let mut allowed: Vec<Person> = match access {
        None => people
            .iter()
            .filter(|(role, _)| **role != Role::Viewer)
            .flat_map(|(_, p)| p.iter().cloned())
            .collect(),
        Some(list) => members
            .into_iter()
            .filter(|p| {
                list.users.contains(&p.user)
                    || users.iter().any(|u| {
                        u.metadata.name.as_deref() == Some(p.user.as_str())
                            && u.spec.teams.iter().any(|t| list.teams.contains(t))
                    })
            })
            .cloned()
            .collect(),
    };
    allowed.sort();
    allowed.dedup();
    allowed
}

/// Who may open a Project's app or UI: without an access list every member of the workspace;
/// with one, the workspace's admins and the listed users and teams (members only), so an empty
/// list leaves the admins alone. Disabled and unbindable Users are never members.
pub fn app_access(
    access: Option<&AccessList>,
    people: &BTreeMap<Role, Vec<Person>>,
    users: &[Valid<User>],
) -> Vec<Person> {
    let mut allowed: Vec<Person> = match access {
        None => people.values().flatten().cloned().collect(),
        Some(list) => {
            let listed = studio_access(Some(list), people, users);
            people.get(&Role::Admin).into_iter().flatten().cloned().chain(listed).collect()
        }
    };
    allowed.sort();
    allowed.dedup();
    allowed
}

/// Longest idle timeout: 30 days.
pub const MAX_IDLE_TIMEOUT_SECONDS: u64 = 30 * 24 * 3600;

/// The egress allow-list, refusing ranges that overlap the always-denied ones: rules add up, so
/// `0.0.0.0/0` would reopen the metadata services.
fn egress(rules: &[EgressRule]) -> Result<Vec<EgressRule>> {
    for rule in rules {
        let Some(cidr) = &rule.cidr else { continue };
        let denied = crate::controller::workspace::build::DENIED_EGRESS;
        if let Some(hit) = denied.iter().find(|d| cidrs_overlap(cidr, d)) {
            return Err(Error::InvalidSpec {
                reason: "EgressOverlapsDenied",
                message: format!(
                    "spec.network.egress allows {cidr}, which overlaps {hit}, a range no workspace may reach (cloud metadata); allow narrower ranges"
                ),
            });
        }
    }
    Ok(rules.to_vec())
}

/// Whether two CIDRs share an address (false when either does not parse or the families differ).
pub fn cidrs_overlap(a: &str, b: &str) -> bool {
    fn parse(cidr: &str) -> Option<(u128, u32, bool)> {
        let (address, bits) = cidr.split_once('/')?;
        let bits: u32 = bits.parse().ok()?;
        match address.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) if bits <= 32 => Some((u128::from(u32::from(v4)) << 96, bits, false)),
            std::net::IpAddr::V6(v6) if bits <= 128 => Some((u128::from(v6), bits, true)),
            _ => None,
        }
    }
    let (Some((a, a_bits, a6)), Some((b, b_bits, b6))) = (parse(a), parse(b)) else { return false };
    if a6 != b6 {
        return false;
    }
    let bits = a_bits.min(b_bits);
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    (a & mask) == (b & mask)
}

/// Seconds of an idle timeout like `45s`, `1h30m` or `2h` (0 turns culling off), at most
/// [`MAX_IDLE_TIMEOUT_SECONDS`]. Read by `humantime`, which, like the CRD's pattern, allows
/// units in any order and adds them up, and reports overflow as an error.
pub fn parse_idle_timeout(value: &str) -> Result<u64> {
    parse_timeout("spec.studio.idleTimeout", value)
}

/// [`parse_idle_timeout`] for any field, named in the message.
pub fn parse_timeout(field: &str, value: &str) -> Result<u64> {
    let invalid = |why: String| Error::InvalidSpec {
        reason: "InvalidIdleTimeout",
        message: format!("{field} {why}; write a duration like 45s, 1h30m or 2h, at most 720h"),
    };
    let shown = shown(value);
    let duration = humantime::parse_duration(value).map_err(|e| {
        // The parser's explanation quotes the input: only with an input that can be shown.
        let why = if shown.starts_with('\'') { format!(" ({e})") } else { String::new() };
        invalid(format!("{shown} is not a duration{why}"))
    })?;
    if duration.subsec_nanos() != 0 {
        return Err(invalid(format!("{shown} is not a whole number of seconds")));
    }
    if duration.as_secs() > MAX_IDLE_TIMEOUT_SECONDS {
        return Err(invalid(format!("{shown} is longer than 30 days")));
    }
    Ok(duration.as_secs())
}

/// A value quoted for a message when it is short printable ASCII; otherwise a stand-in, so a
/// message never carries control characters or pages of text.
fn shown(value: &str) -> String {
    if !value.is_empty() && value.len() <= 64 && value.chars().all(|c| c.is_ascii_graphic()) {
        format!("'{value}'")
    } else {
        "(a value that cannot be shown)".into()
    }
}

/// Longest name of a connection or secret (the CRD's limit).
const MAX_SECRET_ENTRY_NAME: usize = 128;
/// Longest variable name (a ConfigMap key).
const MAX_VARIABLE_NAME: usize = 253;

/// The Secret-backed environment variables: connections as `CONN_<NAME>` (uppercased), secrets
/// by their name. Every runtime gets these next to the variables, so a name reached twice, from
/// any two sources, is refused: one value would silently replace the other.
fn secret_env(spec: &crate::crd::workspace::WorkspaceSpec) -> Result<BTreeMap<String, SecretKeyRef>> {
    // Environment variable name → the source that sets it, for the message.
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |env: String, source: String| match sources.get(&env) {
        Some(first) => Err(Error::InvalidSpec {
            reason: "DuplicateVariable",
            message: format!(
                "the environment variable {env} would be set by both {first} and {source}; rename one of them"
            ),
        }),
        None => {
            sources.insert(env, source);
            Ok(())
        }
    };
    for key in spec.variables.keys() {
        check_env_name(key, MAX_VARIABLE_NAME, "the name of spec.variables")?;
        claim(key.clone(), format!("variable {key}"))?;
    }
    let mut env = BTreeMap::new();
    for (i, connection) in spec.connections.iter().enumerate() {
        check_env_name(&connection.name, MAX_SECRET_ENTRY_NAME, &format!("spec.connections[{i}].name"))?;
        let name = format!("CONN_{}", connection.name.to_ascii_uppercase());
        claim(name.clone(), format!("connection {}", connection.name))?;
        env.insert(name, connection.secret_ref.clone());
    }
    for (i, secret) in spec.secrets.iter().enumerate() {
        check_env_name(&secret.name, MAX_SECRET_ENTRY_NAME, &format!("spec.secrets[{i}].name"))?;
        claim(secret.name.clone(), format!("secret {}", secret.name))?;
        env.insert(secret.name.clone(), secret.secret_ref.clone());
    }
    Ok(env)
}

/// An environment variable name: letters, digits and `_`, not starting with a digit.
fn check_env_name(name: &str, max: usize, field: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= max
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    Err(Error::InvalidSpec {
        reason: "InvalidVariableName",
        message: format!(
            "{field} {} is not an environment variable name: use 1 to {max} letters, digits and '_', not starting with a digit",
            shown(name)
        ),
    })
}

/// The Git repositories, each checked (see [`Checkout::new`]) and named once.
fn repositories(spec: &crate::crd::workspace::WorkspaceSpec) -> Result<Vec<Checkout>> {
    let mut names = BTreeSet::new();
    let mut repos = Vec::new();
    for (i, repo) in spec.git_repositories.iter().enumerate() {
        // Name the entry by index, and by name too when the name is safe to repeat.
        let entry = match crate::build::git::check_name(&repo.name) {
            Ok(()) => format!("spec.gitRepositories[{i}] ({})", repo.name),
            Err(_) => format!("spec.gitRepositories[{i}]"),
        };
        let invalid = |why: String| Error::InvalidSpec {
            reason: "InvalidGitRepository",
            message: format!("Git repository {entry}: {why}"),
        };
        let checkout = Checkout::new(&repo.name, &repo.url, &repo.r#ref, repo.credentials_secret.as_deref())
            .map_err(invalid)?;
        if !names.insert(repo.name.clone()) {
            return Err(invalid("another repository has the same name".into()));
        }
        repos.push(checkout);
    }
    Ok(repos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(yaml: &str) -> Workspace {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn existing(workspace: Option<&str>, uid: Option<&str>, adopt: Option<&str>) -> ExistingNamespace {
        ExistingNamespace {
            workspace: workspace.map(str::to_string),
            uid: uid.map(str::to_string),
            adopt: adopt.map(str::to_string),
            ..ExistingNamespace::default()
        }
    }

    #[test]
    fn only_a_namespace_made_for_this_workspace_or_handed_over_is_used() {
        let decide = |e: Option<ExistingNamespace>| {
            ownership("a", "uid-a", "ns", e.as_ref()).map_err(|e| (e.reason(), e.to_string()))
        };
        assert_eq!(decide(None), Ok(Ownership::Create));
        assert_eq!(decide(Some(existing(Some("a"), Some("uid-a"), None))), Ok(Ownership::Owned));
        // An existing namespace nobody made for us: never taken over (C1).
        let (reason, message) = decide(Some(existing(None, None, None))).unwrap_err();
        assert_eq!(reason, "NamespaceConflict");
        assert!(message.contains("kubectl annotate namespace ns dataworkspace.io/adopt=a"), "{message}");
        // Kept from an earlier Workspace of the same name: not inherited (M2).
        assert_eq!(
            decide(Some(existing(Some("a"), Some("uid-old"), None))).unwrap_err().0,
            "RetainedNamespace"
        );
        // Made for another Workspace.
        assert_eq!(
            decide(Some(existing(Some("b"), Some("uid-b"), None))).unwrap_err().0,
            "NamespaceConflict"
        );
        // Handed over by a cluster admin: used, and stays adopted once stamped.
        assert_eq!(decide(Some(existing(None, None, Some("a")))), Ok(Ownership::Adopted));
        assert_eq!(decide(Some(existing(Some("a"), Some("uid-a"), Some("a")))), Ok(Ownership::Adopted));
        // A stale hand-over does not pass a retained namespace on (it names the old UID).
        let (reason, message) = decide(Some(existing(Some("a"), Some("uid-old"), Some("a")))).unwrap_err();
        assert_eq!(reason, "RetainedNamespace");
        assert!(message.contains("kubectl label namespace ns dataworkspace.io/workspace-uid-"), "{message}");
        // A hand-over never takes a namespace from a live Workspace.
        let mut live = existing(Some("b"), Some("uid-b"), Some("a"));
        live.live_owner = Some("b".into());
        let (reason, message) = decide(Some(live)).unwrap_err();
        assert_eq!(reason, "NamespaceConflict");
        assert!(message.contains("belongs to Workspace b"), "{message}");
        // Without a UID (never stored) nothing matches an unlabelled UID.
        assert!(ownership("a", "", "ns", Some(&existing(Some("a"), None, None))).is_err());
    }

    #[test]
    fn validation_refuses_a_foreign_namespace() {
        let ws = workspace("metadata: {name: a, uid: uid-a}\nspec: {namespace: shared}");
        let observed = Observed { namespace: Some(existing(None, None, None)), ..Observed::default() };
        assert_eq!(validate(&ws, &observed).unwrap_err().reason(), "NamespaceConflict");
        let ours =
            Observed { namespace: Some(existing(Some("a"), Some("uid-a"), None)), ..Observed::default() };
        assert_eq!(validate(&ws, &ours).unwrap().ownership, Ownership::Owned);
    }

    #[test]
    fn a_name_defined_twice_is_refused() {
        let ws = workspace(
            "metadata: {name: a}\nspec: {variables: {TOKEN: x}, secrets: [{name: TOKEN, secretRef: {name: s, key: k}}]}",
        );
        assert_eq!(validate(&ws, &Observed::default()).unwrap_err().reason(), "DuplicateVariable");
    }

    #[test]
    fn app_access_lists_users_teams_and_admins_never_the_disabled() {
        use crate::fixtures::shared;
        let users: Vec<User> = [
            "metadata: {name: adm}\nspec: {username: adm@x, email: adm@x.io}",
            "metadata: {name: dev}\nspec: {username: dev@x, email: dev@x.io, teams: [ds]}",
            "metadata: {name: viewer}\nspec: {username: viewer@x, email: viewer@x.io}",
            "metadata: {name: gone}\nspec: {username: gone@x, email: gone@x.io, teams: [ds], disabled: true}",
        ]
        .iter()
        .map(|y| serde_yaml::from_str(y).unwrap())
        .collect();
        let ws = workspace(
            "metadata: {name: a}\nspec: {members: [{user: adm, role: admin}, {team: ds, role: developer}, {user: viewer, role: viewer}, {user: gone, role: developer}]}",
        );
        let observed = Observed {
            identities: crate::controller::identity::Identities::new(
                &shared(users.clone()),
                &crate::config::Config::default(),
            ),
            ..Observed::default()
        };
        let validated = validate(&ws, &observed).unwrap();
        let bindable = &observed.identities.bindable;
        let names = |list: Option<&str>| -> Vec<String> {
            let access: Option<AccessList> = list.map(|l| serde_yaml::from_str(l).unwrap());
            app_access(access.as_ref(), &validated.people, bindable).into_iter().map(|p| p.user).collect()
        };
        // No list: every member (viewers included), never a disabled User.
        assert_eq!(names(None), ["adm", "dev", "viewer"]);
        // A team: its members, and the admins.
        assert_eq!(names(Some("{teams: [ds]}")), ["adm", "dev"]);
        // A user: that user, and the admins.
        assert_eq!(names(Some("{users: [viewer]}")), ["adm", "viewer"]);
        // An empty list: nobody but the admins.
        assert_eq!(names(Some("{}")), ["adm"]);
        // A disabled user listed by name or through a team is still out.
        assert_eq!(names(Some("{users: [gone]}")), ["adm"]);
    }

    #[test]
    fn studio_access_defaults_to_developers_and_admins() {
        let ws = workspace(
            "metadata: {name: a}\nspec: {studio: {}, members: [{user: v, role: viewer}, {user: d, role: developer}]}",
        );
        let users: Vec<User> = ["v", "d"]
            .iter()
            .map(|n| {
                serde_yaml::from_str(&format!("metadata: {{name: {n}}}\nspec: {{username: {n}@x}}")).unwrap()
            })
            .collect();
        let identities = Identities::new(&crate::fixtures::shared(users), &crate::config::Config::default());
        let v = validate(&ws, &Observed { identities, ..Observed::default() }).unwrap();
        let allowed: Vec<&str> = v.studio.as_ref().unwrap().allowed.iter().map(|p| p.user.as_str()).collect();
        assert_eq!(allowed, vec!["d"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_idle_timeout("2h").unwrap(), 7200);
        assert_eq!(parse_idle_timeout("1h30m").unwrap(), 5400);
        assert_eq!(parse_idle_timeout("45s").unwrap(), 45);
        assert_eq!(parse_idle_timeout("0s").unwrap(), 0);
        assert_eq!(parse_idle_timeout("720h").unwrap(), MAX_IDLE_TIMEOUT_SECONDS);
        // The CRD's pattern allows units in any order and repeated; they add up.
        assert_eq!(parse_idle_timeout("30m1h").unwrap(), 5400);
    }

    #[test]
    fn bad_durations_are_refused_in_words() {
        // Once `number * 10` on this overflowed and panicked the operator.
        let long_digits = format!("{}h", "9".repeat(400));
        for value in
            [long_digits.as_str(), "99999999999999999999s", "721h", "500ms", "2", "-1h", "1x", "", "1h\u{7}"]
        {
            let error = parse_idle_timeout(value).unwrap_err();
            assert_eq!(error.reason(), "InvalidIdleTimeout", "{value}");
            assert!(error.is_permanent());
            let message = error.to_string();
            assert!(message.starts_with("spec.studio.idleTimeout "), "{message}");
            assert!(message.len() < 300 && !message.contains('\u{7}'), "{message}");
        }
        let ws = workspace("metadata: {name: a}\nspec: {studio: {idleTimeout: 99999999999999999999999h}}");
        assert_eq!(validate(&ws, &Observed::default()).unwrap_err().reason(), "InvalidIdleTimeout");
        // A disabled Studio server does not use it.
        let off = workspace("metadata: {name: a}\nspec: {studio: {enabled: false, idleTimeout: 721h}}");
        assert!(validate(&off, &Observed::default()).is_ok());
    }

    #[test]
    fn names_that_meet_in_the_environment_are_refused_naming_both() {
        let refused = |spec: &str| {
            let error =
                validate(&workspace(&format!("metadata: {{name: a}}\nspec: {spec}")), &Observed::default())
                    .unwrap_err();
            assert_eq!(error.reason(), "DuplicateVariable", "{spec}");
            error.to_string()
        };
        let message = refused(
            "{connections: [{name: db, secretRef: {name: s, key: k}}, {name: DB, secretRef: {name: t, key: k}}]}",
        );
        assert!(
            message.contains("CONN_DB")
                && message.contains("connection db")
                && message.contains("connection DB"),
            "{message}"
        );
        let message = refused(
            "{connections: [{name: db, secretRef: {name: s, key: k}}], secrets: [{name: CONN_DB, secretRef: {name: t, key: k}}]}",
        );
        assert!(message.contains("connection db") && message.contains("secret CONN_DB"), "{message}");
        let message =
            refused("{variables: {CONN_DB: x}, connections: [{name: Db, secretRef: {name: s, key: k}}]}");
        assert!(message.contains("variable CONN_DB") && message.contains("connection Db"), "{message}");
        refused(
            "{secrets: [{name: T, secretRef: {name: s, key: k}}, {name: T, secretRef: {name: t, key: k}}]}",
        );
        // Different names stay apart: environment variable names are case-sensitive.
        let ok = workspace(
            "metadata: {name: a}\nspec: {variables: {conn_db: x}, connections: [{name: db, secretRef: {name: s, key: k}}], secrets: [{name: DB, secretRef: {name: t, key: k}}]}",
        );
        let env = validate(&ok, &Observed::default()).unwrap().secret_env;
        assert_eq!(env.keys().collect::<Vec<_>>(), ["CONN_DB", "DB"]);
    }

    #[test]
    fn names_that_are_not_environment_variable_names_are_refused() {
        for (spec, named) in [
            (
                "{connections: [{name: 'a-b', secretRef: {name: s, key: k}}]}",
                "spec.connections[0].name 'a-b' is not",
            ),
            ("{secrets: [{name: '1A', secretRef: {name: s, key: k}}]}", "spec.secrets[0].name '1A' is not"),
            (
                "{variables: {'straße': x}}",
                "the name of spec.variables (a value that cannot be shown) is not",
            ),
            ("{variables: {\"A\\u0007\": x}}", "(a value that cannot be shown)"),
        ] {
            let ws = workspace(&format!("metadata: {{name: a}}\nspec: {spec}"));
            let error = validate(&ws, &Observed::default()).unwrap_err();
            assert_eq!(error.reason(), "InvalidVariableName", "{spec}");
            assert!(error.to_string().contains(named), "{error}");
        }
    }

    fn repo_result(url: &str, r#ref: &str) -> Result<ValidatedWorkspace> {
        let mut ws = workspace("metadata: {name: a}\nspec: {}");
        ws.spec.git_repositories = vec![
            serde_json::from_value(serde_json::json!({
                "name": "pipelines", "url": url, "ref": r#ref, "credentialsSecret": "creds"
            }))
            .unwrap(),
        ];
        validate(&ws, &Observed::default())
    }

    #[test]
    fn legitimate_repositories_pass() {
        for url in
            ["git@github.com:org/repo.git", "https://github.com/org/repo.git", "ssh://git@host:2222/x.git"]
        {
            for r#ref in ["main", "release/1.2", "v1.0.0", "0123456789abcdef0123456789abcdef01234567"] {
                let v = repo_result(url, r#ref).unwrap_or_else(|e| panic!("{url} {ref}: {e}"));
                assert_eq!((v.repos[0].url.as_str(), v.repos[0].r#ref.as_str()), (url, r#ref));
            }
        }
    }

    #[test]
    fn unsafe_repositories_are_refused_naming_the_entry_without_the_credential() {
        for url in [
            "-oProxyCommand=x@host:p",
            "https://user:hunter2@github.com/org/repo.git",
            "ssh://git:hunter2@host/x.git",
            "git:hunter2@host:x.git",
            "https://hunter2@github.com/org/repo.git",
            "https:///",
            "ssh://-oProxyCommand=hunter2/x",
            "ftp://host/x",
            "file:///etc/passwd",
            "/local/path",
            "https://github.com/org/repo.git\n",
            "https://github.com/org/re po.git",
        ] {
            let error = repo_result(url, "main").unwrap_err();
            assert_eq!(error.reason(), "InvalidGitRepository", "{url}");
            assert!(error.is_permanent());
            let message = error.to_string();
            assert!(message.starts_with("Git repository spec.gitRepositories[0] (pipelines): "), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
        for r#ref in [
            "-x",
            "a..b",
            "a@{1}",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a/",
            "a.lock",
            "a.",
            "a//b",
            "\t",
            "",
            "@",
            "a\u{202e}b",
        ] {
            assert_eq!(
                repo_result("https://h/r", r#ref).unwrap_err().reason(),
                "InvalidGitRepository",
                "{ref:?}"
            );
        }
        assert!(repo_result("https://h/r", &"a".repeat(256)).is_err());
    }

    #[test]
    fn repository_names_fit_the_names_derived_from_them() {
        let mut ws = workspace("metadata: {name: a}\nspec: {}");
        let repo = |name: &str| {
            serde_json::from_value(serde_json::json!({"name": name, "url": "https://h/r"})).unwrap()
        };
        ws.spec.git_repositories = vec![repo(&"a".repeat(47))];
        assert!(validate(&ws, &Observed::default()).is_ok());
        ws.spec.git_repositories = vec![repo(&"a".repeat(48))];
        assert_eq!(validate(&ws, &Observed::default()).unwrap_err().reason(), "InvalidGitRepository");
        ws.spec.git_repositories = vec![repo("x"), repo("x")];
        let message = validate(&ws, &Observed::default()).unwrap_err().to_string();
        assert!(message.contains("spec.gitRepositories[1] (x)"), "{message}");
    }

    #[test]
    fn egress_may_not_reopen_the_metadata_ranges() {
        assert!(cidrs_overlap("0.0.0.0/0", "169.254.0.0/16"));
        assert!(cidrs_overlap("169.254.169.254/32", "169.254.0.0/16"));
        assert!(!cidrs_overlap("10.0.0.0/8", "169.254.0.0/16"));
        assert!(!cidrs_overlap("::/0", "169.254.0.0/16"), "families differ");
        assert!(cidrs_overlap("fd00::/8", "fd00:ec2::254/128"));
        let ws = workspace("metadata: {name: a}\nspec: {network: {egress: [{cidr: 0.0.0.0/0}]}}");
        assert_eq!(validate(&ws, &Observed::default()).unwrap_err().reason(), "EgressOverlapsDenied");
        let ok =
            workspace("metadata: {name: a}\nspec: {network: {egress: [{cidr: 10.1.0.0/16, ports: [5432]}]}}");
        assert_eq!(validate(&ok, &Observed::default()).unwrap().egress.len(), 1);
    }
}
