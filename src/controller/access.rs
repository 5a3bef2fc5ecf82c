//! Applying the access layer ([`crate::build::access`]): each exposure's proxy, list, cookie
//! secret and route in the access namespace and its NetworkPolicy in the owner's namespace;
//! withdrawing what an owner no longer exposes (found in the caches by the owner-UID label);
//! refusing a host someone else exposes; and sweeping the objects of owners that are gone
//! (objects in another namespace than their owner cannot carry an owner reference).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::{Caches, Context, apply_namespaced, children, delete_if_managed};
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

/// The exposures of an owner that the caches hold in the access namespace, by any of their
/// objects (a pass that failed half-way may have left a list without a proxy).
pub fn exposures_of(caches: &Caches, access_namespace: &str, owner_uid: &str) -> BTreeSet<String> {
    tagged(caches, access_namespace)
        .into_iter()
        .filter(|t| t.owner_uid == owner_uid)
        .map(|t| t.exposure)
        .collect()
}

/// Deletes the objects of `owner_uid`'s exposures that `keep` does not name: in the access
/// namespace (every kind of the layer, the proxy last) and, when `owner_namespace` is given, the
/// NetworkPolicies there that the owner holds by owner reference. Objects are found by the
/// operator's label, the owner-UID label and the exposure label, and only where the layer puts
/// them: an object a tenant labels in its own namespace is never looked at.
pub async fn withdraw(
    ctx: &Context,
    access_namespace: &str,
    owner_uid: &str,
    owner_namespace: Option<&str>,
    keep: &BTreeSet<String>,
) -> Result<()> {
    // One scan of the caches; an owner with nothing stale costs no request.
    let stale_objects: Vec<Tagged> = tagged(&ctx.caches, access_namespace)
        .into_iter()
        .filter(|t| t.owner_uid == owner_uid && !keep.contains(&t.exposure))
        .collect();
    let stale = |kind: &str| -> Vec<String> {
        stale_objects.iter().filter(|t| t.kind == kind).map(|t| t.name.clone()).collect()
    };
    let ns = access_namespace;
    for name in stale("HTTPRoute") {
        children::delete::<HTTPRoute>(ctx, ns, &name).await?;
    }
    for name in stale("Ingress") {
        children::delete::<Ingress>(ctx, ns, &name).await?;
    }
    for name in stale("Service") {
        children::delete::<Service>(ctx, ns, &name).await?;
    }
    for name in stale("Secret") {
        children::delete::<Secret>(ctx, ns, &name).await?;
    }
    for name in stale("ConfigMap") {
        children::delete::<ConfigMap>(ctx, ns, &name).await?;
    }
    for name in stale("Deployment") {
        children::delete::<Deployment>(ctx, ns, &name).await?;
        info!(namespace = %ns, proxy = %name, "withdrew an exposure");
    }
    if let Some(owner_namespace) = owner_namespace {
        let policies: Vec<String> = ctx
            .caches
            .network_policies
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(owner_namespace))
            .filter(|p| p.owner_references().iter().any(|o| o.uid == owner_uid))
            .filter(|p| p.labels().get(LABEL_EXPOSURE).is_some_and(|e| !keep.contains(e)))
            .map(|p| p.name_any())
            .collect();
        for name in policies {
            children::delete::<NetworkPolicy>(ctx, owner_namespace, &name).await?;
        }
    }
    Ok(())
}

/// One object of the layer in the access namespace, by its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tagged {
    kind: &'static str,
    name: String,
    exposure: String,
    owner_uid: String,
}

/// Every object of the layer the caches hold in the access namespace.
fn tagged(caches: &Caches, namespace: &str) -> Vec<Tagged> {
    let mut all = tagged_in(&caches.config_maps.state(), "ConfigMap", namespace);
    all.extend(tagged_in(&caches.secrets.state(), "Secret", namespace));
    all.extend(tagged_in(&caches.services.state(), "Service", namespace));
    all.extend(tagged_in(&caches.ingresses.state(), "Ingress", namespace));
    all.extend(tagged_in(&caches.deployments.state(), "Deployment", namespace));
    if let Some(routes) = &caches.routes {
        all.extend(tagged_in(&routes.state(), "HTTPRoute", namespace));
    }
    all
}

fn tagged_in<K: Resource>(objects: &[Arc<K>], kind: &'static str, namespace: &str) -> Vec<Tagged> {
    objects
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .filter(|o| o.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER))
        .filter_map(|o| {
            Some(Tagged {
                kind,
                name: o.name_any(),
                exposure: o.labels().get(LABEL_EXPOSURE)?.clone(),
                owner_uid: o.labels().get(LABEL_OWNER_UID)?.clone(),
            })
        })
        .collect()
}

