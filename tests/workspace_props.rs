//! Property tests of the Workspace pipeline's pure steps: whatever a Workspace and the Users say
//! (any text, any number, any length), validation and building never panic, every refusal has a
//! bounded reason and message, and what is accepted is safe to hand to git-sync.
//!
//! The specs are generated as JSON and read through serde, as the API server's objects are, so
//! the test follows the CRD types without naming every field. Most values are plausible so that
//! validation gets through to the build; some are garbage at every place.

use dataworkspace_operator::{
    build::{
        access::{self, AccessLayer},
        git,
    },
    config::Config,
    controller::{
        Valid,
        identity::Identities,
        workspace::{build, validate},
    },
    crd::{User, Workspace},
    error::MAX_MESSAGE_BYTES,
};
use proptest::{collection::vec, option, prelude::*};
use serde_json::{Value, json};

/// Any text: plausible, printable, unicode with control characters, or very long.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,12}",
        2 => any::<String>(),
        1 => "[\\x00-\\x1f -~]{0,24}",
        1 => vec(any::<char>(), 0..3000).prop_map(String::from_iter),
    ]
    .boxed()
}

/// A name that is mostly a short DNS label.
fn label() -> BoxedStrategy<String> {
    prop_oneof![12 => "[a-z][a-z0-9]{0,15}", 1 => "[a-z][a-z0-9-]{0,70}", 1 => text()].boxed()
}

/// A User's name, mostly from a few, so that members, access lists and Users meet.
fn person() -> BoxedStrategy<String> {
    prop_oneof![8 => "(alice|bob|carol|dave)", 1 => label()].boxed()
}

/// A team, mostly from a few.
fn team() -> BoxedStrategy<String> {
    prop_oneof![8 => "(eng|ops|data)", 1 => label()].boxed()
}

/// A name that is mostly an environment variable name.
fn env_name() -> BoxedStrategy<String> {
    prop_oneof![12 => "[A-Za-z_][A-Za-z0-9_]{0,10}", 2 => "(CONN_)?[A-Z]{1,3}", 1 => text()].boxed()
}

fn quantity() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[0-9]{1,30}(m|k|Ki|Mi|Gi|Ti|Pi|Ei|e3|E18)?",
        1 => "-?[0-9]{0,5}\\.[0-9]{0,5}",
        1 => text(),
    ]
    .boxed()
}

fn resources() -> BoxedStrategy<Value> {
    let map = || {
        vec((prop_oneof![Just("cpu".to_string()), Just("memory".to_string()), text()], quantity()), 0..3)
            .prop_map(|pairs| {
                pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect::<serde_json::Map<_, _>>()
            })
    };
    (map(), map()).prop_map(|(requests, limits)| json!({"requests": requests, "limits": limits})).boxed()
}

fn idle_timeout() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[0-9]{1,4}[smh]",
        2 => "([0-9]{1,40}[smh]){1,4}",
        1 => "[0-9]{1,400}",
        1 => text(),
    ]
    .boxed()
}

/// Clone URLs of every accepted form, with the pieces that must be refused mixed in.
fn git_url() -> BoxedStrategy<String> {
    // Credentials carry the marker S3CRET, which no refusal may repeat.
    let user = prop_oneof![
        Just(String::new()),
        "[a-z]{1,5}@",
        "[a-z]{1,5}:S3CRET[a-z0-9]{0,8}@",
        "S3CRET[a-z0-9]{1,8}@",
        "-[a-z]{1,5}@",
        text(),
    ];
    let host = prop_oneof![
        4 => "[a-z]{1,8}(\\.[a-z]{2,3})?",
        1 => "-o[A-Za-z]{1,12}=x",
        1 => Just(String::new()),
        1 => text(),
    ];
    let port = prop_oneof![Just(String::new()), "(:[0-9]{1,6})"];
    let path = prop_oneof![4 => "[a-z]{1,8}/[a-z]{1,8}(\\.git)?", 1 => "-[a-z]{1,5}", 1 => text()];
    let good = prop_oneof![
        "https://[a-z]{1,8}\\.com/[a-z]{1,8}/[a-z]{1,8}\\.git",
        "git@[a-z]{1,8}\\.com:[a-z]{1,8}/[a-z]{1,8}\\.git",
        "ssh://(git@)?[a-z]{1,8}(:[0-9]{2,4})?/[a-z]{1,8}\\.git",
    ];
    prop_oneof![
        6 => good,
        2 => (
            prop_oneof![Just("https"), Just("ssh"), Just("HTTPS"), Just("http"), Just("file"), Just("ext")],
            user.clone(),
            host.clone(),
            port,
            path.clone()
        )
            .prop_map(|(scheme, user, host, port, path)| format!("{scheme}://{user}{host}{port}/{path}")),
        2 => (user, host, path).prop_map(|(user, host, path)| format!("{user}{host}:{path}")),
        1 => text(),
    ]
    .boxed()
}

