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

use super::{
    Context, Managed, ObservedStatus,
    cache::{Cached, cached_meta},
    publish,
};
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
        + Cached
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
        + Cached
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    patch(ctx, &Api::<K>::all(ctx.client.clone()), object).await
}

async fn patch<K>(ctx: &Context, api: &Api<K>, object: &K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Cached + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let what = || format!("{} {name}", K::kind(&()));
    let mut desired = serde_json::to_value(object)
        .map_err(|e| Error::Apply { what: what(), source: kube::Error::SerdeError(e) })?;
    // Idle passes write nothing. The hash of what we apply, kept as an annotation, tells
    // whether our desired state changed (including fields we stopped setting); the subset
    // check tells whether someone changed a field we set. Only then is the object applied.
    // Both look at the cache: a stale entry costs one redundant apply, and a change someone
    // makes arrives as a watch event that brings the object back here.
    let hash = applied_hash(&desired);
    desired["metadata"]["annotations"][ANNOTATION_APPLIED_HASH] = hash.clone().into();
    if let Some(live_json) = K::cached(&ctx.caches, object.meta().namespace.as_deref(), &name)
        && live_json["metadata"]["annotations"][ANNOTATION_APPLIED_HASH].as_str() == Some(hash.as_str())
        && is_subset(&desired, &live_json)
        && let Ok(live) = serde_json::from_value::<K>(live_json)
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

/// A hash of a desired object: FNV-1a (64 bits) of its JSON text. Serialisation of the typed
/// objects is deterministic (struct field order, sorted maps), and FNV-1a is fixed by its
/// definition, so the hash stays the same across toolchains and releases: only a change of what
/// the operator wants changes it.
pub fn applied_hash(desired: &serde_json::Value) -> String {
    format!("{:016x}", fnv1a_64(desired.to_string().as_bytes()))
}

/// FNV-1a, 64 bits (<http://www.isthe.com/chongo/tech/comp/fnv/>).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// Keys whose object value is a Kubernetes `ResourceList` (resource name → quantity):
/// container and claim `limits`/`requests`, ResourceQuota `hard`, LimitRange items.
const RESOURCE_LISTS: &[&str] =
    &["limits", "requests", "hard", "default", "defaultRequest", "max", "min", "maxLimitRequestRatio"];
/// Keys whose value is a single quantity.
const QUANTITY_FIELDS: &[&str] = &["sizeLimit"];

/// Whether every field of `desired` is present with the same value in `live`. Lists must have
/// the same length and match element by element. Quantities — the values of resource lists
/// (see [`RESOURCE_LISTS`]) and quantity fields — compare by value, as the API server stores
/// them in canonical form (`cpu: 0.5` comes back as `500m`); every other string compares
/// exactly, so an environment variable `0.5` changed to `500m` is still a change.
pub fn is_subset(desired: &serde_json::Value, live: &serde_json::Value) -> bool {
    subset(desired, live, false)
}

fn subset(desired: &serde_json::Value, live: &serde_json::Value, resource_list: bool) -> bool {
    use serde_json::Value;
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| {
            v.is_null()
                || l.get(k).is_some_and(|lv| match (v, lv) {
                    (Value::String(a), Value::String(b))
                        if resource_list || QUANTITY_FIELDS.contains(&k.as_str()) =>
                    {
                        same_quantity(a, b)
                    }
                    _ => subset(v, lv, RESOURCE_LISTS.contains(&k.as_str())),
                })
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b, false))
        }
        _ => desired == live,
    }
}

/// Whether two quantity strings are equal, or both quantities of the same value as the API
/// server stores it. Anything that does not parse compares as text.
fn same_quantity(a: &str, b: &str) -> bool {
    a == b || quantity_value(a).is_some_and(|x| quantity_value(b) == Some(x))
}

