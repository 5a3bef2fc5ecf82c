//! End-to-end tests against a real control plane (see `hack/cluster.sh`). One operator process
//! runs for the whole suite; each test gets its own namespace and unique cluster-scoped names.

mod access;
mod airflow;
mod cluster;
mod console;
mod environments;
mod faults;
mod harness;
mod install;
mod manifests;
mod notebook;
mod operator;
mod plugin;
mod spark;
mod streamlit;
mod tenancy;
mod workspaces;

use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
};

use futures::future::BoxFuture;
use harness::{Env, TestResult};
use libtest_mimic::{Arguments, Failed, Trial};

/// What one test gets: the shared environment and a record of the namespaces it made.
#[derive(Clone)]
pub struct Scope {
    /// The shared environment.
    pub env: Arc<Env>,
    namespaces: Arc<Mutex<Vec<String>>>,
}

impl Scope {
    /// A fresh namespace, removed after the test and included in its dump on failure.
    pub async fn namespace(&self, prefix: &str) -> Result<String, String> {
        let name = self.env.namespace(prefix).await?;
        self.namespaces.lock().unwrap().push(name.clone());
        Ok(name)
    }

    /// Records a namespace the test did not create but should be dumped on failure.
    pub fn involve(&self, namespace: &str) {
        self.namespaces.lock().unwrap().push(namespace.to_string());
    }
}

type TestFn = fn(Scope) -> BoxFuture<'static, TestResult>;

macro_rules! tests {
    ($($module:ident :: $test:ident),* $(,)?) => {
        vec![$((concat!(stringify!($module), "::", stringify!($test)), (|scope| Box::pin($module::$test(scope))) as TestFn)),*]
    };
}

fn all_tests() -> Vec<(&'static str, TestFn)> {
    tests![
        cluster::nodes_are_ready,
        cluster::deployment_becomes_ready,
        cluster::job_completes,
        cluster::deleting_an_owner_collects_its_dependents,
        cluster::strangers_cannot_create_pods,
        cluster::restricted_namespace_rejects_privileged_pods,
        manifests::crds_are_established,
        // First: nothing else has touched what the harness applied from deploy/.
        install::gitops_rendering_shows_no_diff,
        manifests::examples_apply,
        manifests::invalid_examples_are_rejected_with_their_message,
        operator::sets_status_on_every_kind,
        operator::status_follows_a_new_generation,
        operator::serves_metrics_and_health,
        workspaces::example_workspace_is_provisioned,
        workspaces::permissions_follow_membership,
        workspaces::missing_secret_is_reported_until_created,
        workspaces::deletion_policies_keep_or_remove_data,
        access::the_studio_is_exposed_only_through_its_proxies,
        notebook::example_notebook_runs,
        notebook::notebook_stops_restarts_and_deletes_cleanly,
        notebook::a_project_cannot_take_over_another_owners_objects,
        environments::approval_is_enforced_and_a_build_reaches_the_project,
        streamlit::an_app_runs_stops_and_is_deleted_cleanly,
        spark::connect_and_batch_run_fail_rerun_stop_and_delete,
        airflow::example_airflow_runs_and_keeps_its_keys,
        airflow::airflow_stops_rolls_migrates_and_deletes,
        tenancy::existing_namespaces_are_never_taken_over,
        tenancy::namespace_cannot_be_added_or_removed,
        tenancy::retained_namespaces_are_not_inherited,
        tenancy::workspace_admins_manage_members_within_bounds,
        tenancy::reserved_and_duplicate_usernames_bind_nobody,
        tenancy::operator_identity_is_fenced_in,
        tenancy::permissions_match_the_committed_table,
        tenancy::team_groups_and_foreign_bindings_follow_the_flags,
        install::helm_installs_and_upgrades_cleanly,
        install::least_privilege_identity_converges_the_examples,
        install::one_replica_leads_and_another_takes_over,
        plugin::runtime_lists_pinned_then_recent_with_live_phases,
        plugin::approve_and_reject_go_through_admission,
        console::each_person_sees_exactly_their_workspaces,
        console::a_browser_signs_in_through_the_proxy_and_sees_each_area,
        faults::killed_at_random_it_converges_without_orphans_or_new_keys,
        faults::api_server_and_etcd_restarts_are_survived,
        // Last: it restarts the operator and checks that nothing is written for all of the above.
        operator::survives_a_restart_without_writing,
        // After everything: what the suite left behind holds no Secret value outside its Secret.
        faults::no_secret_value_appears_outside_its_secret,
    ]
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One at a time: tests restart the shared operator and read its write counters.
    args.test_threads = Some(1);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let runtime = Arc::new(runtime);

    // Listing tests needs no cluster.
    if args.list {
        let trials = all_tests().into_iter().map(|(name, _)| Trial::test(name, || Ok(()))).collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }

    let env = match runtime.block_on(Env::setup()) {
        Ok(env) => env,
        // A local, explicit opt-out: every test is reported as ignored, loudly. CI never skips.
        Err(message) if std::env::var_os("DWO_E2E_SKIP").is_some() && std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: all e2e tests (DWO_E2E_SKIP is set): {message}");
            let trials = all_tests()
                .into_iter()
                .map(|(name, _)| Trial::test(name, || Ok(())).with_ignored_flag(true))
                .collect();
            return libtest_mimic::run(&args, trials).exit_code();
        }
        Err(message) => {
            eprintln!("e2e setup failed: {message}");
            return ExitCode::FAILURE;
        }
    };

    let trials = all_tests()
        .into_iter()
        .map(|(name, test)| {
            let env = env.clone();
            let runtime = runtime.clone();
            Trial::test(name, move || {
                let scope = Scope { env: env.clone(), namespaces: Arc::default() };
                let result = runtime.block_on(test(scope.clone()));
                let namespaces = scope.namespaces.lock().unwrap().clone();
                let outcome = result
                    .map_err(|message| Failed::from(format!("{message}\n{}", env.dump(name, &namespaces))));
                runtime.block_on(async {
                    for ns in namespaces.iter().filter(|ns| ns.starts_with("e2e-")) {
                        env.drop_namespace(ns).await;
                    }
                });
                outcome
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Err(message) = env.stop_operator() {
        eprintln!("stopping the operator: {message}");
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}