fn git_ref() -> BoxedStrategy<String> {
    prop_oneof![
        12 => "[a-zA-Z0-9][a-zA-Z0-9/._-]{0,40}",
        1 => "[0-9a-f]{40}",
        1 => "[-~^:?*\\[\\\\@{}./ a-z]{1,12}",
        1 => text(),
    ]
    .boxed()
}

fn secret_entry() -> BoxedStrategy<Value> {
    (env_name(), option::of(text()), label(), text())
        .prop_map(|(name, description, secret, key)| {
            json!({"name": name, "description": description, "secretRef": {"name": secret, "key": key}})
        })
        .boxed()
}

fn role() -> BoxedStrategy<&'static str> {
    prop_oneof![Just("admin"), Just("developer"), Just("viewer")].boxed()
}

fn member() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (person(), role()).prop_map(|(user, role)| json!({"user": user, "role": role})),
        4 => (team(), role()).prop_map(|(team, role)| json!({"team": team, "role": role})),
        1 => (person(), team(), role())
            .prop_map(|(user, team, role)| json!({"user": user, "team": team, "role": role})),
        1 => role().prop_map(|role| json!({"role": role})),
    ]
    .boxed()
}

fn access() -> BoxedStrategy<Value> {
    (vec(person(), 0..4), vec(team(), 0..4))
        .prop_map(|(users, teams)| json!({"users": users, "teams": teams}))
        .boxed()
}

fn studio() -> BoxedStrategy<Value> {
    (
        (any::<bool>(), any::<bool>(), option::of(text()), option::of(resources())),
        (option::of(quantity()), option::of(text()), option::of(access())),
        (option::of(idle_timeout()), option::of(prop_oneof!["[a-z]{1,10}\\.example\\.com", text()])),
    )
        .prop_map(|((enabled, stopped, image, resources), (size, class, access), (idle, host))| {
            json!({
                "enabled": enabled, "stopped": stopped, "image": image, "resources": resources,
                "storage": {"size": size, "storageClassName": class},
                "access": access, "idleTimeout": idle, "host": host,
            })
        })
        .boxed()
}

fn egress() -> BoxedStrategy<Value> {
    (
        option::of(prop_oneof!["[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/[0-9]{1,2}", text()]),
        option::of(label()),
        vec(any::<i32>(), 0..3),
    )
        .prop_map(|(cidr, namespace, ports)| json!({"cidr": cidr, "namespace": namespace, "ports": ports}))
        .boxed()
}