/// The value of a Kubernetes quantity as the API server keeps it, exactly: the sign, and
/// `mantissa × 10^-scale` with no trailing zero in `mantissa` (zero is `(false, 0, 0)`). As
/// the API server does, it rounds up to nano units (10^-9) and caps the magnitude at 2^63 - 1.
/// `None` when the text is not a quantity (`<sign?><digits>[.<digits>]<suffix>`, the suffix
/// one of `Ki`…`Ei`, `n u m k M G T P E`, or `e<integer>`), or too large to hold exactly.
pub(crate) fn quantity_value(text: &str) -> Option<(bool, u128, i32)> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa.checked_mul(10)?.checked_add(u128::from(digit - b'0'))?;
    }
    let mut scale = i32::try_from(fraction.len()).ok()?;
    let decimal = move |exponent: i32| scale.checked_sub(exponent);
    match suffix {
        "" => {}
        "n" => scale = decimal(-9)?,
        "u" => scale = decimal(-6)?,
        "m" => scale = decimal(-3)?,
        "k" => scale = decimal(3)?,
        "M" => scale = decimal(6)?,
        "G" => scale = decimal(9)?,
        "T" => scale = decimal(12)?,
        "P" => scale = decimal(15)?,
        "E" => scale = decimal(18)?,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].iter().position(|s| *s == suffix)? + 1;
            mantissa = mantissa.checked_mul(1u128 << (10 * power))?;
        }
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            if !exponent.trim_start_matches(['+', '-']).bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            scale = decimal(exponent.parse::<i32>().ok()?)?;
        }
    }
    if mantissa == 0 {
        return Some((false, 0, 0));
    }
    // Round up (away from zero) to nano units.
    if scale > 9 {
        mantissa = match 10u128.checked_pow(u32::try_from(scale - 9).ok()?) {
            Some(unit) => mantissa.div_ceil(unit),
            // The unit exceeds any u128, so the mantissa is a fraction of one nano unit.
            None => 1,
        };
        scale = 9;
    }
    // Cap the magnitude at 2^63 - 1, as the API server does.
    let max = u128::from(i64::MAX.unsigned_abs());
    let above_max = if scale <= 0 {
        10u128.checked_pow(scale.unsigned_abs()).and_then(|f| mantissa.checked_mul(f)).is_none_or(|v| v > max)
    } else {
        10u128
            .checked_pow(scale.unsigned_abs())
            .and_then(|f| max.checked_mul(f))
            .is_some_and(|m| mantissa > m)
    };
    if above_max {
        (mantissa, scale) = (max, 0);
    }
    while mantissa.is_multiple_of(10) {
        mantissa /= 10;
        scale -= 1;
    }
    Some((negative, mantissa, scale))
}

