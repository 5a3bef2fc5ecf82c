//! Status conditions shared by every kind, following the Kubernetes API conventions:
//! `lastTransitionTime` moves only when `status` flips, conditions other writers own are kept,
//! and a status that differs from the stored one only in timestamps is not written.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::error::{MAX_MESSAGE_BYTES, bounded};

/// The summary condition every kind carries.
pub const READY: &str = "Ready";

/// A condition as a reconcile pass wants it; times are filled in by [`merge`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, PascalCase.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// Bounded PascalCase reason (see [`crate::error::Error::reason`]).
    pub reason: &'static str,
    /// Human-readable detail. Never includes Secret values.
    pub message: String,
}

impl Desired {
    /// A condition with status `True`.
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_, status: true, reason, message: message.into() }
    }

    /// A condition with status `False`.
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_, status: false, reason, message: message.into() }
    }

    fn status_str(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }
}

/// Returns `current` with every condition in `desired` set: existing entries are updated in place
/// (keeping `lastTransitionTime` unless `status` flips), new ones appended with `now`, and
/// conditions of other types — other writers' — left untouched. Messages are cut to
/// [`MAX_MESSAGE_BYTES`] at a character boundary: a list of missing Secrets or an API server's
/// answer can be long, and status is read by people.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut merged = current.to_vec();
    for want in desired {
        let status = want.status_str();
        let existing = merged.iter_mut().find(|c| c.type_ == want.type_);
        let last_transition_time = match &existing {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.clone(),
        };
        let condition = Condition {
            type_: want.type_.to_string(),
            status: status.to_string(),
            reason: want.reason.to_string(),
            message: bounded(&want.message, MAX_MESSAGE_BYTES),
            observed_generation: generation,
            last_transition_time,
        };
        match existing {
            Some(slot) => *slot = condition,
            None => merged.push(condition),
        }
    }
    merged
}

