//! `pgdrill history`: the drills recorded in the history ConfigMap, oldest first.

use clap::Args;

use crate::exit::{self, Failure};

use super::Output;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The ConfigMap `run --history-configmap` writes.
    #[arg(long, value_name = "NAME", env = "PGDRILL_HISTORY_CONFIGMAP")]
    pub configmap: String,
    /// Its namespace (default: the kubeconfig's or the pod's namespace).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this scenario.
    #[arg(long)]
    pub scenario: Option<String>,
    /// The last N drills.
    #[arg(long, default_value_t = 20)]
    pub last: usize,
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn history(args: HistoryArgs) -> Result<i32, Failure> {
    let client = crate::k8s::client().await.map_err(Failure::error)?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let mut entries = crate::k8s::history::read(&client, &ns, &args.configmap)
        .await
        .map_err(Failure::error)?;
    entries.retain(|e| args.scenario.as_ref().is_none_or(|s| *s == e.scenario));
    let entries = &entries[entries.len().saturating_sub(args.last)..];
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": "pgdrill.history/v1", "entries": entries
            }))
            .expect("serializes")
        ),
        Output::Table => {
            let mut table = comfy_table::Table::new();
            table
                .load_preset(comfy_table::presets::NOTHING)
                .set_header([
                    "finished", "scenario", "lineage", "target", "verdict", "RTO s", "rows",
                ]);
            for e in entries {
                let rows: i64 = e.rows.values().sum();
                table.add_row([
                    e.finished_at.strftime("%Y-%m-%d %H:%M").to_string(),
                    e.scenario.clone(),
                    e.lineage.clone(),
                    e.target.clone(),
                    match &e.cause {
                        Some(c) => format!("{} ({c})", e.verdict),
                        None => e.verdict.clone(),
                    },
                    format!("{:.1}", e.rto_seconds),
                    if e.rows.is_empty() {
                        "-".into()
                    } else {
                        rows.to_string()
                    },
                ]);
            }
            if entries.is_empty() {
                println!("no drills recorded in {ns}/{}", args.configmap);
            } else {
                println!("{table}");
            }
        }
    }
    Ok(exit::OK)
}
