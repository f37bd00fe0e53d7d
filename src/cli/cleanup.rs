//! `pgdrill cleanup`: sweep drill objects that outlived their run.

use std::time::Duration;

use clap::Args;

use crate::exit::{self, Failure};
use crate::scenario::types::parse_duration;

use super::Output;

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Also sweep drill objects created longer ago than this (30m, 2h, 1d), expired or not.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<Duration>,
    /// Only these namespaces (repeatable): for fixed drill namespaces, where pgdrill may not
    /// list namespaces. By default the whole cluster is swept.
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// List what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn cleanup(args: CleanupArgs) -> Result<i32, Failure> {
    let client = crate::k8s::client().await.map_err(Failure::error)?;
    let scope = if args.namespaces.is_empty() {
        crate::k8s::cleanup::Scope::Cluster
    } else {
        crate::k8s::cleanup::Scope::Namespaces(args.namespaces.clone())
    };
    let swept = crate::k8s::cleanup::sweep(&client, &scope, args.older_than, args.dry_run)
        .await
        .map_err(Failure::error)?;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "schema": "pgdrill.cleanup/v1",
                "dry_run": args.dry_run,
                "swept": swept,
            }))
            .expect("serializes")
        ),
        Output::Table => {
            let verb = if args.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            for s in &swept {
                println!("{verb} {} {}/{} ({})", s.kind, s.namespace, s.name, s.why);
            }
            if swept.is_empty() {
                println!("nothing to sweep");
            }
        }
    }
    Ok(exit::OK)
}
