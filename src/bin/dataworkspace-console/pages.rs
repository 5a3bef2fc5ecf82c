//! The pages, as maud templates: every value is escaped by the template, links are rendered
//! only for http(s) URLs, and no Secret value is ever at hand (the view holds references only).

use std::collections::BTreeMap;

use dataworkspace_operator::config::Config;
use dataworkspace_operator::{
    crd::{Project, common::Role},
    view::{
        console::{self, Person, safe_link},
        runtime::{self, Listing},
    },
};
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use maud::{DOCTYPE, Markup, html};

use super::Snapshot;

/// The style sheet, served from the binary.
pub const CSS: &str = include_str!("console.css");
/// Live refresh: reloads the page when the console announces a change.
pub const JS: &str = include_str!("live.js");

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Runtime,
    Studio,
    Admin,
}

fn role(role: Option<Role>) -> &'static str {
    match role {
        Some(Role::Admin) => "admin",
        Some(Role::Developer) => "developer",
        Some(Role::Viewer) => "viewer",
        None => "platform admin",
    }
}

/// An endpoint: a link when it is http(s), text otherwise.
fn link(url: &str) -> Markup {
    match safe_link(url) {
        Some(href) => html! { a href=(href) rel="noopener noreferrer" { (url) } },
        None => html! { code { (url) } },
    }
}

