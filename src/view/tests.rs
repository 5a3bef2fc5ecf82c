//! Table tests of the view model over one small platform: three workspaces, Users by name and
//! by team, a disabled User, a stranger, two Users sharing a username, and a caller without one.

use k8s_openapi::jiff::Timestamp;
use rstest::rstest;

use super::{
    age::Age,
    approval::{self, DecisionError},
    envs,
    runtime::{self, Listing},
    scope::{self, Breadth, ScopeError, Viewer},
    usage,
};
use crate::config::Config;
use crate::crd::{Project, PythonEnvironment, User, Workspace, common::Role};

fn docs<K: serde::de::DeserializeOwned>(yaml: &str) -> Vec<K> {
    serde_yaml::Deserializer::from_str(yaml).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn now() -> Timestamp {
    "2026-03-02T12:00:00Z".parse().unwrap()
}

fn users() -> Vec<User> {
    docs(
        r#"
metadata: {name: alice}
spec:
  username: alice@example.com
  teams: [eng]
  pinned: [{namespace: dw-a, name: etl}, {namespace: dw-a, name: gone}, {namespace: dw-b, name: secret}]
status:
  recent: [{namespace: dw-a, name: nb}, {namespace: dw-a, name: etl}, {namespace: dw-a, name: deleted}]
---
metadata: {name: eve}
spec: {username: eve@example.com, teams: [eng]}
---
metadata: {name: bob}
spec: {username: bob@example.com, disabled: true, pinned: [{namespace: dw-a, name: etl}]}
---
metadata: {name: carol}
spec: {username: carol@example.com, teams: [ops]}
---
metadata: {name: dave}
spec: {username: dave@example.com}
---
metadata: {name: dave2}
spec: {username: dave@example.com}
"#,
    )
}

fn workspaces() -> Vec<Workspace> {
    docs(
        r#"
metadata: {name: a}
spec: {members: [{team: eng, role: developer}, {user: bob, role: admin}, {user: dave, role: viewer}]}
status: {namespace: dw-a}
---
metadata: {name: b}
spec: {members: [{user: zed, role: viewer}]}
status: {namespace: dw-b}
---
metadata: {name: c}
spec: {namespace: analytics, members: [{user: alice, role: admin}, {team: eng, role: viewer}]}
status: {namespace: analytics}
"#,
    )
}

/// A Workspace that owns no namespace (refused the one it names: another's, or a retained one)
/// shows nothing that lives there, though its members still see the workspace.
#[test]
fn a_workspace_without_its_namespace_shows_nothing_of_it() {
    let users = users();
    let mut workspaces = workspaces();
    for ws in &mut workspaces {
        ws.status = None;
    }
    let scope =
        scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Config::default())
            .unwrap();
    assert!(!scope.workspaces.is_empty());
    assert!(scope.workspaces.iter().all(|w| w.namespace.is_empty()), "{:?}", scope.workspaces);
    assert!(runtime::rows(&scope, &projects(), now()).is_empty());
}

fn projects() -> Vec<Project> {
    docs(
        r#"
metadata: {name: etl, namespace: dw-a, creationTimestamp: '2026-03-02T09:00:00Z'}
spec: {runtime: Airflow, airflow: {}}
status:
  phase: Running
  conditions: [{type: Ready, status: 'True', reason: Ready, message: '', lastTransitionTime: '2026-03-02T09:05:00Z'}]
  components: [{name: scheduler, ready: true}, {name: api-server, ready: true}]
  endpoints: [{name: ui, url: 'https://etl.example.com/'}]
---
metadata: {name: nb, namespace: dw-a, creationTimestamp: '2026-03-02T11:55:00Z'}
spec: {runtime: Notebook, notebook: {}}
status:
  phase: Provisioning
  conditions: [{type: Ready, status: 'False', reason: Starting, message: '', lastTransitionTime: '2026-03-02T11:55:00Z'}]
---
metadata: {name: zz, namespace: dw-a, creationTimestamp: '2026-02-28T12:00:00Z'}
spec: {runtime: Spark, spark: {}}
---
metadata: {name: aa, namespace: dw-a, creationTimestamp: '2026-03-01T12:00:00Z'}
spec: {runtime: Streamlit, streamlit: {}}
status: {phase: Degraded}
---
metadata: {name: secret, namespace: dw-b}
spec: {runtime: Notebook, notebook: {}}
---
metadata: {name: dash, namespace: analytics}
spec: {runtime: Streamlit, streamlit: {}}
status: {phase: Stopped}
---
metadata: {name: stray, namespace: elsewhere}
spec: {runtime: Notebook, notebook: {}}
"#,
    )
}

