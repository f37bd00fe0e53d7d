//! Publishing results where people and monitoring look: a Prometheus textfile, a Pushgateway,
//! a Slack-compatible webhook, and the GitHub Actions step summary. A sink that fails is
//! reported and never turns a result into a pass.

pub mod metrics;

use std::path::{Path, PathBuf};

use crate::report::{RunReport, render};

/// Where to publish a run.
#[derive(Clone, Debug, Default)]
pub struct Sinks {
    pub metrics_file: Option<PathBuf>,
    pub pushgateway: Option<String>,
    /// A secret (it authorizes posting): taken from the environment only.
    pub webhook: Option<String>,
    pub github_summary: Option<PathBuf>,
}

fn client() -> Result<reqwest::Client, String> {
    crate::store::install_tls_provider();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Writes atomically (a temp file of this process, then rename), as node_exporter's textfile
/// collector expects. A last-success sample of an earlier run that this run does not
/// replace is carried over, so `time() - last_success` keeps growing while drills fail.
fn write_textfile(path: &Path, body: &str) -> Result<(), String> {
    const FAMILY: &str = "pgdrill_drill_last_success_timestamp_seconds";
    let mut body = body.to_string();
    if let Ok(previous) = std::fs::read_to_string(path) {
        let kept: Vec<&str> = previous
            .lines()
            .filter(|l| l.starts_with(&format!("{FAMILY}{{")))
            .filter(|l| {
                let labels = &l[..l.rfind(' ').unwrap_or(l.len())];
                !body.lines().any(|n| n.starts_with(labels))
            })
            .collect();
        let anchor = format!("# TYPE {FAMILY} gauge\n");
        if !kept.is_empty()
            && let Some(at) = body.find(&anchor)
        {
            body.insert_str(at + anchor.len(), &(kept.join("\n") + "\n"));
        }
    }
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("prom.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, body).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A webhook URL without its path and query, which may hold the token.
fn redact(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")))
        .unwrap_or_else(|_| "the webhook".into())
}

/// One line per sink that failed (empty when every sink worked).
pub async fn publish(sinks: &Sinks, reports: &[RunReport]) -> Vec<String> {
    let mut failures = Vec::new();
    let now = jiff::Timestamp::now();
    if let Some(path) = &sinks.metrics_file
        && let Err(e) = write_textfile(path, &metrics::render(reports, now))
    {
        failures.push(format!("metrics file: {e}"));
    }
    if let Some(url) = &sinks.pushgateway {
        for r in reports {
            let target = format!(
                "{}/metrics/job/pgdrill/scenario/{}",
                url.trim_end_matches('/'),
                r.scenario
            );
            let sent = async {
                let resp = client()?
                    .put(&target)
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(metrics::render(std::slice::from_ref(r), now))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                resp.error_for_status()
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = sent.await {
                failures.push(format!("pushgateway {}: {e}", redact(url)));
            }
        }
    }
    if let Some(url) = &sinks.webhook {
        for r in reports {
            let body = serde_json::json!({ "text": render::chat_message(r) });
            let sent = async {
                let resp = client()?
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| e.without_url().to_string())?;
                resp.error_for_status()
                    .map(|_| ())
                    .map_err(|e| e.without_url().to_string())
            };
            if let Err(e) = sent.await {
                failures.push(format!("webhook {}: {e}", redact(url)));
            }
        }
    }
    if let Some(path) = &sinks.github_summary {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                reports
                    .iter()
                    .try_for_each(|r| f.write_all(render::markdown(r).as_bytes()))
            });
        if let Err(e) = appended {
            failures.push(format!("GitHub step summary {}: {e}", path.display()));
        }
    }
    failures
}
