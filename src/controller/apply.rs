//! The apply layer: server-side apply of desired objects and statuses with one field manager,
//! sending nothing when nothing changed, and counting every write request it sends.

use std::fmt::Debug;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    core::{ClusterResourceScope, NamespaceResourceScope},
    runtime::events::EventType,
};
use serde::{Serialize, de::DeserializeOwned};

use super::{Context, Managed, ObservedStatus, publish};
use crate::{
    conditions::{self, Desired, READY},
    error::{Error, Result},
    metrics::KindLabels,
    names::MANAGER,
};

/// Server-side applies a namespaced object with the operator's field manager.
pub async fn apply_namespaced<K>(ctx: &Context, object: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    patch(ctx, &api, object).await
}

/// Server-side applies a cluster-scoped object with the operator's field manager.
pub async fn apply_cluster<K>(ctx: &Context, object: &K) -> Result<K>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    patch(ctx, &Api::<K>::all(ctx.client.clone()), object).await
}

async fn patch<K>(ctx: &Context, api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let what = || format!("{} {name}", K::kind(&()));
    let mut desired = serde_json::to_value(object)
        .map_err(|e| Error::Apply { what: what(), source: kube::Error::SerdeError(e) })?;
    // Idle passes write nothing. The hash of what we apply, kept as an annotation, tells
    // whether our desired state changed (including fields we stopped setting); the subset
    // check tells whether someone changed a field we set. Only then is the object applied.
    let hash = applied_hash(&desired);
    desired["metadata"]["annotations"][ANNOTATION_APPLIED_HASH] = hash.clone().into();
    if let Some(live) = api.get_opt(&name).await.map_err(|source| Error::Read { what: what(), source })?
        && live.meta().annotations.as_ref().and_then(|a| a.get(ANNOTATION_APPLIED_HASH)) == Some(&hash)
        && let Ok(live_json) = serde_json::to_value(&live)
        && is_subset(&desired, &live_json)
    {
        return Ok(live);
    }
    // Server-side apply needs apiVersion and kind, which typed k8s-openapi structs omit.
    desired["apiVersion"] = K::api_version(&()).into();
    desired["kind"] = K::kind(&()).into();
    let applied = api
        .patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&desired))
        .await
        .map_err(|source| Error::Apply { what: what(), source })?;
    ctx.count_write(&K::kind(&()));
    Ok(applied)
}

/// Annotation holding the hash of the last applied desired state.
pub const ANNOTATION_APPLIED_HASH: &str = "dataworkspace.io/applied-hash";

/// A hash of a desired object. Serialisation of the typed objects is deterministic (struct
/// field order, sorted maps); a new toolchain may change the hasher, which costs one re-apply.
pub fn applied_hash(desired: &serde_json::Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    desired.to_string().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// Whether every field of `desired` is present with the same value in `live`. Lists must have
/// the same length and match element by element.
pub fn is_subset(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            d.iter().all(|(k, v)| v.is_null() || l.get(k).is_some_and(|lv| is_subset(v, lv)))
        }
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == live,
    }
}

/// Deletes a namespaced object if it exists and carries the operator's label.
pub async fn delete_if_managed<K>(ctx: &Context, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let what = || format!("{} {namespace}/{name}", K::kind(&()));
    let Some(existing) =
        api.get_metadata_opt(name).await.map_err(|source| Error::Read { what: what(), source })?
    else {
        return Ok(());
    };
    let managed = existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(crate::names::LABEL_MANAGED_BY))
        .map(String::as_str)
        == Some(MANAGER);
    if managed {
        api.delete(name, &Default::default())
            .await
            .map_err(|source| Error::Apply { what: what(), source })?;
        ctx.count_write(&K::kind(&()));
    }
    Ok(())
}

/// The server-side apply body of a status write.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<S> {
    api_version: String,
    kind: String,
    status: S,
}

/// Writes `status` with the `desired` conditions merged in — unless the result equals the stored
/// status, in which case nothing is sent. Publishes an Event when `Ready` changes.
pub async fn apply_status<K: Managed>(
    ctx: &Context,
    obj: &K,
    mut status: K::Status,
    desired: &[Desired],
) -> Result<()> {
    let current = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let merged = conditions::merge(current.conditions(), desired, generation, &Time(Timestamp::now()));
    status.set_conditions(merged.clone());
    status.set_observed_generation(generation);
    if status == current {
        return Ok(());
    }

    let before = conditions::find(current.conditions(), READY);
    if let Some(after) = conditions::find(&merged, READY)
        && before.is_none_or(|b| b.status != after.status || b.reason != after.reason)
    {
        let type_ = if after.status == "True" { EventType::Normal } else { EventType::Warning };
        publish(ctx, &obj.object_ref(&()), type_, &after.reason, &after.message).await;
    }

    // Apply only our conditions: server-side apply keeps those other managers own.
    status.set_conditions(conditions::owned(&merged, K::CONDITION_TYPES));
    let body = StatusApply { api_version: K::api_version(&()).into_owned(), kind: K::KIND.into(), status };
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match obj.namespace() {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), &ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    api.patch_status(&obj.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
        .await
        .map_err(|source| Error::StatusUpdate { source })?;
    ctx.metrics.status_writes.get_or_create(&KindLabels { kind: K::KIND }).inc();
    ctx.count_write(&format!("{}/status", K::KIND));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_ignores_extra_live_fields_but_not_changed_values() {
        let desired =
            serde_json::json!({"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}});
        let live = serde_json::json!({"metadata": {"labels": {"a": "1", "b": "2"}, "uid": "x"}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(is_subset(&desired, &live));
        let changed =
            serde_json::json!({"metadata": {"labels": {"a": "2"}}, "spec": {"ports": [{"port": 80}]}});
        assert!(!is_subset(&changed, &live));
        let more_ports = serde_json::json!({"spec": {"ports": [{"port": 80}, {"port": 81}]}});
        assert!(!is_subset(&more_ports, &live));
    }

    #[test]
    fn applied_hash_changes_when_a_field_is_dropped() {
        let with = serde_json::json!({"subjects": [{"name": "a"}], "roleRef": {"name": "r"}});
        let without = serde_json::json!({"roleRef": {"name": "r"}});
        assert_ne!(applied_hash(&with), applied_hash(&without));
        assert_eq!(applied_hash(&with), applied_hash(&with.clone()));
    }
}
