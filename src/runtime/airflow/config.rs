//! Airflow's configuration, as the environment of each container (`AIRFLOW__SECTION__KEY`):
//! every option the operator sets is listed here, once, and a test checks each against the
//! options of the pinned Airflow (`options.txt`, generated from the real package).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;

use super::{API_PORT, Airflow, Component, Database, POSTGRES_PORT, RemoteLogs};
use crate::{build::env, runtime::ValidatedProject};

/// Airflow's home in every Airflow container (the image's): an empty directory, so the
/// configuration file Airflow writes there at first start does not need a writable image.
pub const HOME: &str = "/opt/airflow";
/// Where the DAG checkouts' volume is mounted (read-only but in git-sync, which links
/// `<DAGS>/<repository>` to its worktree under `<DAGS>/.git-sync/<repository>`).
pub const DAGS: &str = "/opt/dataworkspace/dags";
/// Where the logs' volume is mounted: the task logs.
pub const LOGS: &str = "/opt/dataworkspace/logs";
/// Where the UI's API server mounts the roles file.
pub const ROLES_DIR: &str = "/opt/dataworkspace/airflow-roles";
/// Where the operator's files are mounted: the auth manager, the roles, the pod template.
/// Airflow puts `$AIRFLOW_HOME/config` on the import path, so the auth manager's module is
/// importable without touching `PYTHONPATH` (which a Python environment sets).
pub const FILES: &str = "/opt/airflow/config";
/// The KubernetesExecutor's pod template in [`FILES`].
pub const POD_TEMPLATE: &str = "pod-template.yaml";
/// The file of people and their Airflow roles in [`ROLES_DIR`] (JSON, the SHA-256 of each
/// lower-case e-mail → role).
pub const ROLES: &str = "roles.json";
/// The auth manager module in [`FILES`].
pub const AUTH_MODULE: &str = "dataworkspace_auth.py";
/// The auth manager's source.
pub const AUTH_MODULE_SOURCE: &str = include_str!("dataworkspace_auth.py");
/// The auth manager's class, importable from [`FILES`].
pub const AUTH_MANAGER: &str = "dataworkspace_auth.ProxyAuthManager";
/// The environment variable naming the roles file for the auth manager.
pub const ROLES_ENV: &str = "DATAWORKSPACE_AIRFLOW_ROLES";
/// The managed database's user and database.
pub const POSTGRES_USER: &str = "airflow";

/// Keys of the generated Secret `<project>-airflow`.
pub mod keys {
    /// Encrypts the connections and variables stored in the database.
    pub const FERNET: &str = "fernet-key";
    /// Signs the tasks' tokens: the scheduler issues them, the Execution API checks them.
    pub const JWT: &str = "jwt-secret";
    /// Signs the UI's tokens, which only the UI's API server issues and checks: a token of one
    /// is worthless at the other.
    pub const UI_JWT: &str = "ui-jwt-secret";
    /// Signs the API server's sessions and log requests.
    pub const API: &str = "api-secret-key";
    /// The managed database's password.
    pub const POSTGRES: &str = "postgres-password";
}

/// The ConfigMap of the files in [`FILES`].
pub fn files_config_map(project: &str) -> String {
    format!("{project}-airflow")
}

/// The ConfigMap of the roles file, mounted in the UI's API server only.
pub fn roles_config_map(project: &str) -> String {
    format!("{project}-airflow-roles")
}

/// Who may sign in and as what: a JSON object of the SHA-256 (hex) of each lower-case e-mail to
/// role, the file the auth manager reads at each request. Hashed, so the ConfigMap (which
/// developers may read) holds no address. A person listed twice keeps the stronger role.
pub fn roles_file(roles: &[(String, super::AirflowRole)]) -> String {
    let mut strongest: BTreeMap<String, super::AirflowRole> = BTreeMap::new();
    for (email, role) in roles {
        let key = crate::build::python_env::sha256_hex(email.to_ascii_lowercase().as_bytes());
        let entry = strongest.entry(key).or_insert(*role);
        *entry = (*entry).min(*role);
    }
    let object: serde_json::Map<String, serde_json::Value> =
        strongest.into_iter().map(|(email, role)| (email, role.as_str().into())).collect();
    serde_json::to_string_pretty(&object).unwrap_or_default() + "\n"
}

/// The generated Secret's name.
pub fn keys_secret(project: &str) -> String {
    format!("{project}-airflow")
}

