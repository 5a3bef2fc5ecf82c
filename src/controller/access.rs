//! Applying the access layer ([`crate::build::access`]): each exposure's proxy, list, cookie
//! secret and route in the access namespace and its NetworkPolicy in the owner's namespace;
//! withdrawing what an owner no longer exposes (found in the caches by the owner-UID label);
//! refusing a host someone else exposes; and sweeping the objects of owners that are gone
//! (objects in another namespace than their owner cannot carry an owner reference).

use std::{sync::Arc, time::Duration};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Resource, ResourceExt,
    runtime::reflector::{Lookup, Store},
};
use tracing::{info, warn};

use super::{Context, apply_namespaced, children, delete_if_managed, valid};
use crate::{
    build::{
        access::{
            ANNOTATION_HOST, AccessObjects, Exposure, LABEL_EXPOSURE, LABEL_OWNER_NAMESPACE, LABEL_OWNER_UID,
        },
        gateway::HTTPRoute,
    },
    error::Result,
    names::{LABEL_MANAGED_BY, MANAGER},
};

/// Applies one exposure: the list, cookie secret, Service and route first, the NetworkPolicy
/// admitting the proxy, then the proxy. Returns whether the proxy is available.
pub async fn expose(ctx: &Context, objects: &AccessObjects) -> Result<bool> {
    let namespace = objects.deployment.metadata.namespace.clone().unwrap_or_default();
    let name = objects.deployment.name_any();
    apply_namespaced(ctx, &objects.emails).await?;
    children::generate_once(ctx, &objects.cookie).await?;
    apply_namespaced(ctx, &objects.service).await?;
    match &objects.ingress {
        Some(ingress) => drop(apply_namespaced(ctx, ingress).await?),
        None => delete_if_managed::<Ingress>(ctx, &namespace, &name).await?,
    }
    match &objects.route {
        Some(route) => drop(apply_namespaced(ctx, route).await?),
        // Without a Gateway the kind is not watched, and maybe not installed: nothing to remove.
        None if ctx.caches.routes.is_some() => delete_if_managed::<HTTPRoute>(ctx, &namespace, &name).await?,
        None => {}
    }
    apply_namespaced(ctx, &objects.network_policy).await?;
    let proxy = apply_namespaced(ctx, &objects.deployment).await?;
    Ok(available(&proxy))
}

/// Whether a proxy's Deployment has an available replica.
pub fn available(deployment: &Deployment) -> bool {
    deployment.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 1
}

/// The exposure names of an owner's proxies as the caches hold them.
pub fn exposures_of(caches: &super::Caches, owner_uid: &str) -> Vec<String> {
    labelled(&caches.deployments, owner_uid).into_iter().map(|(_, _, exposure)| exposure).collect()
}

/// Deletes the objects of `owner_uid`'s exposures that `keep` does not name, in every kind of
/// the layer, the proxy last. Objects are found by the operator's label, the owner-UID label and
/// the exposure label; nothing else is touched.
pub async fn withdraw(ctx: &Context, owner_uid: &str, keep: &[String]) -> Result<()> {
    let caches = &ctx.caches;
    let stale = |found: Vec<(String, String, String)>| -> Vec<(String, String)> {
        found.into_iter().filter(|(_, _, e)| !keep.contains(e)).map(|(ns, name, _)| (ns, name)).collect()
    };
    if let Some(routes) = &caches.routes {
        for (ns, name) in stale(labelled(routes, owner_uid)) {
            children::delete::<HTTPRoute>(ctx, &ns, &name).await?;
        }
    }
    for (ns, name) in stale(labelled(&caches.ingresses, owner_uid)) {
        children::delete::<Ingress>(ctx, &ns, &name).await?;
    }
    for (ns, name) in stale(labelled(&caches.network_policies, owner_uid)) {
        children::delete::<NetworkPolicy>(ctx, &ns, &name).await?;
    }
    for (ns, name) in stale(labelled(&caches.services, owner_uid)) {
        children::delete::<Service>(ctx, &ns, &name).await?;
    }
    for (ns, name) in stale(labelled(&caches.secrets, owner_uid)) {
        children::delete::<Secret>(ctx, &ns, &name).await?;
    }
    for (ns, name) in stale(labelled(&caches.config_maps, owner_uid)) {
        children::delete::<ConfigMap>(ctx, &ns, &name).await?;
    }
    for (ns, name) in stale(labelled(&caches.deployments, owner_uid)) {
        children::delete::<Deployment>(ctx, &ns, &name).await?;
        info!(namespace = %ns, proxy = %name, "withdrew an exposure");
    }
    Ok(())
}

/// `(namespace, name, exposure)` of the cached objects of one kind that belong to an owner's
/// exposures.
fn labelled<K>(store: &Store<K>, owner_uid: &str) -> Vec<(String, String, String)>
where
    K: Lookup + Resource + Clone + 'static,
    <K as Lookup>::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER))
        .filter(|o| o.labels().get(LABEL_OWNER_UID).map(String::as_str) == Some(owner_uid))
        .filter_map(|o| {
            let exposure = o.labels().get(LABEL_EXPOSURE)?.clone();
            Some((o.meta().namespace.clone().unwrap_or_default(), o.name_any(), exposure))
        })
        .collect()
}

/// Who else exposes `exposure`'s host: the owner namespace of an older claim (by the access
/// list's creation, then name) in the access namespace, if any. The first claim keeps a host;
/// a later one is refused, and two made at once are told apart on their next pass.
pub fn claimant(caches: &super::Caches, namespace: &str, exposure: &Exposure) -> Option<String> {
    claimant_among(&caches.config_maps.state(), namespace, exposure)
}