/// The rows as `<listing> <workspace>/<project>`.
fn listed(viewer: Viewer<'_>, breadth: Breadth) -> Result<Vec<String>, ScopeError> {
    let (users, workspaces) = (users(), workspaces());
    let scope = scope::resolve(viewer, breadth, &users, &workspaces, &Config::default())?;
    Ok(runtime::rows(&scope, &projects(), now())
        .into_iter()
        .map(|r| format!("{:?} {}/{}", r.listing, r.workspace, r.project).to_lowercase())
        .collect())
}

const NO_GROUPS: &[String] = &[];

#[rstest]
#[case::pinned_before_recent_before_the_rest(
    Viewer::User("alice"), Breadth::Member,
    &["pinned a/etl", "pinned a/gone", "recent a/nb", "other a/aa", "other a/zz", "other c/dash"],
)]
#[case::the_caller_is_found_by_username(
    Viewer::Caller { username: "alice@example.com", groups: NO_GROUPS }, Breadth::Member,
    &["pinned a/etl", "pinned a/gone", "recent a/nb", "other a/aa", "other a/zz", "other c/dash"],
)]
#[case::all_workspaces_add_pins_and_projects_outside_membership(
    Viewer::User("alice"), Breadth::All,
    &["pinned a/etl", "pinned a/gone", "pinned b/secret", "recent a/nb", "other a/aa", "other a/zz", "other c/dash"],
)]
#[case::team_membership_alone_is_enough(
    Viewer::User("eve"), Breadth::Member,
    &["other a/aa", "other a/etl", "other a/nb", "other a/zz", "other c/dash"],
)]
#[case::a_disabled_user_sees_nothing_even_pinned(Viewer::User("bob"), Breadth::Member, &[])]
#[case::a_stranger_sees_nothing(Viewer::User("carol"), Breadth::Member, &[])]
#[case::a_caller_without_a_user_sees_everything_listed_under_all(
    Viewer::Caller { username: "root", groups: NO_GROUPS }, Breadth::All,
    &["other a/aa", "other a/etl", "other a/nb", "other a/zz", "other b/secret", "other c/dash"],
)]
fn runtime_rows(#[case] viewer: Viewer<'static>, #[case] breadth: Breadth, #[case] expected: &[&str]) {
    assert_eq!(listed(viewer, breadth).unwrap(), expected);
}

#[rstest]
#[case::no_user_for_the_caller(
    Viewer::Caller { username: "root", groups: &[] }, Breadth::Member,
    "you are authenticated as \"root\", but no User has spec.username \"root\"",
)]
#[case::a_shared_username(
    Viewer::Caller { username: "dave@example.com", groups: &[] }, Breadth::All,
    "which the Users dave, dave2 all claim; the operator binds none of them",
)]
#[case::an_unknown_user(Viewer::User("nobody"), Breadth::Member, "User \"nobody\" not found")]
fn scopes_that_cannot_be_made_say_why(
    #[case] viewer: Viewer<'static>,
    #[case] breadth: Breadth,
    #[case] message: &str,
) {
    let error = listed(viewer, breadth).unwrap_err().to_string();
    assert!(error.contains(message), "{error}");
}