/// Drops the `null`s of absent optional fields, as the API server never stores them.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn workspace() -> BoxedStrategy<Workspace> {
    let quantities = (option::of(quantity()), option::of(quantity()), option::of(quantity()));
    let quota = (quantities, option::of(any::<i32>()), option::of(resources())).prop_map(
        |((cpu, memory, storage), pods, defaults)| {
            json!({
                "cpu": cpu, "memory": memory, "storage": storage, "pods": pods,
                "containerDefaults": defaults,
            })
        },
    );
    let repository = (label(), git_url(), git_ref(), option::of(label()));
    let repository = repository.prop_map(|(name, url, r#ref, secret)| {
        json!({"name": name, "url": url, "ref": r#ref, "credentialsSecret": secret})
    });
    (
        (label(), option::of(label()), option::of(text()), vec(member(), 0..6), option::of(quota)),
        (vec((env_name(), text()), 0..5), vec(secret_entry(), 0..4), vec(secret_entry(), 0..4)),
        (vec(repository, 0..4), option::of(studio()), any::<bool>(), vec(egress(), 0..3)),
    )
        .prop_map(|(first, second, third)| {
            let (name, namespace, description, members, quota) = first;
            let (variables, connections, secrets) = second;
            let (repos, studio, delete, egress) = third;
            let variables: serde_json::Map<String, Value> =
                variables.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            without_nulls(json!({
                "apiVersion": "dataworkspace.io/v1alpha1",
                "kind": "Workspace",
                "metadata": {"name": name, "uid": "uid-1"},
                "spec": {
                    "namespace": namespace, "description": description, "members": members, "quota": quota,
                    "variables": variables, "connections": connections, "secrets": secrets,
                    "gitRepositories": repos, "studio": studio,
                    "deletionPolicy": if delete { "Delete" } else { "Retain" },
                    "network": {"egress": egress},
                },
            }))
        })
        .prop_map(|value| {
            serde_json::from_value(value).expect("the generated JSON follows the Workspace CRD types")
        })
        .boxed()
}

fn user() -> BoxedStrategy<User> {
    let username = prop_oneof![8 => "[a-z]{1,8}@example\\.com", 1 => "system:[a-z:]{1,20}", 1 => text()];
    let email = option::of(prop_oneof![4 => "[a-z]{1,8}@example\\.com", 1 => text()]);
    (person(), username, email, vec(team(), 0..3), any::<bool>(), any::<bool>())
        .prop_map(|(name, username, email, teams, admin, disabled)| {
            let value = without_nulls(json!({
                "apiVersion": "dataworkspace.io/v1alpha1",
                "kind": "User",
                "metadata": {"name": name},
                "spec": {
                    "username": username, "email": email, "teams": teams, "admin": admin,
                    "disabled": disabled,
                },
            }));
            serde_json::from_value(value).expect("the generated JSON follows the User CRD types")
        })
        .boxed()
}

fn config(variant: u8) -> Config {
    match variant % 3 {
        0 => Config::default(),
        1 => Config { team_group_prefix: Some("oidc:".into()), ..Config::default() },
        _ => Config {
            access: Some(AccessLayer {
                namespace: "dataworkspace-access".into(),
                domain: "example.com".into(),
                issuer_url: "https://login.example.com/realms/data".into(),
                client_id: "dataworkspace".into(),
                client_secret: "oidc-client".into(),
                image: "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6".into(),
                ingress_class: Some("public".into()),
                tls_secret: None,
                gateway: None,
            }),
            ..Config::default()
        },
    }
}

fn is_pascal_case(reason: &str) -> bool {
    reason.len() <= 64
        && reason.starts_with(|c: char| c.is_ascii_uppercase())
        && reason.chars().all(|c| c.is_ascii_alphanumeric())
}

/// What an accepted URL must never be.
fn assert_safe_url(url: &str) {
    assert!(!url.starts_with('-'), "{url:?}");
    assert!(!url.chars().any(|c| c.is_whitespace() || c.is_control()), "{url:?}");
    match url.split_once("://") {
        Some(_) => {
            let parsed = url::Url::parse(url).expect("an accepted URL parses");
            assert_eq!(parsed.password(), None, "{url:?}");
            if parsed.scheme() == "https" {
                assert_eq!(parsed.username(), "", "{url:?}");
            }
        }
        None => {
            let (user, _) = url.split_once('@').expect("the scp form names a user");
            assert!(!user.contains(':') && !user.starts_with('-'), "{url:?}");
        }
    }
}

proptest! {
    #[test]
    fn validation_and_build_never_panic(
        ws in workspace(),
        users in vec(user(), 0..5),
        variant in any::<u8>(),
    ) {
        let config = config(variant);
        let observed = validate::Observed {
            identities: Identities::new(&users.into_iter().map(Valid::from).collect::<Vec<_>>(), &config),
            ..validate::Observed::default()
        };
        match validate::validate(&ws, &observed) {
            Ok(validated) => {
                for repo in &validated.repos {
                    assert_safe_url(&repo.url);
                    prop_assert!(git::check_ref(&repo.r#ref).is_ok());
                }
                let reach = validated
                    .studio
                    .as_ref()
                    .map(|studio| build::studio_reach(&validated, studio, &config, |_| None));
                let objects = build::build(&validated, &config, reach.as_ref());
                // The objects serialise, as applying them needs.
                prop_assert!(serde_json::to_value(&objects.namespace).is_ok());
                if let Some(studio) = &objects.studio {
                    prop_assert!(serde_json::to_value(&studio.statefulset).is_ok());
                    // Whatever the members' e-mails and the host, an exposed host lies in the
                    // domain and the access list holds plain addresses only, one per line.
                    for exposed in &studio.access {
                        let host = &exposed.emails.metadata.annotations.as_ref().unwrap()[access::ANNOTATION_HOST];
                        prop_assert!(access::check_host(host, "example.com").is_ok(), "{host}");
                        let list = &exposed.emails.data.as_ref().unwrap()[access::EMAILS_KEY];
                        prop_assert!(list.lines().all(access::plain_email), "{list:?}");
                    }
                }
            }
            Err(error) => {
                prop_assert!(is_pascal_case(error.reason()), "{}", error.reason());
                prop_assert!(error.message().len() <= MAX_MESSAGE_BYTES);
                prop_assert!(error.is_permanent(), "a pure validation error is a spec error: {error}");
            }
        }
    }

    #[test]
    fn a_duration_of_digits_of_any_length_never_panics(digits in "[0-9]{1,600}", unit in "[smhd]?") {
        match validate::parse_idle_timeout(&format!("{digits}{unit}")) {
            Ok(seconds) => prop_assert!(seconds <= validate::MAX_IDLE_TIMEOUT_SECONDS),
            Err(error) => prop_assert_eq!(error.reason(), "InvalidIdleTimeout"),
        }
    }

    #[test]
    fn any_idle_timeout_is_a_bounded_number_or_a_refusal(value in idle_timeout()) {
        match validate::parse_idle_timeout(&value) {
            Ok(seconds) => prop_assert!(seconds <= validate::MAX_IDLE_TIMEOUT_SECONDS),
            Err(error) => {
                prop_assert_eq!(error.reason(), "InvalidIdleTimeout");
                prop_assert!(error.to_string().len() < 400, "{}", error);
            }
        }
    }

    #[test]
    fn an_accepted_git_url_never_starts_with_a_dash_nor_carries_a_password(url in git_url()) {
        match git::check_url(&url) {
            Ok(accepted) => assert_safe_url(&accepted.url),
            // A refusal never repeats the URL, which may hold a credential.
            Err(message) => prop_assert!(!message.contains("S3CRET"), "{}", message),
        }
    }

    #[test]
    fn an_accepted_ref_follows_gits_rules(r in git_ref()) {
        if git::check_ref(&r).is_ok() {
            let forbidden = ["..", "@{", "//"];
            prop_assert!(!r.starts_with('-') && !forbidden.iter().any(|f| r.contains(f)), "{:?}", r);
            prop_assert!(!r.ends_with('/') && !r.ends_with('.') && !r.ends_with(".lock"), "{:?}", r);
            let shown = |c: char| !c.is_whitespace() && !c.is_control() && !"~^:?*[\\".contains(c);
            prop_assert!(r.chars().all(shown), "{:?}", r);
            prop_assert!(r.len() <= git::MAX_REF_LENGTH, "{:?}", r);
        }
    }
}
