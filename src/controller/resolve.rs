//! Resolving a Workspace from the caches: what its validation observes, and the validated
//! Workspace behind a namespace. Every controller that needs a workspace's context (members,
//! environment, repositories) comes here rather than into the Workspace controller.

use k8s_openapi::api::{core::v1::Namespace, rbac::v1::RoleBinding};
use kube::{ResourceExt, core::PartialObjectMeta, runtime::reflector::ObjectRef};

use super::{
    Caches, Valid,
    identity::Identities,
    valid,
    workspace::{build::ROLE_BINDINGS, referenced_secrets},
};
use crate::{
    config::Config,
    controller::workspace::validate::{self, ExistingNamespace, Observed, ValidatedWorkspace},
    crd::Workspace,
    error::{Error, Result},
    names::{
        ANNOTATION_ADOPT, LABEL_MANAGED_BY, LABEL_WORKSPACE, LABEL_WORKSPACE_UID, MANAGER,
        workspace_namespace,
    },
};

/// What validation needs, from the caches: the Users, who the namespace belongs to, which
/// Secrets are missing, which RoleBindings the operator did not make. No API reads.
pub fn observe(workspace: &Workspace, caches: &Caches, config: &Config) -> Observed {
    let namespace = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    let existing = caches
        .namespaces
        .get(&ObjectRef::new(&namespace))
        .map(|ns| existing_namespace(&ns, workspace, &valid(&caches.workspaces)));
    // Metadata only: the operator never holds Secret values.
    let missing_secrets = referenced_secrets(workspace)
        .into_iter()
        .filter(|name| caches.secrets.get(&ObjectRef::new(name).within(&namespace)).is_none())
        .collect();
    // The operator's bindings are exactly the role bindings it names, owned by this Workspace's
    // UID; a label anyone can copy proves nothing.
    let uid = workspace.metadata.uid.as_deref();
    // A Spark project's driver binding and an Airflow project's scheduler binding are the
    // operator's too: that role, bound to the project's own ServiceAccount of the binding's
    // name, owned by a Project of this namespace.
    let projects: Vec<(String, String)> = caches
        .projects
        .state()
        .iter()
        .filter(|p| kube::Resource::meta(p.as_ref()).namespace.as_deref() == Some(namespace.as_str()))
        .filter_map(|p| {
            let meta = kube::Resource::meta(p.as_ref());
            Some((meta.name.clone()?, meta.uid.clone()?))
        })
        .collect();
    let project_role = |b: &RoleBinding| {
        let suffix = match b.role_ref.name.as_str() {
            crate::runtime::spark::DRIVER_ROLE => "-spark-driver",
            crate::runtime::airflow::SCHEDULER_ROLE => "-airflow-scheduler",
            _ => return false,
        };
        // As the operator guard admits it: the role, bound under `<project><suffix>` to the
        // ServiceAccount of that name, owned by that Project of this namespace.
        b.role_ref.kind == "ClusterRole"
            && b.subjects.as_deref().is_some_and(|s| {
                s.len() == 1
                    && s[0].kind == "ServiceAccount"
                    && s[0].name == b.name_any()
                    && s[0].namespace.as_deref() == Some(namespace.as_str())
            })
            && b.owner_references().iter().any(|o| {
                o.controller == Some(true)
                    && o.kind == "Project"
                    && projects.iter().any(|(name, uid)| *uid == o.uid && *name == o.name)
                    && format!("{}{suffix}", o.name) == b.name_any()
            })
    };
    let ours = |b: &RoleBinding| {
        b.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)
            && ((ROLE_BINDINGS.contains(&b.name_any().as_str())
                && b.owner_references().iter().any(|o| Some(o.uid.as_str()) == uid))
                || project_role(b))
    };
    let mut foreign_role_bindings: Vec<String> = caches
        .role_bindings
        .state()
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|b| !ours(b))
        .map(|b| b.name_any())
        .collect();
    foreign_role_bindings.sort();
    // Environments built as volumes, ready for their current spec: the Studio's extra kernels.
    let mut environments: Vec<crate::build::python_env::Ready> = caches
        .environments
        .state()
        .iter()
        .filter(|e| kube::Resource::meta(e.as_ref()).namespace.as_deref() == Some(namespace.as_str()))
        .filter_map(|e| kube::Resource::meta(e.as_ref()).name.clone())
        .filter_map(|name| super::project::ready_environment(caches, &namespace, &name).ok())
        .filter(|ready| ready.image.is_none())
        .collect();
    environments.sort_by(|a, b| a.name.cmp(&b.name));
    Observed {
        environments,
        identities: Identities::new(&valid(&caches.users), config),
        namespace: existing,
        missing_secrets,
        foreign_role_bindings,
        namespace_prefix: config.namespace_prefix.clone(),
    }
}

/// What an existing namespace says about its owner; `live_owner` is another Workspace, still
/// present, whose UID it carries.
pub fn existing_namespace(
    ns: &PartialObjectMeta<Namespace>,
    workspace: &Workspace,
    workspaces: &[Valid<Workspace>],
) -> ExistingNamespace {
    let uid = ns.labels().get(LABEL_WORKSPACE_UID).cloned();
    let live_owner = uid.as_ref().and_then(|uid| {
        workspaces
            .iter()
            .find(|w| w.metadata.uid.as_ref() == Some(uid) && w.metadata.uid != workspace.metadata.uid)
            .map(|w| w.name_any())
    });
    ExistingNamespace {
        workspace: ns.labels().get(LABEL_WORKSPACE).cloned(),
        uid,
        adopt: ns.annotations().get(ANNOTATION_ADOPT).cloned(),
        live_owner,
    }
}

/// The validated Workspace that owns `namespace`. A namespace no Workspace owns, or whose
/// Workspace is invalid or not provisioned, is a dependency error: retried, and re-triggered by
/// the Workspace's changes.
pub fn workspace_of(namespace: &str, caches: &Caches, config: &Config) -> Result<ValidatedWorkspace> {
    let workspaces = valid(&caches.workspaces);
    let workspace = workspaces
        .iter()
        .find(|w| workspace_namespace(&w.name_any(), w.spec.namespace.as_deref()) == namespace)
        .ok_or_else(|| Error::Dependency {
            reason: "WorkspaceNotFound",
            message: format!(
                "no Workspace owns the namespace {namespace}; Projects live in a workspace namespace"
            ),
        })?;
    let observed = observe(workspace, caches, config);
    validate::validate(workspace, &observed).map_err(|e| Error::Dependency {
        reason: "WorkspaceNotReady",
        message: format!("Workspace {} is not ready: {e}", workspace.name_any()),
    })
}
