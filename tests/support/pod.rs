//! A container's environment as the kubelet would give it, for running the generated
//! configuration as local processes: values from Secrets and ConfigMaps, `$(VAR)` references to
//! earlier variables expanded (`$$` is a literal `$`), then the pod's paths and Service addresses
//! replaced by this machine's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

/// What the pod would read: Secrets and ConfigMaps by name and key, and how pod paths and
/// Service addresses map to this machine.
#[derive(Default)]
pub struct PodWorld {
    /// Secret name → key → value.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// ConfigMap name → key → value.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Pod path prefix → local path, longest first when applied.
    pub paths: Vec<(String, String)>,
    /// `host:port` as the pod sees it → `host:port` here.
    pub addresses: Vec<(String, String)>,
}

impl PodWorld {
    /// A pod path here.
    pub fn path(&self, value: &str) -> String {
        replace_once(value, &self.paths)
    }

    /// A value with this machine's paths and addresses.
    pub fn local(&self, value: &str) -> String {
        replace_once(&self.path(value), &self.addresses)
    }

    /// The container's environment, in order, as the process here gets it. Panics, naming it,
    /// on a reference to a Secret or ConfigMap key the world does not have (the kubelet would
    /// refuse to start the container), unless the reference is optional.
    pub fn env(&self, container: &Container) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = Vec::new();
        for source in container.env_from.iter().flatten() {
            if let Some(reference) = &source.config_map_ref {
                match self.config_maps.get(&reference.name) {
                    Some(map) => vars.extend(map.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    None => assert!(reference.optional == Some(true), "no ConfigMap {}", reference.name),
                }
            }
            assert!(source.secret_ref.is_none(), "envFrom a Secret is not modelled");
        }
        for var in container.env.iter().flatten() {
            let value = if let Some(value) = &var.value {
                expand(value, &vars)
            } else {
                let from = var.value_from.as_ref().expect("value or valueFrom");
                let found = if let Some(r) = &from.secret_key_ref {
                    self.secrets.get(&r.name).and_then(|m| m.get(&r.key)).cloned().or_else(|| {
                        assert!(r.optional == Some(true), "{}: no Secret key {}/{}", var.name, r.name, r.key);
                        None
                    })
                } else if let Some(r) = &from.config_map_key_ref {
                    self.config_maps.get(&r.name).and_then(|m| m.get(&r.key)).cloned().or_else(|| {
                        assert!(
                            r.optional == Some(true),
                            "{}: no ConfigMap key {}/{}",
                            var.name,
                            r.name,
                            r.key
                        );
                        None
                    })
                } else {
                    panic!("{}: only Secret and ConfigMap keys are modelled", var.name)
                };
                match found {
                    Some(value) => value,
                    None => continue,
                }
            };
            vars.retain(|(name, _)| *name != var.name);
            vars.push((var.name.clone(), value));
        }
        vars.into_iter().map(|(name, value)| (name, self.local(&value))).collect()
    }
}

/// Every occurrence of a `from` in `value` replaced by its `to`, in one pass (what was put in is
/// never replaced again), the longest `from` first where several match.
fn replace_once(value: &str, pairs: &[(String, String)]) -> String {
    let mut pairs = pairs.to_vec();
    pairs.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
    let mut out = String::new();
    let mut rest = value;
    'scan: while let Some(c) = rest.chars().next() {
        for (from, to) in &pairs {
            if let Some(after) = rest.strip_prefix(from.as_str()) {
                out.push_str(to);
                rest = after;
                continue 'scan;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The kubelet's expansion of `$(NAME)` to an earlier variable's value; `$$` is `$`, and a
/// reference to an unknown name stays as written.
pub fn expand(value: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(close) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + close];
            match vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&tail[..3 + close]),
            }
            rest = &tail[3 + close..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn paths_are_replaced_once() {
    let pairs = vec![
        ("/opt/data".to_string(), "/tmp/x/data".to_string()),
        ("/tmp".to_string(), "/tmp/x/tmp".to_string()),
    ];
    assert_eq!(replace_once("/opt/data/logs:/tmp/a", &pairs), "/tmp/x/data/logs:/tmp/x/tmp/a");
}

#[test]
fn expansion_follows_the_kubelet() {
    let vars = vec![("A".to_string(), "x".to_string())];
    assert_eq!(expand("p:$(A)@h", &vars), "p:x@h");
    assert_eq!(expand("$$(A) $(B) $", &vars), "$(A) $(B) $");
}
