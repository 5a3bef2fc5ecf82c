//! Approving or rejecting a PythonEnvironment: the one write an admin would make by hand
//! (`spec.approval` or `spec.rejection`, naming themselves and the spec hash the operator
//! reported), as a merge patch. The API server's admission policy decides whether the caller
//! may; nothing here second-guesses it.

use kube::ResourceExt;
use serde::Serialize;

use crate::crd::{
    PythonEnvironment,
    python_environment::{Approval, Rejection},
};

/// Most characters a reason or comment may have (the CRD's bound).
pub const TEXT_LIMIT: usize = 1024;

/// Why no decision can be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// A reason or comment the API server would refuse, or a person could be misled by.
    #[error("{field} {problem}")]
    InvalidText {
        /// `--reason` or `--comment`.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// The operator has not yet hashed the current spec: an approval now could name an older
    /// one.
    #[error(
        "the operator has not reported the spec hash of pythonenvironment {name}'s current spec yet (generation {generation}, status of {observed}); wait a moment and retry"
    )]
    NotObserved {
        /// The environment.
        name: String,
        /// Its current generation.
        generation: i64,
        /// The generation its status describes.
        observed: String,
    },
    /// What the environment installs now is not what the approver reviewed: it changed in
    /// between (or the wrong hash was given). Nothing is approved.
    #[error(
        "pythonenvironment {name} now installs a spec with hash {current}, not the {reviewed} you reviewed: review it again (kubectl dataworkspace envs -o wide) and approve that hash"
    )]
    NotReviewed {
        /// The environment.
        name: String,
        /// The hash the approver named.
        reviewed: String,
        /// The hash of its current spec.
        current: String,
    },
    /// A reviewed hash that cannot name a spec.
    #[error("--spec-hash must be the spec hash shown by `envs -o wide`: at least 12 hexadecimal digits")]
    InvalidHash,
}

/// Fewest leading digits of a spec hash an approver may give.
pub const HASH_PREFIX_MIN: usize = 12;

/// A checked reason or comment: trimmed, at most [`TEXT_LIMIT`] characters, no control
/// characters (no line breaks or escape sequences that would rewrite a terminal showing it).
pub fn checked_text(field: &'static str, text: &str) -> Result<String, DecisionError> {
    let invalid = |problem| DecisionError::InvalidText { field, problem };
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if text.chars().count() > TEXT_LIMIT {
        return Err(invalid("must be at most 1024 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters (line breaks, tabs, escapes)"));
    }
    Ok(text.to_string())
}

/// The merge patch of a decision. Exactly one of approval and rejection is set, the other
/// removed: an approval under an older rejection of the same spec would not count (a rejection
/// wins), and a rejection leaves no approval behind. The resourceVersion makes the write fail
/// if the environment changed since it was read, so the hash approved is the hash seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionPatch {
    /// The precondition.
    pub metadata: PatchMetadata,
    /// The decision.
    pub spec: DecisionSpec,
}

/// The precondition of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchMetadata {
    /// The version read.
    pub resource_version: Option<String>,
}

/// The decision fields; `None` is written as `null`, which removes the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecisionSpec {
    /// The approval.
    pub approval: Option<Approval>,
    /// The rejection.
    pub rejection: Option<Rejection>,
}

/// `approver` approves the environment's current spec, which must be the one they reviewed:
/// `reviewed` is its hash (or at least its first [`HASH_PREFIX_MIN`] digits), as `envs -o wide`
/// showed it. A developer who changes what is installed between the review and the approval
/// changes the hash, and nothing is approved.
pub fn approve(
    env: &PythonEnvironment,
    approver: &str,
    reviewed: &str,
    comment: Option<&str>,
) -> Result<DecisionPatch, DecisionError> {
    let comment = comment.map(|c| checked_text("--comment", c)).transpose()?;
    let reviewed = reviewed.trim().to_ascii_lowercase();
    if reviewed.len() < HASH_PREFIX_MIN
        || reviewed.len() > 64
        || !reviewed.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(DecisionError::InvalidHash);
    }
    let spec_hash = current_hash(env)?;
    if !spec_hash.starts_with(&reviewed) {
        return Err(DecisionError::NotReviewed { name: env.name_any(), reviewed, current: spec_hash });
    }
    Ok(patch(env, Some(Approval { approved_by: approver.into(), spec_hash, comment }), None))
}

/// `rejecter` rejects the environment's current spec, saying why.
pub fn reject(env: &PythonEnvironment, rejecter: &str, reason: &str) -> Result<DecisionPatch, DecisionError> {
    let reason = checked_text("--reason", reason)?;
    let spec_hash = current_hash(env)?;
    Ok(patch(env, None, Some(Rejection { rejected_by: rejecter.into(), spec_hash, reason })))
}

fn patch(env: &PythonEnvironment, approval: Option<Approval>, rejection: Option<Rejection>) -> DecisionPatch {
    DecisionPatch {
        metadata: PatchMetadata { resource_version: env.resource_version() },
        spec: DecisionSpec { approval, rejection },
    }
}

/// The hash of the current spec, once the operator reported it for the current generation.
fn current_hash(env: &PythonEnvironment) -> Result<String, DecisionError> {
    let status = env.status.as_ref();
    let observed = status.and_then(|s| s.observed_generation);
    match status.and_then(|s| s.spec_hash.clone()) {
        Some(hash) if observed.is_some() && observed == env.metadata.generation => Ok(hash),
        _ => Err(DecisionError::NotObserved {
            name: env.name_any(),
            generation: env.metadata.generation.unwrap_or_default(),
            observed: observed.map_or("none".into(), |g| format!("generation {g}")),
        }),
    }
}
