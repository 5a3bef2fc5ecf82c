//! `usage`: each covered workspace's use of its quota, as the operator reports it from the
//! workspace's ResourceQuota (`Workspace.status.usage`).

use serde::Serialize;

use super::scope::Scope;
use crate::crd::Workspace;

/// One quota resource of one workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// The Workspace.
    pub workspace: String,
    /// Its namespace.
    pub namespace: String,
    /// The quota resource, for example `requests.cpu` or `pods`.
    pub resource: String,
    /// What is used, as the quota reports it; none before it has been counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<String>,
    /// The quota.
    pub hard: String,
    /// Used as a whole percentage of the quota, when both are quantities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u64>,
}

/// The rows of the usage view, by workspace and resource. Resources whose quota is zero are
/// bans (no LoadBalancer Services, for example), not budgets, and are left out.
pub fn rows(scope: &Scope<'_>, workspaces: &[Workspace]) -> Vec<UsageRow> {
    let mut rows = Vec::new();
    for covered in &scope.workspaces {
        let Some(workspace) = workspaces.iter().find(|w| w.metadata.name.as_deref() == Some(&covered.name))
        else {
            continue;
        };
        let usage = workspace.status.iter().flat_map(|s| &s.usage);
        for (resource, usage) in usage {
            let hard = quantity(&usage.hard.0);
            if hard == Some(0.0) {
                continue;
            }
            let used = usage.used.as_ref().map(|u| u.0.clone());
            let percent = match (used.as_deref().and_then(quantity), hard) {
                (Some(used), Some(hard)) if hard > 0.0 => Some((used / hard * 100.0).round() as u64),
                _ => None,
            };
            rows.push(UsageRow {
                workspace: covered.name.clone(),
                namespace: covered.namespace.clone(),
                resource: resource.clone(),
                used,
                hard: usage.hard.0.clone(),
                percent,
            });
        }
    }
    rows
}

/// A Kubernetes quantity (`500m`, `2`, `1.5Gi`, `10G`, `1e3`) as a number; none when it is not
/// one. Precise enough for a percentage.
pub fn quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split =
        text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(number * factor).filter(|n| n.is_finite())
}