fn layout(person: &Person<'_>, area: Area, title: &str, content: Markup) -> Markup {
    let tab = |this: Area, href: &str, label: &str| {
        html! {
            @if this == area { a href=(href) aria-current="page" { (label) } }
            @else { a href=(href) { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Data Workspace" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/live.js" defer {}
            }
            body data-area=(title) {
                header {
                    strong.brand { "Data Workspace" }
                    nav.areas aria-label="Areas" {
                        (tab(Area::Runtime, "/runtime", "Runtime"))
                        (tab(Area::Studio, "/studio", "Studio"))
                        @if person.administers_any() { (tab(Area::Admin, "/admin", "Admin")) }
                    }
                    span.who {
                        (person.email)
                        @if let Some(user) = person.scope.user { " (" (user.name_any()) ")" }
                        @if person.platform_admin { " " span.badge { "platform admin" } }
                    }
                }
                main {
                    @for notice in &person.scope.notices { p.notice role="status" { (notice) } }
                    @if person.scope.workspaces.is_empty() {
                        p.empty id="no-workspace" { "You have no workspace to see here." }
                    } @else {
                        (content)
                    }
                }
                footer { "Read-only. Reload to refresh (pages also refresh themselves when something changes)." }
            }
        }
    }
}

pub fn runtime(person: &Person<'_>, snapshot: &Snapshot) -> Markup {
    let rows = runtime::rows(&person.scope, &snapshot.projects, snapshot.now);
    let find = |namespace: &str, name: &str| {
        snapshot
            .projects
            .iter()
            .find(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.name_any() == name)
    };
    let content = html! {
        h1 { "Runtime" }
        @if rows.is_empty() { p.empty { "No project in your workspaces yet." } }
        @else {
            div.scroll { table id="projects" {
                thead { tr { th { "" } th { "Project" } th { "Workspace" } th { "Runtime" } th { "Phase" } th { "Ready" } th { "Endpoint" } th { "Age" } th { "Last transition" } } }
                tbody {
                    @for row in &rows {
                        @let reason = find(&row.namespace, &row.project).and_then(last_transition);
                        tr data-listing=(format!("{:?}", row.listing).to_lowercase()) {
                            td { @match row.listing { Listing::Pinned => span.badge { "pinned" }, Listing::Recent => span.badge.recent { "recent" }, Listing::Other => {} } }
                            td { @if row.runtime.is_some() { a href=(format!("/runtime/{}/{}", row.namespace, row.project)) { (row.project) } } @else { (row.project) } }
                            td { (row.workspace) }
                            td { (row.runtime.as_deref().unwrap_or("—")) }
                            td { span class=(format!("phase {}", row.phase.as_deref().unwrap_or("Unknown"))) { (row.phase.as_deref().unwrap_or("—")) } }
                            td { (row.components.map(|c| format!("{}/{}", c.ready, c.total)).unwrap_or_else(|| row.ready.clone().unwrap_or("—".into()))) }
                            td { @if let Some(endpoint) = &row.endpoint { (link(endpoint)) } @else { "—" } }
                            td { (row.age.map(|a| a.to_string()).unwrap_or("—".into())) }
                            td { (reason.unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            } }
        }
    };
    layout(person, Area::Runtime, "Runtime", content)
}

/// The reason of the condition that changed last, with when.
fn last_transition(project: &Project) -> Option<String> {
    let conditions = &project.status.as_ref()?.conditions;
    let last = conditions.iter().max_by_key(|c| c.last_transition_time.0)?;
    Some(format!("{}: {}", last.type_, if last.reason.is_empty() { "—" } else { &last.reason }))
}

pub fn project(
    person: &Person<'_>,
    snapshot: &Snapshot,
    project: &Project,
    events: Result<Vec<Event>, String>,
    shown: usize,
) -> Markup {
    let status = project.status.clone().unwrap_or_default();
    let name = project.name_any();
    let namespace = project.namespace().unwrap_or_default();
    let mut events = events;
    if let Ok(list) = &mut events {
        list.sort_by_key(|e| {
            std::cmp::Reverse(e.last_timestamp.as_ref().map(|t| t.0).or(e.event_time.as_ref().map(|t| t.0)))
        });
        list.truncate(shown);
    }
    let content = html! {
        p { a href="/runtime" { "← Runtime" } }
        h1 { (name) " " small { (namespace) } }
        dl.facts {
            dt { "Runtime" } dd { (project.spec.runtime.as_str()) }
            dt { "Phase" } dd id="phase" { (status.phase.map(|p| p.as_str()).unwrap_or("—")) }
            @if let Some(version) = &status.version { dt { "Version" } dd { (version) } }
            dt { "Endpoints" } dd { @for e in &status.endpoints { (e.name) ": " (link(&e.url)) br; } @if status.endpoints.is_empty() { "—" } }
        }
        h2 { "Conditions" }
        div.scroll { table id="conditions" {
            thead { tr { th { "Type" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
            tbody { @for c in &status.conditions { tr { td { (c.type_) } td { (c.status) } td { (c.reason) } td { (c.message) } td { (c.last_transition_time.0.to_string()) } } } }
        } }
        h2 { "Components" }
        @if status.components.is_empty() { p.empty { "None reported." } }
        @else { div.scroll { table id="components" {
            thead { tr { th { "Component" } th { "Ready" } th { "Replicas" } } }
            tbody { @for c in &status.components { tr { td { (c.name) } td { (if c.ready { "yes" } else { "no" }) } td { (c.ready_replicas.unwrap_or(0)) "/" (c.replicas.unwrap_or(0)) } } } }
        } } }
        h2 { "Recent events" }
        @match &events {
            Err(message) => p.notice { (message) },
            Ok(list) if list.is_empty() => p.empty { "No recent events." },
            Ok(list) => div.scroll { table id="events" {
                thead { tr { th { "Type" } th { "Reason" } th { "Message" } th { "Count" } th { "Last seen" } } }
                tbody { @for e in list { tr { td { (e.type_.as_deref().unwrap_or("")) } td { (e.reason.as_deref().unwrap_or("")) } td { (e.message.as_deref().unwrap_or("")) } td { (e.count.unwrap_or(1)) } td { (e.last_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default()) } } } }
            } },
        }
    };
    let _ = snapshot;
    layout(person, Area::Runtime, "Project", content)
}

pub fn not_found(person: &Person<'_>, _snapshot: &Snapshot) -> Markup {
    layout(
        person,
        Area::Runtime,
        "Not found",
        html! { h1 { "Not found" } p { "No such project in your workspaces." } },
    )
}

pub fn studio(person: &Person<'_>, snapshot: &Snapshot) -> Markup {
    let cards = console::studio(&person.scope, &snapshot.workspaces, &snapshot.environments, snapshot.now);
    let content = html! {
        h1 { "Studio" }
        @for card in &cards {
            section.card data-workspace=(card.workspace) {
                h2 { (card.display_name.as_deref().unwrap_or(&card.workspace)) " " small { (card.workspace) " · " (card.namespace) " · " (role(card.role)) } }
                h3 { "Studio server" }
                p.studio {
                    @if !card.studio.enabled { "Disabled." }
                    @else {
                        @if card.studio.stopped { "Stopped. " }
                        @if let Some((status, reason)) = &card.studio.state { span class=(format!("phase {}", if status == "True" { "Running" } else { "Pending" })) { (reason) } " " }
                        @if let Some(endpoint) = &card.studio.endpoint { (link(endpoint)) }
                    }
                }
                h3 { "Git repositories" }
                @if card.repositories.is_empty() { p.empty { "None." } }
                @else { ul { @for r in &card.repositories { li { strong { (r.name) } " " code { (r.url) } " @ " code { (r.r#ref) } } } } }
                h3 { "Variables" }
                @if card.variables.is_empty() { p.empty { "None." } }
                @else { div.scroll { table.variables { tbody { @for (k, v) in &card.variables { tr { th { code { (k) } } td { code { (v) } } } } } } } }
                h3 { "Connections and secrets" }
                p.hint { "Names only: values stay in Kubernetes Secrets." }
                ul.secrets {
                    @for c in &card.connections { li { span.badge { "connection" } " " code { (c.name) } @if let Some(d) = &c.description { " — " (d) } } }
                    @for s in &card.secrets { li { span.badge { "secret" } " " code { (s.name) } @if let Some(d) = &s.description { " — " (d) } } }
                    @if card.connections.is_empty() && card.secrets.is_empty() { li.empty { "None." } }
                }
                h3 { "Python environments" }
                @if card.environments.is_empty() { p.empty { "None requested." } }
                @else { div.scroll { table.environments {
                    thead { tr { th { "Name" } th { "Python" } th { "State" } th { "Requested by" } th { "Approved by" } } }
                    tbody { @for e in &card.environments { tr { td { (e.name) } td { (e.python) } td { span class=(format!("phase {}", e.state)) { (e.state) } @if let Some(r) = &e.reason { " " small { (r) } } } td { (e.requester.as_deref().unwrap_or("—")) } td { (e.approver.as_deref().unwrap_or("—")) } } } }
                } } }
            }
        }
    };
    layout(person, Area::Studio, "Studio", content)
}

pub fn admin(person: &Person<'_>, snapshot: &Snapshot, identity: &Config) -> Markup {
    let cards = console::admin(
        person,
        &snapshot.users,
        &snapshot.workspaces,
        &snapshot.projects,
        &snapshot.environments,
        snapshot.now,
        identity,
    );
    let content = html! {
        h1 { "Admin" }
        @if cards.is_empty() { p.empty id="not-admin" { "You administer no workspace." } }
        @for card in &cards {
            section.card data-workspace=(card.workspace) {
                h2 { (card.workspace) " " small { (card.namespace) } }
                h3 { "Members" }
                div.scroll { table.members {
                    thead { tr { th { "Member" } th { "Role" } th { "Binds" } } }
                    tbody { @for m in &card.members { tr {
                        td { @if let Some(u) = &m.user { "user " strong { (u) } } @if let Some(t) = &m.team { "team " strong { (t) } } }
                        td { (role(Some(m.role))) }
                        td { @if m.people.is_empty() { span.empty { "nobody" } } @else { (m.people.join(", ")) } }
                    } } }
                } }
                @if !card.teams.is_empty() {
                    h3 { "Teams" }
                    ul { @for (team, people) in &card.teams { li { strong { (team) } ": " (if people.is_empty() { "nobody".to_string() } else { people.join(", ") }) } } }
                }
                h3 { "Pending environment approvals" }
                @if card.pending.is_empty() { p.empty { "None." } }
                @else { ul.pending { @for e in &card.pending { li { strong { (e.name) } " requested by " (e.requester.as_deref().unwrap_or("unknown")) " · python " (e.python) } } } }
                h3 { "Access" }
                p { "Studio server: " (if card.studio_access.is_empty() { "nobody".to_string() } else { card.studio_access.join(", ") }) }
                @if !card.app_access.is_empty() {
                    div.scroll { table.access {
                        thead { tr { th { "Project" } th { "Runtime" } th { "May open" } } }
                        tbody { @for a in &card.app_access { tr { td { (a.project) } td { (a.runtime) } td { (if a.people.is_empty() { "nobody".to_string() } else { a.people.join(", ") }) } } } }
                    } }
                }
                h3 { "Usage against quota" }
                @if card.usage.is_empty() { p.empty { "Not counted yet." } }
                @else { div.scroll { table.usage {
                    tbody { @for u in &card.usage { tr {
                        th { (u.resource) }
                        td.bar { @if let Some(p) = u.percent { meter min="0" max="100" low="70" high="90" optimum="0" value=(p.min(100)) { (p) "%" } } }
                        td { (u.used.as_deref().unwrap_or("—")) " / " (u.hard) @if let Some(p) = u.percent { " (" (p) "%)" } }
                    } } }
                } } }
                h3 { "Projects by runtime and phase" }
                @if card.projects.is_empty() { p.empty { "No project." } }
                @else { (by_phase(&card.projects)) }
            }
        }
    };
    layout(person, Area::Admin, "Admin", content)
}

fn by_phase(counts: &BTreeMap<(String, String), usize>) -> Markup {
    let mut runtimes: Vec<&String> = counts.keys().map(|(r, _)| r).collect();
    runtimes.dedup();
    let mut phases: Vec<&String> = counts.keys().map(|(_, p)| p).collect();
    phases.sort();
    phases.dedup();
    html! {
        div.scroll { table.phases {
            thead { tr { th { "Runtime" } @for p in &phases { th { (p) } } } }
            tbody { @for r in &runtimes { tr { th { (r) } @for p in &phases { td { (counts.get(&((*r).clone(), (*p).clone())).copied().unwrap_or(0)) } } } } }
        } }
    }
}
