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
    /// The parent folder drills will use (as `run --work-dir`).
    #[arg(long, env = "PGDRILL_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
}

#[derive(Serialize)]
struct Check {
    component: &'static str,
    required_for: &'static str,
    found: bool,
    path: Option<PathBuf>,
    version: Option<String>,
    /// Why it is not usable, when it was found but cannot run as a drill runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    hint: &'static str,
}

/// A tool folder found at `path`, usable when every program runs as PostgreSQL's user.
fn tool(
    component: &'static str,
    path: Option<PathBuf>,
    programs: &[PathBuf],
    hint: &'static str,
) -> Check {
    let runs: Result<Vec<String>, String> = programs
        .iter()
        .map(|p| tools::runs_as_postgres(p))
        .collect();
    let (version, problem) = match (&path, runs) {
        (None, _) => (None, None),
        (Some(_), Ok(v)) => (v.into_iter().next(), None),
        (Some(_), Err(e)) => (None, Some(e)),
    };
    Check {
        component,
        required_for: "local drills, sandbox",
        found: path.is_some() && problem.is_none(),
        path,
        version,
        problem,
        hint,
    }
}

fn present(
    component: &'static str,
    required_for: &'static str,
    path: Option<PathBuf>,
    hint: &'static str,
) -> Check {
    Check {
        component,
        required_for,
        found: path.is_some(),
        path,
        version: None,
        problem: None,
        hint,
    }
}

/// The work folder: a drill's folder under it must be usable by PostgreSQL's user.
fn work_dir(dir: PathBuf) -> Check {
    let probe = dir.join(format!("pgdrill-doctor-{}", std::process::id()));
    let problem = std::fs::create_dir(&probe)
        .map_err(|e| format!("creating {}: {e}", probe.display()))
        .and_then(|()| tools::give_to_postgres(&probe).map_err(|e| e.to_string()))
        .and_then(|()| tools::postgres_can_use(&probe))
        .err();
    let _ = std::fs::remove_dir(&probe);
    Check {
        component: "work folder",
        required_for: "local drills",
        found: problem.is_none(),
        path: Some(dir),
        version: None,
        problem,
        hint: "--work-dir (or PGDRILL_WORK_DIR) on a folder PostgreSQL's user can enter",
    }
}

fn checks(args: &DoctorArgs) -> Vec<Check> {
    let pg = tools::pg_bin();
    let barman = tools::barman_bin();
    let pg_programs: Vec<PathBuf> = pg
        .iter()
        .flat_map(|p| [p.join("pg_ctl"), p.join("postgres")])
        .collect();
    let barman_programs: Vec<PathBuf> = barman
        .iter()
        .flat_map(|b| {
            [
                b.join("barman-cloud-restore"),
                b.join("barman-cloud-wal-restore"),
            ]
        })
        .collect();
    vec![
        tool(
            "postgresql",
            pg.clone(),
            &pg_programs,
            "apt-get install -y postgresql (or set PGDRILL_PG_BIN)",
        ),
        tool(
            "barman-cloud",
            barman.clone(),
            &barman_programs,
            "scripts/prereqs.sh (pip barman[cloud,azure] in .tools/barman)",
        ),
        present(
            "s3-endpoint (moto)",
            "sandbox, tests",
            tools::moto_server(),
            "scripts/prereqs.sh (pip moto[server] in .tools/moto)",
        ),
        present(
            "azure-endpoint (azurite)",
            "Azure sandbox, tests",
            tools::azurite_blob(),
            "scripts/prereqs.sh (npm azurite in .tools/azurite)",
        ),
        present(
            "postgres user",
            "running PostgreSQL as root",
            tools::postgres_ids().map(|_| PathBuf::from("/etc/passwd")),
            "create a 'postgres' user (the postgresql package does)",
        ),
        work_dir(
            args.work_dir
                .clone()
                .unwrap_or_else(crate::drill::default_work_root),
        ),
    ]
}

fn print_table(checks: &[Check]) {
    for c in checks {
        let mark = if c.found {
            "ok     "
        } else if c.path.is_some() {
            "BROKEN "
        } else {
            "MISSING"
        };
        let detail = match (&c.problem, &c.version, &c.path) {
            (Some(p), _, _) => p.clone(),
            (None, Some(v), _) => v.clone(),
            (None, None, Some(p)) => p.display().to_string(),
            (None, None, None) => format!("install: {}", c.hint),
        };
        println!("{mark} {:<26} {detail}   [{}]", c.component, c.required_for);
    }
    if let Some(dir) = tools::tools_dir() {
        println!("tools folder: {}", dir.display());
    }
}

pub fn doctor(args: DoctorArgs) -> Result<i32, Failure> {
    let checks = checks(&args);
    let required_missing = checks.iter().take(2).any(|c| !c.found)
        || (tools::is_root() && !checks[4].found)
        || !checks[5].found;
    match args.output {
        Output::Json => {
            let doc = serde_json::json!({ "schema": "pgdrill.doctor/v1", "ok": !required_missing, "checks": checks });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serializes")
            );
        }
        Output::Table => print_table(&checks),
    }
    if required_missing {
        return Err(Failure::error(
            "required prerequisites are missing or unusable; see above (scripts/prereqs.sh installs them)",
        ));
    }
    Ok(exit::OK)
}
