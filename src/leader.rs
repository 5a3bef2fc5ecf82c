//! Leader election over a `coordination.k8s.io/v1` Lease in the operator's namespace, so that
//! of several replicas only one reconciles.
//!
//! The algorithm is the one Kubernetes' own controllers use, on kube's primitives: a candidate
//! reads the Lease every [`RETRY_PERIOD`]; it takes the Lease when nobody holds it or when the
//! holder's record has not changed for the Lease's duration *as measured on the candidate's own
//! clock* (so clock skew between machines does not matter); every write carries the
//! `resourceVersion` it read, so of two candidates exactly one wins. The leader renews every
//! [`RENEW_PERIOD`] and gives up when it could not renew for [`RENEW_DEADLINE`], well before
//! anyone else may take over. On a graceful shutdown the leader empties the holder, so a standby
//! takes over at its next read instead of waiting for the Lease to expire.
//!
//! Costs: a leader writes once per [`RENEW_PERIOD`]; a standby reads once per [`RETRY_PERIOD`].

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use tracing::{info, warn};

use crate::names::{LABEL_MANAGED_BY, MANAGER};

/// How long a Lease stays held without renewal before another candidate may take it.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How long the leader keeps leading while renewals fail. Shorter than [`LEASE_DURATION`]: the
/// leader stops before a candidate can see the Lease expire.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a standby looks at the Lease.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The Lease's name and namespace, and who this process is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity, unique per process.
    pub identity: String,
}

/// The part of a Lease's record that changes when its holder renews or hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renewed: Option<Timestamp>,
    transitions: i32,
    duration: Duration,
}

impl Record {
    fn of(spec: Option<&LeaseSpec>) -> Self {
        let spec = spec.cloned().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renewed: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            // A duration outside 1 s..1 h is somebody else's mistake: fall back to ours.
            duration: spec
                .lease_duration_seconds
                .filter(|s| (1..=3600).contains(s))
                .map_or(LEASE_DURATION, |s| Duration::from_secs(s.unsigned_abs().into())),
        }
    }
}

/// What a candidate may do with a Lease it just read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody holds it, or its holder stopped renewing: take it.
    Free,
    /// We hold it: renew it.
    Ours,
    /// Someone else holds it and renewed within the Lease's duration.
    Held(String),
}

/// One candidate for the Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
    /// The record last read, and when (on our clock) it was first seen in that state.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    /// A candidate for the Lease of `settings`.
    pub fn new(client: Client, settings: Settings) -> Self {
        Self { api: Api::namespaced(client, &settings.namespace), settings, observed: None }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.settings.identity
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        let mut last_holder = None;
        loop {
            match self.attempt(RENEW_DEADLINE).await {
                Ok(Verdict::Free | Verdict::Ours) => {
                    info!(lease = %self.settings.name, identity = %self.settings.identity, "leading");
                    return;
                }
                Ok(Verdict::Held(holder)) => {
                    if last_holder.as_ref() != Some(&holder) {
                        info!(lease = %self.settings.name, %holder, "standing by: another replica leads");
                        last_holder = Some(holder);
                    }
                }
                Err(e) => {
                    warn!(lease = %self.settings.name, error = %e, "cannot read or take the leader Lease")
                }
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews the Lease until renewing fails for [`RENEW_DEADLINE`] or another candidate holds
    /// it; returns why leadership ended.
    pub async fn hold(&mut self) -> String {
        let mut last_renewed = Instant::now();
        let mut wait = RENEW_PERIOD;
        loop {
            tokio::time::sleep(wait).await;
            // A renewal that hangs (the API server unreachable, a connection stalled) is cut off
            // at the deadline: the kube client has no read timeout of its own.
            let left = RENEW_DEADLINE.saturating_sub(last_renewed.elapsed());
            match self.attempt(left).await {
                Ok(Verdict::Free | Verdict::Ours) => {
                    last_renewed = Instant::now();
                    wait = RENEW_PERIOD;
                }
                Ok(Verdict::Held(holder)) => return format!("the Lease is held by {holder}"),
                Err(e) => {
                    warn!(lease = %self.settings.name, error = %e, "cannot renew the leader Lease");
                    // Retry sooner while failing, and stop before the next retry would be late.
                    wait = RETRY_PERIOD;
                    if last_renewed.elapsed() + wait >= RENEW_DEADLINE {
                        return format!(
                            "the Lease could not be renewed for {}s: {e}",
                            RENEW_DEADLINE.as_secs()
                        );
                    }
                }
            }
        }
    }

    /// Hands the Lease over: empties the holder if it is still ours, so a standby takes it at
    /// its next look. Failures are logged: the Lease then expires by itself.
    pub async fn release(&mut self) {
        let lease = match self.api.get_opt(&self.settings.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                warn!(lease = %self.settings.name, error = %crate::error::describe(&e), "cannot release the leader Lease; it expires by itself");
                return;
            }
        };
        if Record::of(lease.spec.as_ref()).holder.as_deref() != Some(&self.settings.identity) {
            return;
        }
        let mut released = lease.clone();
        let spec = released.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.settings.name, &PostParams::default(), &released).await {
            Ok(_) => info!(lease = %self.settings.name, "released the leader Lease"),
            Err(e) => {
                warn!(lease = %self.settings.name, error = %crate::error::describe(&e), "cannot release the leader Lease; it expires by itself")
            }
        }
    }

    /// One [`Self::try_acquire_or_renew`], given at most `limit`.
    async fn attempt(&mut self, limit: Duration) -> Result<Verdict, String> {
        tokio::time::timeout(limit, self.try_acquire_or_renew())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", limit.as_millis())))
    }

    /// Reads the Lease and takes or renews it when [`judge`] allows; the write carries the
    /// `resourceVersion` read, so a concurrent candidate's write makes ours fail (409) and we
    /// report the Lease as held.
    async fn try_acquire_or_renew(&mut self) -> Result<Verdict, String> {
        let describe = |e: kube::Error| crate::error::describe(&e);
        let Some(lease) = self.api.get_opt(&self.settings.name).await.map_err(describe)? else {
            let lease = self.desired(None, Timestamp::now());
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Verdict::Ours),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Verdict::Held("another candidate".into())),
                Err(e) => Err(describe(e)),
            };
        };
        let record = Record::of(lease.spec.as_ref());
        let now = Instant::now();
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record.clone(), now)),
        }
        let seen_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let verdict = judge(&record, &self.settings.identity, seen_at, now);
        if let Verdict::Held(_) = verdict {
            return Ok(verdict);
        }
        let desired = self.desired(Some(&lease), Timestamp::now());
        match self.api.replace(&self.settings.name, &PostParams::default(), &desired).await {
            Ok(written) => {
                self.observed = Some((Record::of(written.spec.as_ref()), Instant::now()));
                Ok(verdict)
            }
            // Someone wrote the Lease since we read it: read it again (at once while leading,
            // where this counts against the renew deadline) rather than guess who holds it.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err("the Lease changed while it was being written (conflict)".into())
            }
            Err(e) => Err(describe(e)),
        }
    }

    /// The Lease held by us: renewed now, its acquire time and transitions kept while we hold
    /// it, and the `resourceVersion` read for the optimistic write.
    fn desired(&self, current: Option<&Lease>, now: Timestamp) -> Lease {
        let spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(&self.settings.identity);
        let mut labels = current.and_then(|l| l.metadata.labels.clone()).unwrap_or_default();
        labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(labels),
                // A replace writes the whole object: keep what others annotated.
                annotations: current.and_then(|l| l.metadata.annotations.clone()),
                resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                acquire_time: if ours { spec.acquire_time } else { Some(MicroTime(now)) },
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(
                    spec.lease_transitions.unwrap_or(0) + i32::from(current.is_some() && !ours),
                ),
                ..LeaseSpec::default()
            }),
        }
    }
}

