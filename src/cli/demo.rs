//! `pgdrill demo`: every feature on one machine in a few minutes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::baseline::Tables;
use crate::exit::Failure;
use crate::pg::baseline::record;
use crate::sandbox::{self, StoreKind, UpOptions};

use super::Output;
use super::drills::render_finished;
use crate::publish::Sinks;
use crate::run::{RunOptions, new_run_id};
use crate::scenario::load;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the sandbox, scenario and reports go (default: a new folder in the temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

fn step(s: &str) {
    eprintln!("\n== {s}");
}

fn err(e: impl std::fmt::Display) -> Failure {
    Failure::error(e.to_string())
}

/// Sandbox up → backup → workload → backup → baseline (restore point) → more workload →
/// drills: latest, PITR to the baseline, and a target past the archive that must fail →
/// reports → sandbox down.
pub async fn demo(args: DemoArgs) -> Result<i32, Failure> {
    let dir = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("pgdrill-demo-{}", new_run_id())));
    step(&format!(
        "sandbox in {}: S3 endpoint on loopback, PostgreSQL archiving with barman-cloud",
        dir.display()
    ));
    let st = sandbox::up(&UpOptions {
        dir: dir.clone(),
        name: "app".into(),
        store: StoreKind::S3,
        bucket: "pgdrill".into(),
    })
    .await
    .map_err(err)?;
    let result = async {
        step("base backup, workload, second backup");
        println!("backup {}", sandbox::backup(&dir).await.map_err(err)?);
        sandbox::workload(&dir, 2, 1000, Duration::from_millis(1100)).await.map_err(err)?;
        println!("backup {}", sandbox::backup(&dir).await.map_err(err)?);
        step("baseline: exact counts and a named restore point");
        let b = record(&st.active().url(), "demo", &Tables::All, true, true).await.map_err(Failure::error)?;
        b.save(&dir.join("baseline.json")).map_err(Failure::error)?;
        println!("baseline {} at LSN {}: {:?}", b.name, b.lsn, b.counts);
        step("more workload after the baseline");
        for r in sandbox::workload(&dir, 2, 1000, Duration::from_millis(1100)).await.map_err(err)? {
            println!("batch {} committed at {} ({:?})", r.batch, r.committed_at, r.counts);
        }
        let scenario = format!(
            "apiVersion: pgdrill/v1\nname: demo\nsource:\n{}lineages: [app-v1]\ntargets:\n  - latest\n  - baseline: demo\n  \
             - time: \"2999-01-01T00:00:00Z\"\n    expect: {{verdict: fail, cause: {beyond}}}\n\
             checks:\n  baseline: baseline.json\n  sql:\n    - name: every event has its account\n      \
             query: select count(*) from events e left join accounts a on a.id = e.account_id where a.id is null\n      \
             expect: 0\nrto: 10m\n",
            st.store_block_yaml(),
            beyond = crate::outcome::Cause::TargetBeyondArchive,
        );
        let file = dir.join("demo.yaml");
        std::fs::write(&file, scenario).map_err(err)?;
        step(&format!("drills from {}", file.display()));
        let loaded = load(&file).map_err(Failure::usage)?;
        let opts = RunOptions {
            report_dir: Some(dir.join("reports")),
            concurrency: 1,
            sinks: Sinks { metrics_file: Some(dir.join("reports/metrics.prom")), ..Default::default() },
            ..Default::default()
        };
        let finished = crate::run::run(vec![loaded], &opts).await?;
        render_finished(&finished, Output::Table);
        Ok(finished.exit_code())
    }
    .await;
    step("sandbox down");
    let stopped = sandbox::down(&dir).await.map_err(err)?;
    println!("stopped: {}", stopped.join(", "));
    println!("scenario, baseline and reports kept in {}", dir.display());
    result
}