/// The conditions of `merged` this writer applies: those of the types it owns (`types`) that it
/// wants now (`desired`), and with `keep_owned` — a failed pass, which sets only `Ready` — also
/// the owned ones already stored. Server-side apply keeps the conditions other managers own and
/// removes the owned ones left out, so a condition this writer stops wanting goes away instead
/// of being applied again on every pass.
pub fn applied(
    merged: &[Condition],
    desired: &[Desired],
    types: &[&str],
    keep_owned: bool,
) -> Vec<Condition> {
    merged
        .iter()
        .filter(|c| types.contains(&c.type_.as_str()))
        .filter(|c| keep_owned || desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect()
}

/// The conditions stored once `applied` is applied: other writers' as they are, of the owned
/// types only those applied. This is what a write is compared against, so a stale owned
/// condition is removed once, and then nothing is written.
pub fn stored(merged: &[Condition], applied: &[Condition], types: &[&str]) -> Vec<Condition> {
    merged
        .iter()
        .filter(|c| !types.contains(&c.type_.as_str()) || applied.iter().any(|a| a.type_ == c.type_))
        .cloned()
        .collect()
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `Ready=False` reasons of an object on its way up (its pods or proxies starting, a database
/// it waits for, a build running): expected after a create or a change, not a fault.
pub const PROGRESS_REASONS: &[&str] =
    &["Starting", "ProxyStarting", "WaitingForDatabase", "Migrating", "WaitingForMigration", "Building"];

/// Whether an Event is due for a change of `Ready` from `before` to `after`, and of which kind.
/// Events announce transitions: `Ready=True` is Normal; `Ready=False` is a Warning, unless its
/// reason is progress ([`PROGRESS_REASONS`]), which is Normal — and an object's first `Ready`
/// that is only progress is no news at all (its creation is): no Event, so a new object costs
/// one Event when it comes up, not two. (A pod that never starts leaves the object in its progress
/// state: the reason is in the Events of its StatefulSet or Deployment and pods.)
pub fn transition_event(before: Option<&Condition>, after: &Condition) -> Option<EventKind> {
    if before.is_some_and(|b| b.status == after.status && b.reason == after.reason) {
        return None;
    }
    let progress = after.status != "True" && PROGRESS_REASONS.contains(&after.reason.as_str());
    match (after.status == "True", progress, before) {
        (true, _, _) => Some(EventKind::Normal),
        (false, true, None) => None,
        (false, true, Some(_)) => Some(EventKind::Normal),
        (false, false, _) => Some(EventKind::Warning),
    }
}

/// The type of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &str, reason: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: time("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn events_announce_transitions_and_a_first_start_is_no_news() {
        use EventKind::{Normal, Warning};
        let starting = ready("False", "Starting");
        let up = ready("True", "Ready");
        let broken = ready("False", "PodsRejected");
        assert_eq!(
            transition_event(None, &starting),
            None,
            "a new object starting: its creation is the news"
        );
        assert_eq!(transition_event(None, &up), Some(Normal));
        assert_eq!(transition_event(None, &broken), Some(Warning), "a first failure is announced");
        assert_eq!(transition_event(Some(&starting), &up), Some(Normal));
        assert_eq!(transition_event(Some(&up), &up), None, "no change, no Event");
        assert_eq!(transition_event(Some(&up), &starting), Some(Normal), "a restart after a change");
        assert_eq!(transition_event(Some(&up), &broken), Some(Warning));
        assert_eq!(transition_event(Some(&broken), &starting), Some(Normal));
        assert_eq!(transition_event(Some(&starting), &ready("False", "WaitingForDatabase")), Some(Normal));
        assert_eq!(transition_event(Some(&starting), &starting), None);
        // An Airflow upgrade migrates its database: progress, not a fault.
        assert_eq!(transition_event(Some(&up), &ready("False", "Migrating")), Some(Normal));
    }

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn ready_false(reason: &'static str) -> Desired {
        Desired::no(READY, reason, "waiting")
    }

    #[test]
    fn new_condition_gets_now() {
        let now = time("2026-01-01T00:00:00Z");
        let merged = merge(&[], &[ready_false("Pending")], Some(3), &now);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, "False");
        assert_eq!(merged[0].observed_generation, Some(3));
        assert_eq!(merged[0].last_transition_time, now);
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-02T00:00:00Z");
        let first = merge(&[], &[ready_false("Pending")], Some(1), &t0);
        // Reason and message change, status does not: the time stays.
        let second = merge(&first, &[Desired::no(READY, "Other", "changed")], Some(2), &t1);
        assert_eq!(second[0].last_transition_time, t0);
        assert_eq!(second[0].reason, "Other");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-02T00:00:00Z");
        let first = merge(&[], &[ready_false("Pending")], Some(1), &t0);
        let second = merge(&first, &[Desired::yes(READY, "Ready", "ok")], Some(1), &t1);
        assert_eq!(second[0].status, "True");
        assert_eq!(second[0].last_transition_time, t1);
    }

    #[test]
    fn foreign_conditions_are_kept_and_not_owned() {
        let t0 = time("2026-01-01T00:00:00Z");
        let foreign = Condition {
            type_: "example.com/Audited".into(),
            status: "True".into(),
            reason: "Audited".into(),
            message: "by someone else".into(),
            observed_generation: Some(1),
            last_transition_time: t0.clone(),
        };
        let desired = [ready_false("Pending")];
        let merged = merge(std::slice::from_ref(&foreign), &desired, Some(1), &t0);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0], foreign);
        let ours = applied(&merged, &desired, &[READY], false);
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].type_, READY);
        assert_eq!(stored(&merged, &ours, &[READY]), merged);
    }

    #[test]
    fn owned_conditions_no_longer_wanted_are_dropped_unless_a_failure_keeps_them() {
        let t0 = time("2026-01-01T00:00:00Z");
        let types = [READY, "Migrated", "Studio"];
        let foreign = Desired::yes("example.com/Audited", "Audited", "by someone else");
        let before = merge(
            &[],
            &[Desired::yes(READY, "Ready", "ok"), Desired::yes("Migrated", "Done", "ok"), foreign],
            Some(1),
            &t0,
        );
        // A successful pass that no longer wants `Migrated`: applied without it, and the stored
        // result (what the next pass compares with) has it removed, the foreign one kept.
        let desired = [Desired::yes(READY, "Ready", "ok")];
        let merged = merge(&before, &desired, Some(1), &t0);
        let ours = applied(&merged, &desired, &types, false);
        assert_eq!(ours.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY]);
        let after = stored(&merged, &ours, &types);
        assert_eq!(
            after.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [READY, "example.com/Audited"]
        );
        // The next pass, from what was stored, changes nothing: no write.
        let again = merge(&after, &desired, Some(1), &t0);
        assert_eq!(stored(&again, &applied(&again, &desired, &types, false), &types), after);
        // A failed pass sets only Ready and keeps the owned conditions as stored.
        let failure = [ready_false("ApplyFailed")];
        let merged = merge(&before, &failure, Some(1), &t0);
        let ours = applied(&merged, &failure, &types, true);
        assert_eq!(ours.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [READY, "Migrated"]);
        assert_eq!(stored(&merged, &ours, &types).len(), 3);
    }

    #[test]
    fn messages_are_bounded_at_a_character_boundary() {
        let now = time("2026-01-01T00:00:00Z");
        let long = Desired::no("Config", "MissingSecret", format!("Secrets not found: {}", "é".repeat(1000)));
        let merged = merge(&[], std::slice::from_ref(&long), Some(1), &now);
        let message = &merged[0].message;
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.len() > MAX_MESSAGE_BYTES - 8, "cut much shorter than needed: {}", message.len());
        assert!(message.starts_with("Secrets not found: é") && message.ends_with('…'));
        // The cut is stable: the same long message on the next pass compares equal (no write).
        assert_eq!(merge(&merged, &[long], Some(1), &now), merged);
        // Short messages are kept as they are.
        let short = merge(&[], &[Desired::yes(READY, "Ready", "ok")], Some(1), &now);
        assert_eq!(short[0].message, "ok");
    }

    #[test]
    fn unchanged_pass_is_a_no_op_whatever_the_clock() {
        let t0 = time("2026-01-01T00:00:00Z");
        let later = time("2026-06-01T00:00:00Z");
        let desired = [ready_false("Pending"), Desired::yes("Config", "Valid", "ok")];
        let first = merge(&[], &desired, Some(4), &t0);
        let again = merge(&first, &desired, Some(4), &later);
        assert_eq!(first, again, "a pass that changes nothing but the clock must compare equal");
    }

    #[test]
    fn new_generation_is_a_change() {
        let t0 = time("2026-01-01T00:00:00Z");
        let desired = [ready_false("Pending")];
        let first = merge(&[], &desired, Some(4), &t0);
        let next = merge(&first, &desired, Some(5), &t0);
        assert_ne!(first, next);
    }
}
