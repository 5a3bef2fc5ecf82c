//! Which Users may be bound to anything: the identity checks both the Workspace and the User
//! controllers apply before a username reaches a binding. Pure functions over the cached Users.

use std::collections::{BTreeMap, BTreeSet};

use super::Valid;
use crate::{config::Config, crd::User};

/// Prefix of the usernames Kubernetes gives ServiceAccounts.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Why a User is not bound. `reason` is the User's condition reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `spec.disabled`.
    Disabled,
    /// Another User has the same username; neither is bound.
    DuplicateUsername(Vec<String>),
    /// The username lacks the operator-wide prefix.
    MissingPrefix(String),
    /// A username Kubernetes reserves (`system:`), other than a ServiceAccount's, or a
    /// ServiceAccount marked platform admin.
    ReservedUsername,
}

impl Refusal {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Disabled => "Disabled",
            Refusal::DuplicateUsername(_) => "DuplicateUsername",
            Refusal::MissingPrefix(_) => "UsernamePrefix",
            Refusal::ReservedUsername => "ReservedUsername",
        }
    }

    /// A sentence for the condition message.
    pub fn message(&self, username: &str) -> String {
        match self {
            Refusal::Disabled => "the user is disabled and holds no bindings".into(),
            Refusal::DuplicateUsername(others) => format!(
                "the username {username} is also claimed by User {}; none of them is bound until only one User has it",
                others.join(", ")
            ),
            Refusal::MissingPrefix(prefix) => format!(
                "the username {username} does not start with the cluster's username prefix {prefix:?}; it is not bound"
            ),
            Refusal::ReservedUsername => format!(
                "the username {username} is reserved by Kubernetes (only system:serviceaccount:<namespace>:<name> is allowed, and never as platform admin); it is not bound"
            ),
        }
    }
}

/// Whether `user` may be bound, given all Users and the operator's settings.
pub fn refusal(user: &User, claims: &BTreeMap<&str, Vec<&str>>, config: &Config) -> Option<Refusal> {
    let username = user.spec.username.as_str();
    let name = user.metadata.name.as_deref().unwrap_or_default();
    let service_account = username.starts_with(SERVICE_ACCOUNT_PREFIX);
    if user.spec.disabled {
        return Some(Refusal::Disabled);
    }
    if (username.starts_with("system:") && !service_account) || (service_account && user.spec.admin) {
        return Some(Refusal::ReservedUsername);
    }
    if let Some(prefix) = &config.username_prefix
        && !service_account
        && !username.starts_with(prefix.as_str())
    {
        return Some(Refusal::MissingPrefix(prefix.clone()));
    }
    let others: Vec<String> =
        claims.get(username).into_iter().flatten().filter(|n| **n != name).map(|n| n.to_string()).collect();
    (!others.is_empty()).then_some(Refusal::DuplicateUsername(others))
}

/// Usernames and the User objects claiming each.
pub fn claims(users: &[Valid<User>]) -> BTreeMap<&str, Vec<&str>> {
    let mut claims: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for user in users {
        claims
            .entry(user.spec.username.as_str())
            .or_default()
            .push(user.metadata.name.as_deref().unwrap_or_default());
    }
    claims
}

/// The Users that may be bound, and the teams that must not be bound as groups.
#[derive(Clone, Debug, Default)]
pub struct Identities {
    /// Users that pass every check.
    pub bindable: Vec<Valid<User>>,
    /// Teams listed by a User who may not be bound. A team group binding would give that person
    /// access through the identity provider's group, so such a team is bound through its
    /// bindable Users only.
    pub untrusted_teams: BTreeSet<String>,
}

impl Identities {
    /// Sorts all Users into bindable ones and the teams that cannot be bound as groups.
    pub fn new(users: &[Valid<User>], config: &Config) -> Self {
        let claims = claims(users);
        let mut identities = Identities::default();
        for user in users {
            if refusal(user, &claims, config).is_some() {
                identities.untrusted_teams.extend(user.spec.teams.iter().cloned());
            } else {
                identities.bindable.push(user.clone());
            }
        }
        identities
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, username: &str, extra: &str) -> Valid<User> {
        serde_yaml::from_str::<User>(&format!(
            "metadata: {{name: {name}}}\nspec: {{username: '{username}'{extra}}}"
        ))
        .unwrap()
        .into()
    }

    #[test]
    fn duplicate_usernames_bind_nobody_and_name_each_other() {
        let users = vec![user("a", "x@e.com", ""), user("b", "x@e.com", ""), user("c", "c@e.com", "")];
        let ids = Identities::new(&users, &Config::default());
        let bound: Vec<_> = ids.bindable.iter().map(|u| u.metadata.name.clone().unwrap()).collect();
        assert_eq!(bound, vec!["c"]);
        assert_eq!(
            refusal(&users[0], &claims(&users), &Config::default()),
            Some(Refusal::DuplicateUsername(vec!["b".into()]))
        );
    }

    #[test]
    fn reserved_usernames_and_service_account_admins_are_refused() {
        let config = Config::default();
        for (username, extra, refused) in [
            ("system:masters", "", true),
            ("system:anonymous", "", true),
            ("system:serviceaccount:team:ci", "", false),
            ("system:serviceaccount:team:ci", ", admin: true", true),
            ("alice@example.com", ", admin: true", false),
        ] {
            let u = user("u", username, extra);
            let got = refusal(&u, &claims(std::slice::from_ref(&u)), &config);
            assert_eq!(got.is_some(), refused, "{username}{extra}: {got:?}");
        }
    }

    #[test]
    fn the_username_prefix_is_enforced_except_for_service_accounts() {
        let config = Config { username_prefix: Some("oidc:".into()), ..Config::default() };
        let check = |username: &str| {
            let u = user("u", username, "");
            refusal(&u, &claims(std::slice::from_ref(&u)), &config).map(|r| r.reason())
        };
        assert_eq!(check("oidc:alice"), None);
        assert_eq!(check("alice"), Some("UsernamePrefix"));
        assert_eq!(check("system:serviceaccount:ns:sa"), None);
    }

    #[test]
    fn teams_of_disabled_users_are_never_bound_as_groups() {
        let users = vec![
            user("a", "a@e.com", ", teams: [eng]"),
            user("b", "b@e.com", ", teams: [eng, ops], disabled: true"),
        ];
        let ids = Identities::new(&users, &Config::default());
        assert_eq!(ids.untrusted_teams, BTreeSet::from(["eng".to_string(), "ops".to_string()]));
        assert_eq!(ids.bindable.len(), 1);
    }
}
