//! Test fixtures: the files of `examples/`, parsed, and the example Workspace validated.

use crate::{
    config::Config,
    controller::{
        Valid,
        identity::Identities,
        workspace::validate::{Observed, ValidatedWorkspace, validate},
    },
    crd::{User, Workspace},
};

/// Every document of `examples/<file>`.
pub fn example<K: serde::de::DeserializeOwned>(file: &str) -> Vec<K> {
    let text = std::fs::read_to_string(format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

/// Objects as the caches hand them out.
pub fn shared<K>(objects: Vec<K>) -> Vec<Valid<K>> {
    objects.into_iter().map(Valid::from).collect()
}

/// What validation observes when these Users exist and nothing else does.
pub fn observed(users: Vec<User>) -> Observed {
    Observed { identities: Identities::new(&shared(users), &Config::default()), ..Observed::default() }
}

/// The example Workspace (UID `uid-1`, as the API server would set one) and the example Users.
pub fn example_workspace() -> (Workspace, Vec<User>) {
    let mut ws: Workspace = example("02-workspace.yaml").remove(0);
    ws.metadata.uid = Some("uid-1".into());
    (ws, example("01-users.yaml"))
}

/// The example Workspace, validated.
pub fn validated_example_workspace() -> ValidatedWorkspace {
    let (ws, users) = example_workspace();
    validate(&ws, &observed(users)).unwrap()
}
