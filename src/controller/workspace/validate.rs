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
    crd::{
        User, Workspace,
        common::{AccessList, Role, SecretKeyRef},
        workspace::DeletionPolicy,
    },
    error::{Error, Result},
    names::{check_dns_label, workspace_namespace},
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
    /// All Users.
    pub users: Vec<User>,
    /// The workspace label of the target namespace, if the namespace exists (`Some(None)`: it
    /// exists without the label).
    pub namespace_claim: Option<Option<String>>,
    /// Referenced Secrets that do not exist, as `name` (the namespace is the workspace's).
    pub missing_secrets: BTreeSet<String>,
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
    /// Its namespace.
    pub namespace: String,
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
    /// Git repositories.
    pub repos: Vec<Checkout>,
    /// Quota and container defaults.
    pub quota: Quota,
    /// The Studio server, if enabled.
    pub studio: Option<Studio>,
    /// What deleting the Workspace does.
    pub deletion_policy: DeletionPolicy,
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
}

/// The JupyterLab image of the Studio server.
pub const STUDIO_IMAGE: &str = "quay.io/jupyter/scipy-notebook:2026-07-28";

/// Validates `workspace` against what was observed.
pub fn validate(workspace: &Workspace, observed: &Observed) -> Result<ValidatedWorkspace> {
    let spec = &workspace.spec;
    let name = workspace.metadata.name.clone().unwrap_or_default();
    let namespace = workspace_namespace(&name, spec.namespace.as_deref());
    check_dns_label(&namespace)
        .map_err(|m| Error::InvalidSpec { reason: "InvalidNamespace", message: format!("namespace {m}") })?;
    if let Some(Some(owner)) = &observed.namespace_claim
        && owner != &name
    {
        return Err(Error::InvalidSpec {
            reason: "NamespaceConflict",
            message: format!(
                "namespace {namespace} belongs to Workspace {owner}; choose another spec.namespace"
            ),
        });
    }

    let (people, teams) = resolve_members(workspace, &observed.users);
    let mut secret_env = BTreeMap::new();
    for connection in &spec.connections {
        secret_env.insert(format!("CONN_{}", connection.name.to_uppercase()), connection.secret_ref.clone());
    }
    for secret in &spec.secrets {
        if secret_env.insert(secret.name.clone(), secret.secret_ref.clone()).is_some()
            || spec.variables.contains_key(&secret.name)
        {
            return Err(Error::InvalidSpec {
                reason: "DuplicateVariable",
                message: format!(
                    "{} is defined more than once across variables, connections and secrets",
                    secret.name
                ),
            });
        }
    }
    let repos = spec
        .git_repositories
        .iter()
        .map(|r| Checkout {
            name: r.name.clone(),
            url: r.url.clone(),
            r#ref: r.r#ref.clone(),
            auth: Checkout::auth_for(&r.url, r.credentials_secret.as_deref()),
        })
        .collect();

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
        idle_timeout_seconds: s.idle_timeout.as_deref().map(parse_duration_seconds).unwrap_or(0),
        allowed: studio_access(s.access.as_ref(), &people, &observed.users),
        host: s.host.clone(),
    });

    Ok(ValidatedWorkspace {
        owner: owner_reference(workspace),
        name,
        namespace,
        people,
        teams,
        member_count: spec.members.len(),
        variables: spec.variables.clone(),
        secret_env,
        repos,
        quota: quota(workspace),
        studio,
        deletion_policy: spec.deletion_policy,
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

/// The people of the workspace with their strongest role, and the teams per role. Disabled
/// users and members naming unknown users are left out.
pub fn resolve_members(
    workspace: &Workspace,
    users: &[User],
) -> (BTreeMap<Role, Vec<Person>>, BTreeMap<Role, Vec<String>>) {
    let mut strongest: BTreeMap<String, (Role, Person)> = BTreeMap::new();
    let mut teams: BTreeMap<Role, Vec<String>> = BTreeMap::new();
    for member in &workspace.spec.members {
        let matching: Vec<&User> = users
            .iter()
            .filter(|u| !u.spec.disabled)
            .filter(|u| match (&member.user, &member.team) {
                (Some(name), _) => u.metadata.name.as_deref() == Some(name.as_str()),
                (None, Some(team)) => u.spec.teams.contains(team),
                (None, None) => false,
            })
            .collect();
        if let Some(team) = &member.team {
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
fn studio_access(
    access: Option<&AccessList>,
    people: &BTreeMap<Role, Vec<Person>>,
    users: &[User],
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

/// Seconds of a duration like `1h30m`; the CRD's pattern guarantees the form.
pub fn parse_duration_seconds(value: &str) -> u64 {
    let mut total = 0;
    let mut number = 0u64;
    for c in value.chars() {
        match c {
            '0'..='9' => number = number * 10 + u64::from(c as u8 - b'0'),
            's' => (total, number) = (total + number, 0),
            'm' => (total, number) = (total + number * 60, 0),
            'h' => (total, number) = (total + number * 3600, 0),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(yaml: &str) -> Workspace {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn namespace_claimed_by_another_workspace_is_a_conflict() {
        let ws = workspace("metadata: {name: a}\nspec: {namespace: shared}");
        let observed = Observed { namespace_claim: Some(Some("b".into())), ..Observed::default() };
        let err = validate(&ws, &observed).unwrap_err();
        assert_eq!(err.reason(), "NamespaceConflict");
        assert!(err.to_string().contains("belongs to Workspace b"), "{err}");
        // An existing namespace nobody claimed, or ours, is fine.
        assert!(validate(&ws, &Observed { namespace_claim: Some(None), ..Observed::default() }).is_ok());
        assert!(
            validate(&ws, &Observed { namespace_claim: Some(Some("a".into())), ..Observed::default() })
                .is_ok()
        );
    }

    #[test]
    fn a_name_defined_twice_is_refused() {
        let ws = workspace(
            "metadata: {name: a}\nspec: {variables: {TOKEN: x}, secrets: [{name: TOKEN, secretRef: {name: s, key: k}}]}",
        );
        assert_eq!(validate(&ws, &Observed::default()).unwrap_err().reason(), "DuplicateVariable");
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
        let v = validate(&ws, &Observed { users, ..Observed::default() }).unwrap();
        let allowed: Vec<&str> = v.studio.as_ref().unwrap().allowed.iter().map(|p| p.user.as_str()).collect();
        assert_eq!(allowed, vec!["d"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("2h"), 7200);
        assert_eq!(parse_duration_seconds("1h30m"), 5400);
        assert_eq!(parse_duration_seconds("45s"), 45);
    }
}
