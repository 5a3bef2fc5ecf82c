//! The workspace environment every container that runs user code gets: the variables
//! ConfigMap, and connections and secrets as `secretKeyRef`s (values stay in their Secrets).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, EnvFromSource, EnvVar, EnvVarSource, SecretKeySelector,
};

use crate::crd::common::SecretKeyRef;

/// Name of the ConfigMap holding the workspace's variables.
pub const VARIABLES: &str = "workspace-variables";

/// `envFrom` for the variables and `env` for the Secret-backed names.
pub fn workspace_env(secret_env: &BTreeMap<String, SecretKeyRef>) -> (Vec<EnvFromSource>, Vec<EnvVar>) {
    let env_from = vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource { name: VARIABLES.into(), optional: Some(true) }),
        ..EnvFromSource::default()
    }];
    let env = secret_env
        .iter()
        .map(|(name, r)| EnvVar {
            name: name.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
        .collect();
    (env_from, env)
}

/// A plain environment variable.
pub fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

/// An environment variable from a Secret key.
pub fn from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: None }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}
