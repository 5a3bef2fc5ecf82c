//! The children a runtime builds, as one ordered, typed set. The variant decides how the apply
//! layer treats a child: applied and kept in line with the spec, or created once and never
//! rewritten (generated keys, immutable Jobs named by what they run).

use std::hash::Hasher;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::{CronJob, Job},
        core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::RoleBinding,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::Serialize;

/// A Secret whose values the apply layer generates once (random, URL-safe) when it does not
/// exist, and never rewrites: reconciles and restarts keep the keys.
///
/// Without an owner reference it is kept when its owner goes (it outlives it with the data it
/// decrypts); the next owner of the same name and labels takes it back, and the apply layer
/// keeps its owner references in line with the built ones.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedSecret {
    /// Name, namespace, labels, owner.
    pub metadata: ObjectMeta,
    /// The keys to generate, each with its encoding.
    pub keys: Vec<(String, Encoding)>,
    /// Random bytes per value.
    pub bytes: usize,
    /// For a Secret kept without an owner reference: the UID of the owner that keeps it (a
    /// live copy still owned by that owner, before its policy changed, is its own).
    pub keeper: Option<String>,
}

/// How a generated value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Encoding {
    /// Hexadecimal (twice as many characters as bytes).
    Hex,
    /// A Fernet key: exactly 32 bytes, URL-safe base64 with padding (44 characters).
    Fernet,
}

impl Encoding {
    /// A fresh random value: `bytes` random bytes (at least 16; a Fernet key is always 32) from
    /// the system's generator, encoded. `None` when the generator fails.
    pub fn generate(self, bytes: usize) -> Option<String> {
        use ring::rand::SecureRandom;
        let size = match self {
            Encoding::Hex => bytes.max(16),
            Encoding::Fernet => 32,
        };
        let mut random = vec![0u8; size];
        ring::rand::SystemRandom::new().fill(&mut random).ok()?;
        Some(match self {
            Encoding::Hex => random.iter().map(|b| format!("{b:02x}")).collect(),
            Encoding::Fernet => {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE.encode(&random)
            }
        })
    }
}

/// One child, in apply order: the set lists them as they must be applied (identities and
/// configuration before the workloads that use them).
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    /// Applied.
    ServiceAccount(ServiceAccount),
    /// Applied: binds a platform ClusterRole to one of the project's ServiceAccounts.
    RoleBinding(RoleBinding),
    /// Applied.
    ConfigMap(ConfigMap),
    /// Created once.
    GeneratedSecret(GeneratedSecret),
    /// Applied.
    Service(Service),
    /// Applied.
    NetworkPolicy(NetworkPolicy),
    /// Created once: a claim's spec is mostly immutable, and the volume holds data.
    Volume(PersistentVolumeClaim),
    /// Applied.
    StatefulSet(StatefulSet),
    /// Applied.
    Deployment(Deployment),
    /// Created once: a Job's spec is immutable, so a Job is named by a hash of what it runs
    /// ([`hashed_name`]) or by a run number, and a change makes a new Job. Only `suspend`
    /// follows the built Job.
    Job(Job),
    /// Applied: a schedule of Jobs (their Jobs are the CronJob's).
    CronJob(Box<CronJob>),
}

impl Child {
    /// Its metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Child::ServiceAccount(o) => &o.metadata,
            Child::RoleBinding(o) => &o.metadata,
            Child::ConfigMap(o) => &o.metadata,
            Child::GeneratedSecret(o) => &o.metadata,
            Child::Service(o) => &o.metadata,
            Child::NetworkPolicy(o) => &o.metadata,
            Child::Volume(o) => &o.metadata,
            Child::StatefulSet(o) => &o.metadata,
            Child::Deployment(o) => &o.metadata,
            Child::Job(o) => &o.metadata,
            Child::CronJob(o) => &o.metadata,
        }
    }

    /// Kind and name, for sweeping and messages.
    pub fn key(&self) -> (&'static str, String) {
        let name = |m: &ObjectMeta| m.name.clone().unwrap_or_default();
        match self {
            Child::ServiceAccount(o) => ("ServiceAccount", name(&o.metadata)),
            Child::RoleBinding(o) => ("RoleBinding", name(&o.metadata)),
            Child::ConfigMap(o) => ("ConfigMap", name(&o.metadata)),
            Child::GeneratedSecret(o) => ("Secret", name(&o.metadata)),
            Child::Service(o) => ("Service", name(&o.metadata)),
            Child::NetworkPolicy(o) => ("NetworkPolicy", name(&o.metadata)),
            Child::Volume(o) => ("PersistentVolumeClaim", name(&o.metadata)),
            Child::StatefulSet(o) => ("StatefulSet", name(&o.metadata)),
            Child::Deployment(o) => ("Deployment", name(&o.metadata)),
            Child::Job(o) => ("Job", name(&o.metadata)),
            Child::CronJob(o) => ("CronJob", name(&o.metadata)),
        }
    }
}

/// `<base>-<10 hex digits of a stable hash of spec>`: a name that changes exactly when what it
/// names changes. `base` must leave room for 11 characters.
pub fn hashed_name<T: Serialize>(base: &str, spec: &T) -> String {
    let text = serde_json::to_string(spec).unwrap_or_default();
    format!("{base}-{:010x}", fnv1a(text.as_bytes()) & 0xff_ffff_ffff)
}

/// FNV-1a, 64 bits: stable across Rust releases and platforms, unlike the standard hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    hasher.write(bytes);
    hasher.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Golden snapshots of built children, one per child, named `<prefix><kind>-<name>` (a macro,
/// so that the snapshots live beside the runtime that calls it).
#[cfg(test)]
macro_rules! assert_snapshots {
    ($prefix:expr, $children:expr) => {
        for child in $children {
            let (kind, name) = child.key();
            let snapshot = format!("{}{kind}-{name}", $prefix);
            match child {
                Child::ServiceAccount(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::RoleBinding(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::ConfigMap(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::GeneratedSecret(o) => insta::assert_yaml_snapshot!(snapshot, (o.metadata, o.keys)),
                Child::Service(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::NetworkPolicy(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::StatefulSet(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::Job(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::CronJob(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::Volume(o) => insta::assert_yaml_snapshot!(snapshot, o),
                Child::Deployment(o) => insta::assert_yaml_snapshot!(snapshot, o),
            }
        }
    };
}
#[cfg(test)]
pub(crate) use assert_snapshots;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_stable_and_follow_the_spec() {
        assert_eq!(
            hashed_name("migrate", &"airflow db migrate"),
            hashed_name("migrate", &"airflow db migrate")
        );
        assert_ne!(hashed_name("migrate", &[1, 2]), hashed_name("migrate", &[1, 3]));
        // A golden value: the name must not change between builds or toolchains.
        // Computed independently: FNV-1a 64 of the JSON text `"x"`, low 40 bits.
        assert_eq!(hashed_name("job", &"x"), "job-17d80fa71f");
        assert_eq!(hashed_name("job", &"x").len(), "job-".len() + 10);
    }
}