/// Who else exposes `exposure`'s host: the owner namespace of an older claim (by the access
/// list's creation, then name) in the access namespace, if any. The first claim keeps a host;
/// a later one is refused, and two made at once are told apart on their next pass.
pub fn claimant(caches: &Caches, namespace: &str, exposure: &Exposure) -> Option<String> {
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
    let owner_uid = &exposure.owner.reference.uid;
    // An exposure of the same name that another owner holds is never ours to rewrite.
    if let Some(other) = lists.iter().filter(in_scope).find(|m| {
        m.labels().get(LABEL_EXPOSURE) == Some(&mine) && m.labels().get(LABEL_OWNER_UID) != Some(owner_uid)
    }) {
        return Some(
            other.labels().get(LABEL_OWNER_NAMESPACE).cloned().unwrap_or_else(|| "another owner".into()),
        );
    }
    // Our own list ranks only while it is for this host: a host changed to one someone else
    // holds is a new claim, however old the list.
    let own = lists
        .iter()
        .filter(in_scope)
        .filter(|m| m.annotations().get(ANNOTATION_HOST) == Some(&exposure.host))
        .find(|m| m.labels().get(LABEL_EXPOSURE) == Some(&mine));
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
/// [`SWEEP_EVERY`]. Runs until `triggers` ends; does nothing without the layer.
pub async fn sweep_orphans(ctx: Arc<Context>, triggers: impl Stream<Item = ()> + Send) {
    let Some(layer) = ctx.config.access.clone() else { return };
    let tick = interval(SWEEP_EVERY);
    let mut wake = std::pin::pin!(futures::stream::select(triggers, tick));
    while wake.next().await.is_some() {
        // Coalesce a burst of triggers into one sweep.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Some(Some(())) = wake.next().now_or_never() {}
        if ctx.caches.ready().await.is_err() {
            continue;
        }
        for uid in orphans(&ctx.caches, &layer.namespace) {
            // The owner's NetworkPolicies went with it (owner reference).
            if let Err(e) = withdraw(&ctx, &layer.namespace, &uid, None, &BTreeSet::new()).await {
                warn!(owner_uid = %uid, "cannot withdraw the exposures of a deleted owner: {e}");
            }
        }
    }
}

/// A stream yielding every `period`, first after one period.
fn interval(period: Duration) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(period).await;
        Some(((), ()))
    })
}

/// Owner UIDs of the layer's objects whose owner is in neither the Workspace nor the Project
/// cache. Every cached owner counts, even one that no longer parses: its exposures stay until
/// it is fixed or deleted.
pub fn orphans(caches: &Caches, access_namespace: &str) -> Vec<String> {
    let owners: Vec<String> = caches
        .workspaces
        .state()
        .iter()
        .filter_map(|w| w.meta().uid.clone())
        .chain(caches.projects.state().iter().filter_map(|p| p.meta().uid.clone()))
        .collect();
    orphans_among(&tagged(caches, access_namespace), owners)
}

/// [`orphans`] over the layer's objects and the UIDs of the owners that exist.
fn orphans_among(objects: &[Tagged], mut owners: Vec<String>) -> Vec<String> {
    owners.sort();
    let mut orphans: Vec<String> = objects
        .iter()
        .map(|t| t.owner_uid.clone())
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
        // A list whose host changed to one someone holds is a new claim, however old the list.
        let mut moved = exposure_of("dw-c", "y.data.example.com");
        let moved_list = list(&moved, "2025-01-01T00:00:00Z");
        moved.host = "x.data.example.com".into();
        let with_moved = [both[0].clone(), both[1].clone(), moved_list];
        assert_eq!(claimant_among(&with_moved, ns, &moved).as_deref(), Some("dw-a"));
        // The same exposure name held by another owner is a conflict, whatever the host.
        let mut impostor = exposure_of("dw-a", "z.data.example.com");
        impostor.owner.reference.uid = "someone-else".into();
        assert_eq!(claimant_among(std::slice::from_ref(&both[0]), ns, &impostor).as_deref(), Some("dw-a"));
        // Another host, or a list in another namespace, claims nothing.
        let elsewhere = exposure_of("dw-c", "y.data.example.com");
        assert_eq!(claimant_among(&both, ns, &elsewhere), None);
        assert_eq!(claimant_among(&both, "other", &second), None);
    }

    #[test]
    fn only_objects_of_owners_that_are_gone_are_orphans_and_only_in_the_access_namespace() {
        let objects_of = |uid: &str| {
            let mut exposure = access::tests::exposure();
            exposure.owner.reference.uid = uid.into();
            access::build(&access::tests::layer(), &exposure)
        };
        let (alive, gone) = (objects_of("alive"), objects_of("gone"));
        // A list left without its proxy (a pass that failed half-way) counts too.
        let lists = [Arc::new(alive.emails.clone()), Arc::new(gone.emails.clone())];
        let proxies = [Arc::new(alive.deployment.clone())];
        let ns = "dataworkspace-access";
        let mut all = tagged_in(&lists, "ConfigMap", ns);
        all.extend(tagged_in(&proxies, "Deployment", ns));
        assert_eq!(orphans_among(&all, vec!["alive".into()]), vec!["gone".to_string()]);
        assert!(orphans_among(&all, vec!["gone".into(), "alive".into()]).is_empty());
        // The same labels on an object in a tenant's namespace are never looked at.
        let mut forged = gone.deployment.clone();
        forged.metadata.namespace = Some("dw-tenant".into());
        assert!(tagged_in(&[Arc::new(forged)], "Deployment", ns).is_empty());
    }
}
