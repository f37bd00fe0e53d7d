//! Run history in a ConfigMap (`history.jsonl`, one line per drill), so week-over-week trends
//! of RTO and row counts survive the CronJob's pods; and Kubernetes Events on the source
//! Cluster, where `kubectl describe cluster` shows them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use super::{describe, is_not_found};
use crate::outcome::CheckKind;
use crate::report::{RunReport, Verdict};

pub const HISTORY_KEY: &str = "history.jsonl";
/// Entries kept (a weekly run of a few drills fits years).
pub const MAX_ENTRIES: usize = 2000;
/// ConfigMaps hold at most 1 MiB; stay well below.
const MAX_BYTES: usize = 900 * 1024;

/// One drill of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub run_id: String,
    pub finished_at: jiff::Timestamp,
    pub scenario: String,
    pub lineage: String,
    pub target: String,
    pub verdict: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub rto_seconds: f64,
    /// Row counts as restored (`table → rows`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows: BTreeMap<String, i64>,
}

pub fn entries(report: &RunReport) -> Vec<HistoryEntry> {
    report
        .drills
        .iter()
        .map(|d| HistoryEntry {
            run_id: report.run_id.clone(),
            finished_at: report.finished_at,
            scenario: report.scenario.clone(),
            lineage: d.lineage.clone(),
            target: d.target.clone(),
            verdict: d.effective().as_str().to_string(),
            cause: d.cause.map(|c| c.as_str().to_string()),
            rto_seconds: (d.durations.rto * 10.0).round() / 10.0,
            rows: d
                .checks
                .iter()
                .filter(|c| c.kind == CheckKind::RowCount)
                .filter_map(|c| {
                    let table = c.name.strip_prefix("rows in ")?;
                    Some((table.to_string(), c.actual.parse().ok()?))
                })
                .collect(),
        })
        .collect()
}

/// `existing` plus `new`, oldest dropped past the entry and size limits (pure).
pub fn append(existing: &str, new: &[HistoryEntry]) -> String {
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines.extend(
        new.iter()
            .map(|e| serde_json::to_string(e).expect("serializes")),
    );
    let mut start = lines.len().saturating_sub(MAX_ENTRIES);
    while start < lines.len()
        && lines[start..].iter().map(|l| l.len() + 1).sum::<usize>() > MAX_BYTES
    {
        start += 1;
    }
    lines[start..].iter().map(|l| format!("{l}\n")).collect()
}

pub fn parse(text: &str) -> Vec<HistoryEntry> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Reads the history ConfigMap (empty when it does not exist yet).
pub async fn read(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Vec<HistoryEntry>, String> {
    let text = super::configmap::read_key(client, ns, name, HISTORY_KEY).await?;
    Ok(parse(text.as_deref().unwrap_or("")))
}

/// Appends the runs' drills to the ConfigMap, creating it if needed.
pub async fn record(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reports: &[RunReport],
) -> Result<(), String> {
    let new: Vec<HistoryEntry> = reports.iter().flat_map(entries).collect();
    super::configmap::update_key(client, ns, name, HISTORY_KEY, |old| {
        append(old.unwrap_or(""), &new)
    })
    .await
}

/// An Event on the source Cluster summing up a run: `DrillPassed` (Normal), `DrillFailed` or
/// `DrillError` (Warning).
pub fn cluster_event(report: &RunReport, ns: &str, cluster: &str, now: jiff::Timestamp) -> Event {
    let s = &report.summary;
    let (type_, reason) = if s.fail > 0 {
        ("Warning", "DrillFailed")
    } else if s.error > 0 {
        ("Warning", "DrillError")
    } else {
        ("Normal", "DrillPassed")
    };
    let detail: Vec<String> = report
        .drills
        .iter()
        .map(|d| {
            let v = d.effective();
            match (&d.cause, v) {
                (Some(c), Verdict::Fail | Verdict::Error) => {
                    format!("{} → {}: {} ({c})", d.lineage, d.target, v.as_str())
                }
                _ => format!("{} → {}: {}", d.lineage, d.target, v.as_str()),
            }
        })
        .collect();
    let mut message = format!(
        "pgdrill {}: {} pass, {} fail, {} error; {}",
        report.scenario,
        s.pass,
        s.fail,
        s.error,
        detail.join("; ")
    );
    if message.len() > 1000 {
        let cut = (0..=1000)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        message.truncate(cut);
    }
    let time = Time(now);
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{cluster}.pgdrill.{}",
                report.run_id.to_ascii_lowercase()
            )),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("postgresql.cnpg.io/v1".into()),
            kind: Some("Cluster".into()),
            name: Some(cluster.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        type_: Some(type_.into()),
        reason: Some(reason.into()),
        message: Some(message),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some("Drill".into()),
        reporting_component: Some("pgdrill".into()),
        reporting_instance: Some("pgdrill".into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("pgdrill".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn post_cluster_event(
    client: &kube::Client,
    report: &RunReport,
    ns: &str,
    cluster: &str,
) -> Result<(), String> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let event = cluster_event(report, ns, cluster, jiff::Timestamp::now());
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Err(format!("namespace {ns} not found for the Event")),
        Err(e) => Err(format!("Event on Cluster {ns}/{cluster}: {}", describe(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> HistoryEntry {
        HistoryEntry {
            run_id: format!("r{i}"),
            finished_at: jiff::Timestamp::UNIX_EPOCH,
            scenario: "s".into(),
            lineage: "app-v1".into(),
            target: "latest".into(),
            verdict: "pass".into(),
            cause: None,
            rto_seconds: 1.5,
            rows: [("public.t".to_string(), 10)].into(),
        }
    }

    #[test]
    fn history_keeps_the_newest_entries_within_limits() {
        let first = append("", &[entry(1), entry(2)]);
        let both = append(&first, &[entry(3)]);
        let parsed = parse(&both);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2], entry(3));
        let many: Vec<HistoryEntry> = (0..MAX_ENTRIES + 5).map(entry).collect();
        let capped = parse(&append(&both, &many));
        assert_eq!(capped.len(), MAX_ENTRIES);
        assert_eq!(
            capped.last().unwrap().run_id,
            format!("r{}", MAX_ENTRIES + 4)
        );
    }
}