#[test]
fn a_caller_without_a_user_is_told_their_groups() {
    let groups = vec!["system:authenticated".to_string(), "oidc:eng".to_string()];
    let error = listed(Viewer::Caller { username: "root", groups: &groups }, Breadth::Member).unwrap_err();
    assert!(error.to_string().contains("(groups: system:authenticated, oidc:eng)"), "{error}");
}

#[rstest]
#[case::disabled("bob", "the user is disabled and holds no bindings")]
#[case::stranger("carol", "User carol is a member of no workspace")]
#[case::shared_username("dave", "is also claimed by User dave2")]
fn why_nothing_is_shown_is_a_notice(#[case] user: &str, #[case] notice: &str) {
    let (users, workspaces) = (users(), workspaces());
    let scope =
        scope::resolve(Viewer::User(user), Breadth::Member, &users, &workspaces, &Config::default()).unwrap();
    assert!(scope.workspaces.is_empty(), "{:?}", scope.workspaces);
    assert!(scope.notices.iter().any(|n| n.contains(notice)), "{:?}", scope.notices);
}

#[test]
fn rows_carry_the_live_state_role_and_age() {
    let (users, workspaces) = (users(), workspaces());
    let scope =
        scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Config::default())
            .unwrap();
    let rows = runtime::rows(&scope, &projects(), now());
    let etl = &rows[0];
    assert_eq!(etl.listing, Listing::Pinned);
    assert_eq!((etl.phase.as_deref(), etl.ready.as_deref()), (Some("Running"), Some("True")));
    assert_eq!(etl.endpoint.as_deref(), Some("https://etl.example.com/"));
    assert_eq!(etl.components.map(|c| (c.ready, c.total)), Some((2, 2)));
    assert_eq!(etl.role, Some(Role::Developer), "through team eng");
    assert_eq!(etl.age.map(|a| a.to_string()).as_deref(), Some("3h"));
    let gone = &rows[1];
    assert_eq!((gone.phase.as_deref(), gone.runtime.as_deref(), gone.age), (Some("NotFound"), None, None));
    let nb = &rows[2];
    assert_eq!(nb.age.map(|a| a.to_string()).as_deref(), Some("5m"));
    let zz = rows.iter().find(|r| r.project == "zz").unwrap();
    assert_eq!((zz.phase.as_deref(), zz.age.map(|a| a.to_string())), (None, Some("2d".into())));
    let dash = rows.iter().find(|r| r.project == "dash").unwrap();
    assert_eq!((dash.namespace.as_str(), dash.role), ("analytics", Some(Role::Admin)), "the strongest role");
}

fn environments() -> Vec<PythonEnvironment> {
    docs(
        r#"
metadata: {name: pandas, namespace: dw-a, generation: 1, creationTimestamp: '2026-03-02T11:00:00Z'}
spec: {packages: [pandas]}
status:
  observedGeneration: 1
  phase: PendingApproval
  requester: eve@example.com
  specHash: 3f1c9a0b7e2d44aa
  conditions: [{type: Approved, status: 'False', reason: ApprovalStale, message: '', lastTransitionTime: '2026-03-02T11:00:00Z'}]
---
metadata: {name: arrow, namespace: dw-a, generation: 2, creationTimestamp: '2026-03-01T11:00:00Z'}
spec: {packages: [pyarrow]}
status:
  observedGeneration: 1
  phase: Ready
  requester: eve@example.com
  approver: alice@example.com
  specHash: def
  conditions: [{type: Approved, status: 'True', reason: Approved, message: '', lastTransitionTime: '2026-03-02T11:00:00Z'}, {type: Ready, status: 'True', reason: Ready, message: '', lastTransitionTime: '2026-03-02T11:00:00Z'}]
---
metadata: {name: fresh, namespace: analytics}
spec: {packages: [six]}
---
metadata: {name: hidden, namespace: dw-b}
spec: {packages: [six]}
"#,
    )
}