/// Who runs with a setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A long-running component.
    Component(Component),
    /// The schema migration Job.
    Migration,
    /// A task's pod (KubernetesExecutor).
    Worker,
}

/// A setting's value.
#[derive(Clone, Debug, PartialEq)]
pub enum SettingValue {
    /// As written (a `$` in it is never expanded).
    Text(String),
    /// A key of a Secret.
    Secret {
        /// The Secret.
        name: String,
        /// Its key.
        key: String,
    },
    /// A value that names earlier variables of the container as `$(NAME)`, expanded by the
    /// kubelet.
    Expanded(String),
}

/// One Airflow option.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// Its section, as in `airflow.cfg`.
    pub section: &'static str,
    /// Its key.
    pub key: &'static str,
    /// Its value.
    pub value: SettingValue,
}

impl Setting {
    fn text(section: &'static str, key: &'static str, value: impl Into<String>) -> Setting {
        Setting { section, key, value: SettingValue::Text(value.into()) }
    }

    fn secret(section: &'static str, key: &'static str, name: &str, secret_key: &str) -> Setting {
        Setting { section, key, value: SettingValue::Secret { name: name.into(), key: secret_key.into() } }
    }

    /// Its environment variable: `AIRFLOW__SECTION__KEY`.
    pub fn env_name(&self) -> String {
        format!("AIRFLOW__{}__{}", self.section.to_ascii_uppercase(), self.key.to_ascii_uppercase())
    }

    /// As an environment variable of a container.
    pub fn env(&self) -> EnvVar {
        match &self.value {
            SettingValue::Text(value) => env::var(&self.env_name(), value.replace('$', "$$")),
            SettingValue::Secret { name, key } => env::from_secret(&self.env_name(), name, key),
            SettingValue::Expanded(value) => env::var(&self.env_name(), value.clone()),
        }
    }
}

/// The variable holding the managed database's password, referenced by the connection URL.
const POSTGRES_PASSWORD_ENV: &str = "AIRFLOW_POSTGRES_PASSWORD";

/// The managed database's Service.
pub fn postgres_service(project: &str) -> String {
    format!("{project}-postgres")
}

/// The URL of the Execution API, which tasks report to.
pub fn execution_api_url(project: &ValidatedProject) -> String {
    format!(
        "http://{}.{}.svc:{API_PORT}/execution/",
        Component::ExecutionApi.workload(&project.name),
        project.namespace
    )
}

/// The DAG bundles, as `[dag_processor] dag_bundle_config_list`: one local bundle per
/// repository, at its checkout (the git-sync link) and path.
pub fn bundle_config(airflow: &Airflow) -> String {
    let bundles: Vec<serde_json::Value> = airflow
        .bundles
        .iter()
        .map(|b| {
            let mut path = format!("{DAGS}/{}", b.checkout.name);
            if let Some(sub) = &b.path {
                path = format!("{path}/{sub}");
            }
            serde_json::json!({
                "name": b.checkout.name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": path, "refresh_interval": 30},
            })
        })
        .collect();
    serde_json::Value::Array(bundles).to_string()
}