/// Deletes a namespaced object if the cache has it and it carries the operator's label.
pub async fn delete_if_managed<K>(ctx: &Context, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Cached + Clone + Debug + DeserializeOwned,
{
    remove(ctx, Api::<K>::namespaced(ctx.client.clone(), namespace), Some(namespace), name).await
}

/// Deletes a cluster-scoped object if the cache has it and it carries the operator's label.
pub async fn delete_cluster_if_managed<K>(ctx: &Context, name: &str) -> Result<()>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()> + Cached + Clone + Debug + DeserializeOwned,
{
    remove(ctx, Api::<K>::all(ctx.client.clone()), None, name).await
}

async fn remove<K>(ctx: &Context, api: Api<K>, namespace: Option<&str>, name: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Cached + Clone + Debug + DeserializeOwned,
{
    let what =
        || format!("{} {}{name}", K::kind(&()), namespace.map(|n| format!("{n}/")).unwrap_or_default());
    let Some(existing) = cached_meta::<K>(&ctx.caches, namespace, name) else {
        return Ok(());
    };
    let managed =
        existing.labels.as_ref().and_then(|l| l.get(crate::names::LABEL_MANAGED_BY)).map(String::as_str)
            == Some(MANAGER);
    if managed {
        ctx.count_write(&K::kind(&()));
        match api.delete(name, &Default::default()).await {
            Ok(_) => {}
            // Gone already: the cache was a moment behind.
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => return Err(Error::Apply { what: what(), source }),
        }
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
/// status, in which case nothing is sent. Publishes an Event when `Ready` changes (see
/// [`conditions::transition_event`]). The conditions applied are the desired ones: an owned
/// condition type no longer desired is removed.
pub async fn apply_status<K: Managed>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    desired: &[Desired],
) -> Result<()> {
    write_status(ctx, obj, status, desired, false, false).await.map(|_| ())
}

/// Like [`apply_status`] for statuses that mostly list things: a change that leaves every
/// condition's status and reason, and the observed generation, as stored is written at most once
/// per [`STATUS_PACE`](super::STATUS_PACE) per object. Returns how long to wait when it was held
/// back; the caller requeues the object for then.
pub async fn apply_status_paced<K: Managed>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    desired: &[Desired],
) -> Result<Option<std::time::Duration>> {
    write_status(ctx, obj, status, desired, false, true).await
}

/// The status write of a failed pass: like [`apply_status`], but the owned conditions not in
/// `desired` (a failure sets only `Ready`) are kept as stored.
pub(super) async fn apply_failure_status<K: Managed>(
    ctx: &Context,
    obj: &K,
    status: K::Status,
    desired: &[Desired],
) -> Result<()> {
    write_status(ctx, obj, status, desired, true, false).await.map(|_| ())
}

async fn write_status<K: Managed>(
    ctx: &Context,
    obj: &K,
    mut status: K::Status,
    desired: &[Desired],
    keep_owned: bool,
    paced: bool,
) -> Result<Option<std::time::Duration>> {
    let current = obj.status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let merged = conditions::merge(current.conditions(), desired, generation, &Time(Timestamp::now()));
    // Apply only our conditions: server-side apply keeps those other managers own, and removes
    // ours that are left out.
    let applied = conditions::applied(&merged, desired, K::CONDITION_TYPES, keep_owned);
    status.set_conditions(conditions::stored(&merged, &applied, K::CONDITION_TYPES));
    status.set_observed_generation(generation);
    if status == current {
        return Ok(None);
    }
    if paced {
        // The same conditions, by type, status and reason, in the same order: only messages,
        // counts and lists changed.
        let states = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
            conditions
                .iter()
                .filter(|c| K::CONDITION_TYPES.contains(&c.type_.as_str()))
                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                .collect::<Vec<_>>()
        };
        // A new generation (someone changed the spec) is answered at once, too.
        let listings_only = states(status.conditions()) == states(current.conditions())
            && status.observed_generation() == current.observed_generation();
        let key = super::object_key(K::KIND, obj.namespace().as_deref(), &obj.name_any());
        if let Some(wait) = ctx.paced.wait(&key, listings_only, std::time::Instant::now()) {
            return Ok(Some(wait));
        }
    }

    let before = conditions::find(current.conditions(), READY);
    let event = conditions::find(&applied, READY).and_then(|after| {
        let type_ = match conditions::transition_event(before, after)? {
            conditions::EventKind::Normal => EventType::Normal,
            conditions::EventKind::Warning => EventType::Warning,
        };
        Some((type_, after.reason.clone(), after.message.clone()))
    });

    status.set_conditions(applied);
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
    // Announced once the change is stored: a write that failed is retried, and announced then.
    if let Some((type_, reason, message)) = event {
        publish(ctx, &obj.object_ref(&()), type_, &reason, &message).await;
    }
    Ok(None)
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
    }

    #[test]
    fn applied_hash_is_fnv1a_and_stable_across_releases() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        // Golden value, computed independently over the JSON text
        // `{"roleRef":{"name":"r"},"subjects":[{"name":"a"}]}`: annotations written by earlier
        // runs keep matching, whatever the toolchain.
        let desired = serde_json::json!({"subjects": [{"name": "a"}], "roleRef": {"name": "r"}});
        assert_eq!(desired.to_string(), r#"{"roleRef":{"name":"r"},"subjects":[{"name":"a"}]}"#);
        assert_eq!(applied_hash(&desired), "43d35f04791686ee");
    }

    #[test]
    fn quantities_compare_by_the_value_the_api_server_stores() {
        for (written, stored) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("2e3", "2k"),
            ("2E3", "2k"),
            ("100M", "100M"),
            ("0.1", "100m"),
            ("0.25", "250m"),
            ("+1", "1"),
            ("-0.5", "-500m"),
            ("-0", "0"),
            ("0Gi", "0"),
            ("1.", "1"),
            (".5", "500m"),
            ("1e-3", "1m"),
            ("1.5e+3", "1500"),
            ("1k", "1000"),
            ("1E", "1e18"),
            ("1Ei", "1152921504606846976"),
            ("4096Mi", "4Gi"),
            ("0.5Ki", "512"),
            ("1u", "1000n"),
            // The API server rounds up to nano units and caps at 2^63 - 1.
            ("0.1n", "1n"),
            ("1e-30", "1n"),
            ("1.0000000001", "1000000001n"),
            ("1e19", "9223372036854775807"),
            ("99999999Ei", "9223372036854775807"),
        ] {
            assert!(same_quantity(written, stored), "{written} should equal {stored}");
            assert!(same_quantity(stored, written), "{stored} should equal {written}");
        }
        for (a, b) in [
            ("1Gi", "1G"),
            ("500m", "5"),
            ("1", "-1"),
            ("1Ki", "1k"),
            ("1n", "0"),
            ("1.5", "1"),
            ("1e3", "1e4"),
        ] {
            assert!(!same_quantity(a, b), "{a} should differ from {b}");
        }
        for text in [
            "", "abc", "Gi", "1.2.3", "1 Gi", "1Gib", "1K", "1mi", "1e", "1e3.5", "1e+-3", ".", "-", "0x10",
            "1i",
        ] {
            assert_eq!(quantity_value(text), None, "{text:?} is not a quantity");
        }
        // Too large to hold exactly: compared as text.
        let huge = "9".repeat(60);
        assert_eq!(quantity_value(&huge), None);
        assert!(same_quantity(&huge, &huge) && !same_quantity(&huge, "1"));
    }

    #[test]
    fn subset_compares_quantities_by_value_only_where_quantities_are() {
        // What the operator applied, and what the API server stored: canonical quantities.
        let desired = serde_json::json!({
            "spec": {
                "hard": {"requests.cpu": "0.5", "limits.memory": "1024Mi", "pods": "50"},
                "limits": [{"type": "Container", "default": {"cpu": "1000m"}, "defaultRequest": {"memory": "0.25Gi"}}],
                "template": {"spec": {
                    "containers": [{
                        "resources": {"requests": {"cpu": "0.25"}, "limits": {"memory": "2048Mi"}},
                        "env": [{"name": "CORES", "value": "0.5"}]
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1024Mi"}}]
                }},
                "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "1024Mi"}}}}]
            }
        });
        let live = serde_json::json!({
            "spec": {
                "hard": {"requests.cpu": "500m", "limits.memory": "1Gi", "pods": "50"},
                "limits": [{"type": "Container", "default": {"cpu": "1"}, "defaultRequest": {"memory": "256Mi"}}],
                "template": {"spec": {
                    "containers": [{
                        "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}},
                        "env": [{"name": "CORES", "value": "0.5"}]
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
                }},
                "volumeClaimTemplates": [{"spec": {"resources": {"requests": {"storage": "1Gi"}}}}]
            }
        });
        assert!(is_subset(&desired, &live));
        // A quantity someone changed is a change.
        let mut changed = live.clone();
        changed["spec"]["hard"]["requests.cpu"] = "600m".into();
        assert!(!is_subset(&desired, &changed));
        // Outside resource lists, strings compare exactly: `0.5` and `500m` differ in an
        // environment variable, a label or a ConfigMap.
        let mut env = live.clone();
        env["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "500m".into();
        assert!(!is_subset(&desired, &env));
        let label = serde_json::json!({"metadata": {"labels": {"limits": "0.5"}}, "data": {"requests": "1"}});
        let relabelled =
            serde_json::json!({"metadata": {"labels": {"limits": "500m"}}, "data": {"requests": "1000m"}});
        assert!(!is_subset(&label, &relabelled));
    }
}