/// Who may hold a Lease whose record `record` was first seen at `seen_at`: ours if we hold it,
/// free if nobody does or its holder's record did not change for the Lease's duration on our
/// clock, else held.
fn judge(record: &Record, identity: &str, seen_at: Instant, now: Instant) -> Verdict {
    match &record.holder {
        None => Verdict::Free,
        Some(holder) if holder == identity => Verdict::Ours,
        Some(_) if now.duration_since(seen_at) >= record.duration => Verdict::Free,
        Some(holder) => Verdict::Held(holder.clone()),
    }
}

/// A process identity for the Lease: the pod name (or host name) and a random suffix, so two
/// processes on one host never share it.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dataworkspace-operator".into());
    let mut suffix = [0u8; 4];
    // A failing system RNG leaves the suffix zero; the host name still tells processes apart.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}_{suffix}")
}

/// The namespace the operator runs in: `POD_NAMESPACE`, else the ServiceAccount's mounted
/// namespace.
pub fn own_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, duration: u64) -> Record {
        Record {
            holder: holder.map(str::to_string),
            renewed: None,
            transitions: 0,
            duration: Duration::from_secs(duration),
        }
    }

    #[test]
    fn a_lease_is_free_when_unheld_or_unrenewed_for_its_duration_on_our_clock() {
        let seen = Instant::now();
        let later = |s| seen + Duration::from_secs(s);
        assert_eq!(judge(&record(None, 15), "me", seen, seen), Verdict::Free);
        assert_eq!(judge(&record(Some("me"), 15), "me", seen, later(100)), Verdict::Ours);
        assert_eq!(judge(&record(Some("other"), 15), "me", seen, later(14)), Verdict::Held("other".into()));
        assert_eq!(judge(&record(Some("other"), 15), "me", seen, later(15)), Verdict::Free);
        // A released Lease (duration 1 s) is free at once when its holder is empty.
        assert_eq!(judge(&record(None, 1), "me", seen, seen), Verdict::Free);
    }

    #[test]
    fn records_take_only_sane_durations_and_treat_an_empty_holder_as_none() {
        let spec = |holder: &str, seconds| LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        };
        assert_eq!(Record::of(Some(&spec("", 15))).holder, None);
        assert_eq!(Record::of(Some(&spec("a", 20))).duration, Duration::from_secs(20));
        for wrong in [0, -5, 86_400] {
            assert_eq!(Record::of(Some(&spec("a", wrong))).duration, LEASE_DURATION, "{wrong}");
        }
        assert_eq!(Record::of(None), record(None, LEASE_DURATION.as_secs()));
    }

    #[test]
    fn the_leader_gives_up_before_anyone_may_take_over() {
        const { assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs()) };
        const { assert!(RENEW_PERIOD.as_secs() < RENEW_DEADLINE.as_secs()) };
    }

    #[test]
    fn identities_differ_per_process_call() {
        assert_ne!(identity(), identity());
    }
}