/// Every option `role` runs with, in a stable order.
pub fn settings(project: &ValidatedProject, airflow: &Airflow, role: Role) -> Vec<Setting> {
    let keys = keys_secret(&project.name);
    let executor = match airflow.executor {
        crate::crd::project::AirflowExecutor::KubernetesExecutor => "KubernetesExecutor",
        crate::crd::project::AirflowExecutor::LocalExecutor => "LocalExecutor",
    };
    let mut settings = vec![
        Setting::text("core", "executor", executor),
        Setting::text("core", "parallelism", airflow.parallelism.to_string()),
        Setting::text("core", "load_examples", "False"),
        Setting::text("core", "dags_folder", DAGS),
        Setting::text("core", "execution_api_server_url", execution_api_url(project)),
        Setting::text("logging", "base_log_folder", LOGS),
    ];
    if !airflow.bundles.is_empty() {
        settings.push(Setting::text("dag_processor", "dag_bundle_config_list", bundle_config(airflow)));
    }
    if let Some(RemoteLogs { folder, connection }) = &airflow.remote_logs {
        settings.push(Setting::text("logging", "remote_logging", "True"));
        settings.push(Setting::text("logging", "remote_base_log_folder", folder.clone()));
        settings.push(Setting::text("logging", "remote_log_conn_id", connection.clone()));
    }
    // Task pods: no database, no keys — only what reaches the Execution API.
    if role == Role::Worker {
        return settings;
    }
    settings.push(match &airflow.database {
        Database::Managed { .. } => Setting {
            section: "database",
            key: "sql_alchemy_conn",
            value: SettingValue::Expanded(format!(
                "postgresql+psycopg2://{POSTGRES_USER}:$({POSTGRES_PASSWORD_ENV})@{}.{}.svc:{POSTGRES_PORT}/{POSTGRES_USER}",
                postgres_service(&project.name),
                project.namespace
            )),
        },
        Database::External { secret, .. } => {
            Setting::secret("database", "sql_alchemy_conn", &secret.name, &secret.key)
        }
    });
    settings.push(Setting::secret("core", "fernet_key", &keys, keys::FERNET));
    if role == Role::Migration {
        return settings;
    }
    settings.push(Setting::secret("api", "secret_key", &keys, keys::API));
    settings.push(Setting::text("core", "auth_manager", AUTH_MANAGER));
    match role {
        Role::Component(Component::ApiServer) => {
            settings.push(Setting::secret("api_auth", "jwt_secret", &keys, keys::UI_JWT));
            if let Some(host) = &airflow.host {
                settings.push(Setting::text("api", "base_url", format!("https://{host}/")));
            }
        }
        // The tasks' tokens: issued by the scheduler, checked by the Execution API. The DAG
        // processor and the triggerer never hold the secret.
        Role::Component(Component::ExecutionApi) => {
            settings.push(Setting::secret("api_auth", "jwt_secret", &keys, keys::JWT));
        }
        Role::Component(Component::Scheduler) => {
            settings.push(Setting::secret("api_auth", "jwt_secret", &keys, keys::JWT));
            settings.push(Setting::text("scheduler", "enable_health_check", "True"));
            if airflow.kubernetes_executor() {
                settings.push(Setting::text("kubernetes_executor", "namespace", project.namespace.clone()));
                settings.push(Setting::text(
                    "kubernetes_executor",
                    "pod_template_file",
                    format!("{FILES}/{POD_TEMPLATE}"),
                ));
                // A failed task's pod goes too (its log is kept): failing DAGs must not pile pods up.
                settings.push(Setting::text("kubernetes_executor", "delete_worker_pods_on_failure", "True"));
            }
        }
        _ => {}
    }
    settings
}

/// The environment of a container of `role`: the database password first (the connection URL
/// names it), then every setting.
pub fn settings_env(project: &ValidatedProject, airflow: &Airflow, role: Role) -> Vec<EnvVar> {
    let mut vars = Vec::new();
    if role != Role::Worker && matches!(airflow.database, Database::Managed { .. }) {
        vars.push(env::from_secret(POSTGRES_PASSWORD_ENV, &keys_secret(&project.name), keys::POSTGRES));
    }
    vars.extend(settings(project, airflow, role).iter().map(Setting::env));
    vars
}

/// The connection remote task logs are read with, for the UI's API server, if logs are remote.
pub fn remote_log_connection(airflow: &Airflow) -> Vec<EnvVar> {
    let Some(remote) = &airflow.remote_logs else { return Vec::new() };
    airflow
        .connections
        .iter()
        .filter(|(id, _)| *id == remote.connection)
        .map(|(id, secret)| {
            env::from_secret(&format!("AIRFLOW_CONN_{}", id.to_ascii_uppercase()), &secret.name, &secret.key)
        })
        .collect()
}

