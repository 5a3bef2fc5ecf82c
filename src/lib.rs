//! Data Workspace Operator: Workspaces, Users, PythonEnvironments and Projects on Kubernetes.
//!
//! `crd` holds the types, `controller` the reconcilers, `view` what the kubectl plugin and the
//! web console show, `signature` how the console knows a request came through its proxy, and
//! the rest the parts they share.

pub mod build;
pub mod conditions;
pub mod config;
pub mod controller;
pub mod crd;
pub mod error;
#[cfg(test)]
pub mod fixtures;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod runtime;
pub mod server;
pub mod signature;
pub mod telemetry;
pub mod throttle;
pub mod view;
