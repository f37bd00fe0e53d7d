//! The safety invariants, checked in code before anything is applied: a drill cluster never
//! archives WAL or writes backups, every object is labelled and expires, names are valid.

use super::manifest::{
    DRILL_ID_LABEL, EXPIRES_ANNOTATION, MANAGED_BY, MAX_CLUSTER_NAME, Manifests,
};
use super::types::ObjectMeta;

fn check_meta(kind: &str, m: &ObjectMeta, problems: &mut Vec<String>) {
    let name = m.name.as_deref().unwrap_or("");
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problems.push(format!(
            "{kind} name {name:?} is not a DNS label of at most 63 characters"
        ));
    }
    if m.labels.get(MANAGED_BY.0).map(String::as_str) != Some(MANAGED_BY.1) {
        problems.push(format!(
            "{kind} {name} lacks the label {}={}",
            MANAGED_BY.0, MANAGED_BY.1
        ));
    }
    if !m.labels.contains_key(DRILL_ID_LABEL) {
        problems.push(format!("{kind} {name} lacks the label {DRILL_ID_LABEL}"));
    }
    if m.annotations
        .get(EXPIRES_ANNOTATION)
        .is_none_or(|v| v.parse::<jiff::Timestamp>().is_err())
    {
        problems.push(format!(
            "{kind} {name} lacks a valid {EXPIRES_ANNOTATION} annotation"
        ));
    }
}

/// Every broken invariant, or Ok.
pub fn check(m: &Manifests) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let spec = &m.cluster.spec;
    if spec.backup.is_some() {
        problems.push("the drill cluster has spec.backup: it would write backups".into());
    }
    for p in &spec.plugins {
        problems.push(format!(
            "the drill cluster enables plugin {} (isWALArchiver {:?}): it could archive WAL",
            p.name, p.is_wal_archiver
        ));
    }
    if spec
        .bootstrap
        .as_ref()
        .and_then(|b| b.recovery.as_ref())
        .is_none()
    {
        problems.push("the drill cluster has no bootstrap.recovery".into());
    }
    if spec.instances != Some(1) {
        problems.push("a drill cluster runs exactly one instance".into());
    }
    if let Some(os) = &m.object_store
        && os.spec.configuration.server_name.is_some()
    {
        problems.push("the ObjectStore sets serverName, which its CRD forbids".into());
    }
    check_meta("Cluster", &m.cluster.metadata, &mut problems);
    if m.cluster
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.len() > MAX_CLUSTER_NAME)
    {
        problems.push(format!(
            "the Cluster name is longer than {MAX_CLUSTER_NAME} characters: its recovery Job name would exceed 63"
        ));
    }
    if let Some(os) = &m.object_store {
        check_meta("ObjectStore", &os.metadata, &mut problems);
    }
    if let Some(ns) = &m.namespace {
        check_meta("Namespace", &ns.metadata, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