/// The Workspace's connections and variables as Airflow sees them: `AIRFLOW_CONN_<ID>` and
/// `AIRFLOW_VAR_<NAME>`, each a reference to its Secret key or ConfigMap key (a project's own
/// variable is a value). Only the components get them; tasks ask the API server.
pub fn connections_and_variables(airflow: &Airflow) -> Vec<EnvVar> {
    use k8s_openapi::api::core::v1::{ConfigMapKeySelector, EnvVarSource};
    let mut vars: Vec<EnvVar> = airflow
        .connections
        .iter()
        .map(|(id, secret)| {
            env::from_secret(&format!("AIRFLOW_CONN_{}", id.to_ascii_uppercase()), &secret.name, &secret.key)
        })
        .collect();
    for (name, value) in &airflow.variables {
        let name = format!("AIRFLOW_VAR_{}", name.to_ascii_uppercase());
        vars.push(match value {
            super::Value::Workspace(key) => EnvVar {
                name,
                value_from: Some(EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: env::VARIABLES.into(),
                        key: key.clone(),
                        optional: Some(true),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            super::Value::Secret(secret) => env::from_secret(&name, &secret.name, &secret.key),
            super::Value::Literal(text) => env::var(&name, text.replace('$', "$$")),
        });
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::Project,
        fixtures::{example, validated_example_workspace},
        runtime::{self, RuntimeSpec},
    };

    /// The options of the pinned Airflow (`options.txt`, generated from the package).
    fn valid_options() -> std::collections::BTreeSet<(String, String)> {
        include_str!("options.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (section, key) = l.rsplit_once('.').expect("section.key");
                (section.to_string(), key.to_string())
            })
            .collect()
    }

    #[test]
    fn the_option_list_is_the_pinned_airflows() {
        let options = valid_options();
        assert!(options.len() > 300, "{} options", options.len());
        assert!(options.contains(&("api_auth".into(), "jwt_secret".into())));
        // Names that Airflow silently ignores, seen in other deployments.
        for (section, key) in [("core", "base_url"), ("secrets", "jwt_secret"), ("webserver", "secret_key")] {
            assert!(!options.contains(&(section.into(), key.into())), "{section}.{key}");
        }
    }

    #[test]
    fn every_option_the_operator_sets_exists_in_the_pinned_airflow() {
        let options = valid_options();
        let workspace = validated_example_workspace();
        let variants: [fn(&mut Project); 3] = [
            |_| {},
            |p| {
                p.spec.airflow.as_mut().unwrap().executor =
                    crate::crd::project::AirflowExecutor::LocalExecutor
            },
            |p| {
                let a = p.spec.airflow.as_mut().unwrap();
                a.remote_logs = Some(
                    serde_yaml::from_str("{folder: 's3://logs/airflow', connection: warehouse}").unwrap(),
                );
                a.database = Some(serde_yaml::from_str("external: {connection: warehouse}").unwrap());
            },
        ];
        let mut checked = 0;
        for variant in variants {
            let mut project: Project = example("20-project-airflow.yaml").remove(0);
            variant(&mut project);
            let validated = runtime::validate(&project, workspace.clone()).unwrap();
            let RuntimeSpec::Airflow(airflow) = &validated.runtime else { panic!("not Airflow") };
            let roles = super::super::COMPONENTS
                .iter()
                .map(|c| Role::Component(*c))
                .chain([Role::Migration, Role::Worker]);
            for role in roles {
                for setting in settings(&validated, airflow, role) {
                    assert!(
                        options.contains(&(setting.section.to_string(), setting.key.to_string())),
                        "{}.{} ({role:?}) is not an option of the pinned Airflow",
                        setting.section,
                        setting.key
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "{checked} settings checked");
    }

    #[test]
    fn the_bundles_and_the_roles_are_what_airflow_and_the_auth_manager_read() {
        let project: Project = example("20-project-airflow.yaml").remove(0);
        let validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        let RuntimeSpec::Airflow(airflow) = &validated.runtime else { panic!("not Airflow") };
        let bundles: serde_json::Value = serde_json::from_str(&bundle_config(airflow)).unwrap();
        assert_eq!(
            bundles,
            serde_json::json!([{
                "name": "pipelines",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": "/opt/dataworkspace/dags/pipelines/dags", "refresh_interval": 30}
            }])
        );
        use super::super::AirflowRole::{Admin, Op, Viewer};
        let roles = roles_file(&[("B@x.io".into(), Viewer), ("b@x.io".into(), Op), ("a@x.io".into(), Admin)]);
        let parsed: serde_json::Value = serde_json::from_str(&roles).unwrap();
        let hash = |e: &str| crate::build::python_env::sha256_hex(e.as_bytes());
        assert_eq!(
            parsed,
            serde_json::json!({hash("a@x.io"): "admin", hash("b@x.io"): "op"}),
            "the stronger role, by the hash of the lower-case address"
        );
        assert!(!roles.contains('@'), "no address in the file");
        assert_eq!(roles_file(&[]), "{}\n", "nobody: the auth manager admits no one");
    }

    #[test]
    fn a_dollar_in_a_value_is_never_expanded() {
        let setting = Setting::text("core", "dags_folder", "/a/$(HOME)");
        assert_eq!(setting.env().value.as_deref(), Some("/a/$$(HOME)"));
        assert_eq!(setting.env_name(), "AIRFLOW__CORE__DAGS_FOLDER");
    }
}
