//! Where a run's results go: report files per scenario, then the sinks (metrics, Pushgateway,
//! webhook, step summary) and the history ConfigMap.

use std::path::{Path, PathBuf};

use super::RunOptions;
use super::prepare::Prepared;
use crate::report::{RunReport, render};
use crate::scenario::types::ReportFormat;

/// The formats and folder of one scenario's reports.
pub fn destination(p: &Prepared, opts: &RunOptions, run_id: &str) -> (Vec<ReportFormat>, PathBuf) {
    let settings = &p.loaded.scenario.report;
    let dir = opts
        .report_dir
        .clone()
        .or_else(|| settings.dir.clone())
        .unwrap_or_else(|| PathBuf::from("pgdrill-reports"))
        .join(format!("{}-{run_id}", p.loaded.scenario.name));
    (settings.formats.clone(), dir)
}

pub fn write(
    dir: &Path,
    report: &RunReport,
    formats: &[ReportFormat],
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for f in formats {
        let (name, body) = match f {
            ReportFormat::Json => (
                "report.json",
                serde_json::to_string_pretty(report).expect("serializes") + "\n",
            ),
            ReportFormat::Markdown => ("report.md", render::markdown(report)),
            ReportFormat::Junit => ("junit.xml", render::junit(report)),
        };
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Publishes to every sink; returns what failed.
pub async fn publish(
    opts: &RunOptions,
    reports: &[RunReport],
    kube: Option<kube::Client>,
) -> Vec<String> {
    let mut failures = crate::publish::publish(&opts.sinks, reports).await;
    if let Some(history) = &opts.history {
        let recorded = async {
            let client = match kube {
                Some(c) => c,
                None => crate::k8s::client().await?,
            };
            let ns = history
                .namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_string());
            crate::k8s::history::record(&client, &ns, &history.name, reports).await
        };
        if let Err(e) = recorded.await {
            failures.push(format!("history: {e}"));
        }
    }
    failures
}