/// [`claimant`] over the access lists of the cache.
fn claimant_among(lists: &[Arc<ConfigMap>], namespace: &str, exposure: &Exposure) -> Option<String> {
    let mine = exposure.name();
    let rank = |m: &ConfigMap| (m.creation_timestamp().map(|t| t.0), m.name_any());
    let in_scope = |m: &&Arc<ConfigMap>| {
        m.metadata.namespace.as_deref() == Some(namespace)
            && m.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)
    };
    let own = lists.iter().filter(in_scope).find(|m| m.labels().get(LABEL_EXPOSURE) == Some(&mine));
    lists
        .iter()
        .filter(in_scope)
        .filter(|m| m.annotations().get(ANNOTATION_HOST) == Some(&exposure.host))
        .filter(|m| m.labels().get(LABEL_EXPOSURE) != Some(&mine))
        .filter(|m| own.is_none_or(|own| rank(m) < rank(own)))
        .find_map(|m| m.labels().get(LABEL_OWNER_NAMESPACE).cloned())
}

/// How often the sweep runs without a trigger, to catch what a missed event left.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Withdraws every exposure whose owner (a Workspace or a Project, by UID) no longer exists:
/// woken by owners appearing or going away and by proxies changing, and every
/// [`SWEEP_EVERY`]. Runs until `triggers` ends.
pub async fn sweep_orphans(ctx: Arc<Context>, triggers: impl Stream<Item = ()> + Send) {
    let tick = tokio_stream_interval(SWEEP_EVERY);
    let mut wake = std::pin::pin!(futures::stream::select(triggers, tick));
    while wake.next().await.is_some() {
        // Coalesce a burst of triggers into one sweep.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(Some(())) = wake.next().now_or_never() {}
        if ctx.caches.ready().await.is_err() {
            continue;
        }
        for uid in orphans(&ctx.caches) {
            if let Err(e) = withdraw(&ctx, &uid, &[]).await {
                warn!(owner_uid = %uid, "cannot withdraw the exposures of a deleted owner: {e}");
            }
        }
    }
}

/// A stream yielding every `period`, first after one period.
fn tokio_stream_interval(period: Duration) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// Owner UIDs of proxies whose owner is in neither the Workspace nor the Project cache.
pub fn orphans(caches: &super::Caches) -> Vec<String> {
    let owners: Vec<String> = valid(&caches.workspaces)
        .iter()
        .filter_map(|w| w.metadata.uid.clone())
        .chain(valid(&caches.projects).iter().filter_map(|p| p.metadata.uid.clone()))
        .collect();
    orphans_among(&caches.deployments.state(), owners)
}

/// [`orphans`] over the cached proxies and the UIDs of the owners that exist.
fn orphans_among(proxies: &[Arc<Deployment>], mut owners: Vec<String>) -> Vec<String> {
    owners.sort();
    let mut orphans: Vec<String> = proxies
        .iter()
        .filter(|d| d.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER))
        .filter_map(|d| d.labels().get(LABEL_OWNER_UID).cloned())
        .filter(|uid| owners.binary_search(uid).is_err())
        .collect();
    orphans.sort();
    orphans.dedup();
    orphans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::access;

    fn list(exposure: &Exposure, created: &str) -> Arc<ConfigMap> {
        let mut objects = access::build(&access::tests::layer(), exposure);
        objects.emails.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(created.parse().unwrap()));
        Arc::new(objects.emails)
    }

    fn exposure_of(namespace: &str, host: &str) -> Exposure {
        let mut exposure = access::tests::exposure();
        exposure.owner.namespace = namespace.into();
        exposure.host = host.into();
        exposure
    }

    #[test]
    fn the_first_claim_of_a_host_keeps_it() {
        let (first, second) =
            (exposure_of("dw-a", "x.data.example.com"), exposure_of("dw-b", "x.data.example.com"));
        let ns = "dataworkspace-access";
        // Nobody else: free.
        assert_eq!(claimant_among(&[list(&first, "2026-01-01T00:00:00Z")], ns, &first), None);
        // The second claim is refused before it makes anything, and after both exist.
        let older = list(&first, "2026-01-01T00:00:00Z");
        assert_eq!(claimant_among(std::slice::from_ref(&older), ns, &second).as_deref(), Some("dw-a"));
        let both = [older, list(&second, "2026-01-02T00:00:00Z")];
        assert_eq!(claimant_among(&both, ns, &second).as_deref(), Some("dw-a"));
        assert_eq!(claimant_among(&both, ns, &first), None, "the first keeps it");
        // Another host, or a list in another namespace, claims nothing.
        let elsewhere = exposure_of("dw-c", "y.data.example.com");
        assert_eq!(claimant_among(&both, ns, &elsewhere), None);
        assert_eq!(claimant_among(&both, "other", &second), None);
    }

    #[test]
    fn only_proxies_of_owners_that_are_gone_are_orphans() {
        let proxy = |uid: &str| {
            let mut exposure = access::tests::exposure();
            exposure.owner.reference.uid = uid.into();
            Arc::new(access::build(&access::tests::layer(), &exposure).deployment)
        };
        let proxies = [proxy("alive"), proxy("gone"), proxy("gone")];
        assert_eq!(orphans_among(&proxies, vec!["alive".into()]), vec!["gone".to_string()]);
        assert!(orphans_among(&proxies, vec!["gone".into(), "alive".into()]).is_empty());
    }
}