#[test]
fn environments_show_their_approval_state_within_scope() {
    let (users, workspaces) = (users(), workspaces());
    let scope =
        scope::resolve(Viewer::User("alice"), Breadth::Member, &users, &workspaces, &Config::default())
            .unwrap();
    let rows = envs::rows(&scope, &environments(), now());
    let shown: Vec<(&str, &str, Option<&str>, bool)> =
        rows.iter().map(|r| (r.name.as_str(), r.state.as_str(), r.reason.as_deref(), r.stale)).collect();
    assert_eq!(
        shown,
        [
            ("arrow", "Ready", Some("Ready"), true),
            ("pandas", "PendingApproval", Some("ApprovalStale"), false),
            ("fresh", envs::UNKNOWN, None, false),
        ]
    );
    assert_eq!(rows[1].requester.as_deref(), Some("eve@example.com"));
    assert_eq!(rows[1].age, Some(Age(3600)));
}

#[test]
fn usage_is_a_percentage_of_each_quota_but_bans_are_left_out() {
    let workspaces: Vec<Workspace> = docs(
        r#"
metadata: {name: a}
spec: {members: [{team: eng, role: developer}]}
status:
  namespace: dw-a
  usage:
    requests.cpu: {used: 500m, hard: '2'}
    requests.memory: {used: 1536Mi, hard: 4Gi}
    pods: {hard: '20'}
    services.loadbalancers: {used: '0', hard: '0'}
---
metadata: {name: b}
spec: {}
status: {usage: {pods: {used: '3', hard: '10'}}}
"#,
    );
    let users = users();
    let scope = scope::resolve(Viewer::User("eve"), Breadth::Member, &users, &workspaces, &Config::default())
        .unwrap();
    let rows = usage::rows(&scope, &workspaces);
    let shown: Vec<(&str, &str, Option<u64>)> =
        rows.iter().map(|r| (r.workspace.as_str(), r.resource.as_str(), r.percent)).collect();
    assert_eq!(
        shown,
        [("a", "pods", None), ("a", "requests.cpu", Some(25)), ("a", "requests.memory", Some(38))]
    );
}

#[rstest]
#[case("500m", Some(0.5))]
#[case("2", Some(2.0))]
#[case("1.5Gi", Some(1.5 * 1024.0 * 1024.0 * 1024.0))]
#[case("10G", Some(1e10))]
#[case("1e3", Some(1000.0))]
#[case("12Q", None)]
#[case("", None)]
fn quantities(#[case] text: &str, #[case] value: Option<f64>) {
    assert_eq!(usage::quantity(text), value);
}

fn pending(generation: i64, observed: Option<i64>) -> PythonEnvironment {
    let mut env = environments().remove(0);
    env.metadata.generation = Some(generation);
    env.metadata.resource_version = Some("42".into());
    env.status.as_mut().unwrap().observed_generation = observed;
    env
}

#[test]
fn an_approval_names_the_approver_and_the_reported_hash_and_clears_a_rejection() {
    let patch =
        approval::approve(&pending(1, Some(1)), "alice@example.com", "3F1C9A0B7E2D", Some(" looks fine "))
            .unwrap();
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        serde_json::json!({
            "metadata": {"resourceVersion": "42"},
            "spec": {"approval": {"approvedBy": "alice@example.com", "specHash": "3f1c9a0b7e2d44aa", "comment": "looks fine"}, "rejection": null}
        })
    );
}

#[test]
fn a_rejection_names_the_rejecter_and_the_reason_and_clears_an_approval() {
    let patch = approval::reject(&pending(1, Some(1)), "alice@example.com", "unpinned versions").unwrap();
    assert_eq!(
        serde_json::to_value(&patch).unwrap(),
        serde_json::json!({
            "metadata": {"resourceVersion": "42"},
            "spec": {"approval": null, "rejection": {"rejectedBy": "alice@example.com", "specHash": "3f1c9a0b7e2d44aa", "reason": "unpinned versions"}}
        })
    );
}

