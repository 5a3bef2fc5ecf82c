//! Jupyter Server settings shared by the Studio server and Notebook projects: one list of
//! settings, rendered as command-line options or as a `jupyter_server_config.json` file.

use serde_json::{Map, Value, json};

/// The JupyterLab image of the Studio server and Notebook projects.
pub const IMAGE: &str = "quay.io/jupyter/scipy-notebook:2026-07-28";
/// UID of the `jovyan` user in the Jupyter images.
pub const UID: i64 = 1000;
/// Its primary group (`users`).
pub const GID: i64 = 100;
/// Its home directory.
pub const HOME: &str = "/home/jovyan";
/// JupyterLab's port.
pub const PORT: i32 = 8888;

/// What the server does when idle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    /// Kernels and terminals are shut down after this many idle seconds (0: never).
    pub cull_after: u64,
    /// The whole server exits after this many seconds without activity (0: never).
    pub shutdown_after: u64,
}

/// `(Class.trait, value)` settings of the server for idle culling.
pub fn idle_settings(idle: Idle) -> Vec<(&'static str, Value)> {
    let mut settings = Vec::new();
    if idle.cull_after > 0 {
        settings.push(("MappingKernelManager.cull_idle_timeout", json!(idle.cull_after)));
        settings.push(("MappingKernelManager.cull_interval", json!(60)));
        settings.push(("TerminalManager.cull_inactive_timeout", json!(idle.cull_after)));
        settings.push(("TerminalManager.cull_interval", json!(60)));
    }
    if idle.shutdown_after > 0 {
        settings.push(("ServerApp.shutdown_no_activity_timeout", json!(idle.shutdown_after)));
    }
    settings
}

/// The settings as command-line options (`--Class.trait=value`).
pub fn as_args(settings: &[(&str, Value)]) -> Vec<String> {
    settings
        .iter()
        .map(|(key, value)| match value {
            Value::String(s) => format!("--{key}={s}"),
            other => format!("--{key}={other}"),
        })
        .collect()
}

/// The settings as a `jupyter_server_config.json` document: `{"Class": {"trait": value}}`.
pub fn as_config(settings: &[(&str, Value)]) -> String {
    let mut root = Map::new();
    for (key, value) in settings {
        let (class, name) = key.split_once('.').unwrap_or(("ServerApp", key));
        let entry = root.entry(class.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(section) = entry {
            section.insert(name.to_string(), value.clone());
        }
    }
    serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_render_as_options_and_as_a_config_file() {
        let settings = [("ServerApp.port", json!(8888)), ("ServerApp.ip", json!("0.0.0.0"))];
        assert_eq!(as_args(&settings), vec!["--ServerApp.port=8888", "--ServerApp.ip=0.0.0.0"]);
        let config: Value = serde_json::from_str(&as_config(&settings)).unwrap();
        assert_eq!(config, json!({"ServerApp": {"port": 8888, "ip": "0.0.0.0"}}));
    }

    #[test]
    fn idle_culling_only_when_asked() {
        assert!(idle_settings(Idle::default()).is_empty());
        let settings = idle_settings(Idle { cull_after: 3600, shutdown_after: 7200 });
        assert!(settings.contains(&("MappingKernelManager.cull_idle_timeout", json!(3600))));
        assert!(settings.contains(&("ServerApp.shutdown_no_activity_timeout", json!(7200))));
    }
}
