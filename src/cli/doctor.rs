//! `pgdrill doctor`: what is installed, what is missing, and how to get it.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::exit::{self, Failure};
use crate::tools;

use super::Output;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long, short, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Serialize)]
struct Check {
    component: &'static str,
    required_for: &'static str,
    found: bool,
    path: Option<PathBuf>,
    version: Option<String>,
    hint: &'static str,
}

fn check(
    component: &'static str,
    required_for: &'static str,
    path: Option<PathBuf>,
    probe: Option<PathBuf>,
    hint: &'static str,
) -> Check {
    let version = probe.as_deref().and_then(tools::version_of);
    Check {
        component,
        required_for,
        found: path.is_some(),
        path,
        version,
        hint,
    }
}

pub fn doctor(args: DoctorArgs) -> Result<i32, Failure> {
    let pg = tools::pg_bin();
    let barman = tools::barman_bin();
    let moto = tools::moto_server();
    let azurite = tools::azurite_blob();
    let checks = vec![
        check(
            "postgresql",
            "local drills, sandbox",
            pg.clone(),
            pg.as_ref().map(|p| p.join("pg_ctl")),
            "apt-get install -y postgresql (or set PGDRILL_PG_BIN)",
        ),
        check(
            "barman-cloud",
            "local drills, sandbox",
            barman.clone(),
            barman.as_ref().map(|p| p.join("barman-cloud-backup")),
            "scripts/prereqs.sh (pip barman[cloud,azure] in .tools/barman)",
        ),
        check(
            "s3-endpoint (moto)",
            "sandbox, tests",
            moto.clone(),
            None,
            "scripts/prereqs.sh (pip moto[server] in .tools/moto)",
        ),
        check(
            "azure-endpoint (azurite)",
            "Azure sandbox, tests",
            azurite.clone(),
            None,
            "scripts/prereqs.sh (npm azurite in .tools/azurite)",
        ),
        check(
            "postgres user",
            "running PostgreSQL as root",
            tools::postgres_ids().map(|_| PathBuf::from("/etc/passwd")),
            None,
            "create a 'postgres' user (the postgresql package does)",
        ),
    ];
    let required_missing =
        checks.iter().take(2).any(|c| !c.found) || (tools::is_root() && !checks[4].found);
    match args.output {
        Output::Json => {
            let doc = serde_json::json!({ "schema": "pgdrill.doctor/v1", "ok": !required_missing, "checks": checks });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serializes")
            );
        }
        Output::Table => {
            for c in &checks {
                let mark = if c.found { "ok     " } else { "MISSING" };
                let detail = match (&c.version, &c.path) {
                    (Some(v), _) => v.clone(),
                    (None, Some(p)) => p.display().to_string(),
                    (None, None) => format!("install: {}", c.hint),
                };
                println!("{mark} {:<26} {detail}   [{}]", c.component, c.required_for);
            }
            if let Some(dir) = tools::tools_dir() {
                println!("tools folder: {}", dir.display());
            }
        }
    }
    if required_missing {
        return Err(Failure::error(
            "required prerequisites are missing; run scripts/prereqs.sh",
        ));
    }
    Ok(exit::OK)
}