/// An approval names the spec the approver reviewed: a spec changed since (another hash), or a
/// hash too short to name one, approves nothing.
#[rstest]
#[case::changed_since("0000000000000000", "now installs a spec with hash 3f1c9a0b7e2d44aa")]
#[case::too_short("3f1c9a", "at least 12 hexadecimal digits")]
#[case::not_hex("3f1c9a0b7e2z", "at least 12 hexadecimal digits")]
fn an_approval_needs_the_reviewed_hash(#[case] reviewed: &str, #[case] message: &str) {
    let error = approval::approve(&pending(1, Some(1)), "alice@example.com", reviewed, None).unwrap_err();
    assert!(error.to_string().contains(message), "{error}");
}

#[rstest]
#[case::status_behind(pending(2, Some(1)))]
#[case::no_status_generation(pending(1, None))]
fn no_decision_before_the_operator_hashed_the_current_spec(#[case] env: PythonEnvironment) {
    let error = approval::approve(&env, "alice@example.com", "3f1c9a0b7e2d44aa", None).unwrap_err();
    assert!(matches!(error, DecisionError::NotObserved { .. }), "{error}");
    assert!(error.to_string().contains("wait a moment and retry"), "{error}");
}

#[rstest]
#[case::fine("unpinned versions", Ok("unpinned versions"))]
#[case::trimmed("  spaces around  ", Ok("spaces around"))]
#[case::unicode("versions non épinglées", Ok("versions non épinglées"))]
#[case::empty("   ", Err("must not be empty"))]
#[case::newline("line one\nline two", Err("control characters"))]
#[case::escape("red \u{1b}[31m text", Err("control characters"))]
#[case::tab("a\tb", Err("control characters"))]
#[case::too_long(&"x".repeat(1025), Err("at most 1024 characters"))]
fn reasons_are_bounded_and_printable(#[case] text: &str, #[case] expected: Result<&str, &str>) {
    match (approval::checked_text("--reason", text), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want),
        (Err(error), Err(want)) => assert!(error.to_string().contains(want), "{error}"),
        (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn a_reason_of_exactly_the_limit_is_accepted() {
    assert!(approval::checked_text("--reason", &"é".repeat(approval::TEXT_LIMIT)).is_ok());
}

proptest::proptest! {
    /// Text from the command line never panics the check, and what it accepts is one bounded,
    /// printable line.
    #[test]
    fn any_text_is_checked_without_panicking(text in "\\PC*|.*[\\x00-\\x1f\\x7f].*") {
        if let Ok(checked) = approval::checked_text("--reason", &text) {
            proptest::prop_assert!(!checked.is_empty() && checked.chars().count() <= approval::TEXT_LIMIT);
            proptest::prop_assert!(!checked.chars().any(char::is_control));
        }
    }

    /// Quantities from status never panic the usage view.
    #[test]
    fn any_quantity_parses_without_panicking(text in ".{0,40}") {
        let _ = usage::quantity(&text);
    }

    /// Any age prints.
    #[test]
    fn any_age_prints(seconds in proptest::num::i64::ANY) {
        proptest::prop_assert!(!Age(seconds).to_string().is_empty());
    }
}

/// The console's people: by user, by team, a disabled platform admin, a platform admin, a
/// stranger, nobody, and two Users sharing an e-mail address.
mod console {
    use rstest::rstest;

    use super::{docs, now};
    use crate::{
        config::Config,
        crd::{Project, User, Workspace, common::Role},
        view::{console, runtime},
    };

    /// Whom the operator does not bind under its own settings (a username without its
    /// `--username-prefix`) sees nothing here either, platform admin or not.
    #[test]
    fn the_operators_identity_settings_decide_too() {
        let users = users();
        let workspaces = workspaces();
        let config = Config { username_prefix: Some("oidc:".into()), ..Config::default() };
        for user in &users {
            let Some(email) = user.spec.email.as_deref() else { continue };
            let person = console::identify(email, &users, &workspaces, &config);
            if !user.spec.username.starts_with("oidc:") {
                assert!(
                    person.scope.workspaces.is_empty() && !person.platform_admin,
                    "{email}: {:?}",
                    person.scope.workspaces
                );
            }
        }
    }

    fn users() -> Vec<User> {
        docs(
            r#"
metadata: {name: alice}
spec: {username: alice, email: Alice@Example.com, teams: [eng]}
---
metadata: {name: bob}
spec: {username: bob, email: bob@example.com}
---
metadata: {name: dan}
spec: {username: dan, email: dan@example.com, admin: true, disabled: true}
---
metadata: {name: root}
spec: {username: root, email: root@example.com, admin: true}
---
metadata: {name: zed}
spec: {username: zed, email: zed@example.com}
---
metadata: {name: twin1}
spec: {username: twin1, email: twin@example.com}
---
metadata: {name: twin2}
spec: {username: twin2, email: TWIN@example.com}
"#,
        )
    }

    fn workspaces() -> Vec<Workspace> {
        docs(
            r#"
metadata: {name: a}
spec:
  members: [{team: eng, role: developer}, {user: bob, role: admin}, {user: dan, role: viewer}]
  variables: {REGION: eu-west-1}
  secrets: [{name: TOKEN, secretRef: {name: creds, key: token}}]
status: {namespace: dw-a}
---
metadata: {name: b}
spec: {members: [{user: bob, role: viewer}]}
status: {namespace: dw-b}
---
metadata: {name: c}
spec: {members: [{team: ops, role: admin}]}
status: {namespace: dw-c}
"#,
        )
    }

    fn projects() -> Vec<Project> {
        docs(
            r#"
metadata: {name: etl, namespace: dw-a}
spec: {runtime: Airflow, airflow: {}}
---
metadata: {name: other, namespace: dw-b}
spec: {runtime: Notebook, notebook: {}}
---
metadata: {name: hidden, namespace: dw-c}
spec: {runtime: Spark, spark: {}}
"#,
        )
    }

    #[rstest]
    #[case::member_by_team("alice@example.com", &[("a", Some(Role::Developer))], false, None)]
    #[case::email_in_any_case(" ALICE@example.COM ", &[("a", Some(Role::Developer))], false, None)]
    #[case::member_by_user("bob@example.com", &[("a", Some(Role::Admin)), ("b", Some(Role::Viewer))], false, None)]
    #[case::disabled_user_even_an_admin("dan@example.com", &[], false, Some("disabled"))]
    #[case::platform_admin("root@example.com", &[("a", None), ("b", None), ("c", None)], true, None)]
    #[case::stranger_with_a_user("zed@example.com", &[], false, Some("member of no workspace"))]
    #[case::nobody("nobody@example.com", &[], false, Some("No User has the e-mail address nobody@example.com"))]
    #[case::shared_address("twin@example.com", &[], false, Some("twin1, twin2 all have"))]
    fn who_sees_which_workspaces(
        #[case] email: &str,
        #[case] expected: &[(&str, Option<Role>)],
        #[case] platform_admin: bool,
        #[case] notice: Option<&str>,
    ) {
        let (users, workspaces) = (users(), workspaces());
        let person = console::identify(email, &users, &workspaces, &Config::default());
        let seen: Vec<(&str, Option<Role>)> =
            person.scope.workspaces.iter().map(|w| (w.name.as_str(), w.role)).collect();
        assert_eq!(seen, expected, "{email}: {:?}", person.scope.notices);
        assert_eq!(person.platform_admin, platform_admin);
        if let Some(notice) = notice {
            assert!(person.scope.notices.iter().any(|n| n.contains(notice)), "{:?}", person.scope.notices);
        }
        // The Runtime area shows the projects of exactly these workspaces.
        let rows = runtime::rows(&person.scope, &projects(), now());
        let mut namespaces: Vec<String> = rows.iter().map(|r| r.workspace.clone()).collect();
        namespaces.dedup();
        let names: Vec<&str> = expected.iter().map(|(w, _)| *w).collect();
        assert_eq!(namespaces, names, "{email}");
    }

    #[rstest]
    #[case::workspace_admin("bob@example.com", &["a"])]
    #[case::developer("alice@example.com", &[])]
    #[case::platform_admin("root@example.com", &["a", "b", "c"])]
    #[case::disabled("dan@example.com", &[])]
    fn the_admin_area_is_for_workspace_and_platform_admins(#[case] email: &str, #[case] expected: &[&str]) {
        let (users, workspaces) = (users(), workspaces());
        let person = console::identify(email, &users, &workspaces, &Config::default());
        let cards = console::admin(&person, &users, &workspaces, &projects(), &[], now(), &Config::default());
        let shown: Vec<&str> = cards.iter().map(|c| c.workspace.as_str()).collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn the_admin_area_resolves_members_teams_and_access_as_the_operator_binds() {
        let (users, workspaces) = (users(), workspaces());
        let person = console::identify("bob@example.com", &users, &workspaces, &Config::default());
        let card = console::admin(&person, &users, &workspaces, &projects(), &[], now(), &Config::default())
            .remove(0);
        type Shown<'a> = (Option<&'a str>, Option<&'a str>, Role, Vec<&'a str>);
        let members: Vec<Shown<'_>> = card
            .members
            .iter()
            .map(|m| {
                (m.user.as_deref(), m.team.as_deref(), m.role, m.people.iter().map(String::as_str).collect())
            })
            .collect();
        assert_eq!(
            members,
            [
                (None, Some("eng"), Role::Developer, vec!["alice"]),
                (Some("bob"), None, Role::Admin, vec!["bob"]),
                // Disabled: declared, but binds nobody.
                (Some("dan"), None, Role::Viewer, vec![]),
            ]
        );
        assert_eq!(card.studio_access, ["alice", "bob"], "developers and admins by default");
        assert_eq!(card.app_access[0].people, ["alice", "bob"]);
        assert_eq!(card.projects.get(&("Airflow".into(), "Unknown".into())), Some(&1));
    }

    #[test]
    fn the_studio_area_shows_variables_and_only_the_names_of_secrets() {
        let (users, workspaces) = (users(), workspaces());
        let person = console::identify("alice@example.com", &users, &workspaces, &Config::default());
        let cards = console::studio(&person.scope, &workspaces, &[], now());
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].variables, [("REGION".to_string(), "eu-west-1".to_string())]);
        assert_eq!(cards[0].secrets[0].name, "TOKEN");
        let json = serde_json::to_string(&cards).unwrap();
        assert!(!json.contains("creds") && !json.contains("token\""), "no Secret reference details: {json}");
    }

    #[rstest]
    #[case("https://etl.example.com/ui?x=1", Some("https://etl.example.com/ui?x=1"))]
    #[case("http://10.0.0.1:8080/", Some("http://10.0.0.1:8080/"))]
    #[case("javascript:alert(1)", None)]
    #[case("JavaScript:alert(1)", None)]
    #[case("data:text/html,<script>", None)]
    #[case("//evil.example.com/", None)]
    #[case("/relative", None)]
    #[case("file:///etc/passwd", None)]
    #[case("", None)]
    fn only_http_links_are_links(#[case] url: &str, #[case] expected: Option<&str>) {
        assert_eq!(console::safe_link(url).as_deref(), expected);
    }

    proptest::proptest! {
        /// Whatever the proxy passes as an e-mail address, identifying never panics and a link
        /// the console renders is http(s).
        #[test]
        fn any_address_and_link_is_handled(email in ".{0,60}", url in ".{0,60}") {
            let (users, workspaces) = (users(), workspaces());
            let _ = console::identify(&email, &users, &workspaces, &Config::default());
            if let Some(link) = console::safe_link(&url) {
                proptest::prop_assert!(link.starts_with("http://") || link.starts_with("https://"));
            }
        }
    }
}
