//! A missing or unusable tool, or a work folder PostgreSQL's user cannot enter, is pgdrill's
//! problem: the drill is `error` (exit 2), never a `fail` blamed on the backup, and
//! `pgdrill doctor` says what is wrong, as the drill would run it.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A scenario over a `file://` archive that preflight lets through.
fn scenario(root: &Path) -> PathBuf {
    let archive = root.join("archive");
    one_backup_archive(&archive, "", 5);
    let file = root.join("s.yaml");
    let text = format!(
        "apiVersion: pgdrill/v1\nname: harness\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\ntargets: [latest]\n",
        archive.display()
    );
    std::fs::write(&file, text).unwrap();
    file
}

/// A tools folder whose `barman/bin` links every barman-cloud program except `missing`.
fn tools_without(root: &Path, name: &str, missing: Option<&str>, mode: u32) -> PathBuf {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/barman/bin");
    let tools = root.join(name);
    let bin = tools.join("barman/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir(&real).unwrap().flatten() {
        let file = entry.file_name();
        if Some(file.to_str().unwrap()) != missing {
            symlink(entry.path(), bin.join(&file)).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tools, std::fs::Permissions::from_mode(mode)).unwrap();
    tools
}

/// A case's name, its environment, the work folder and what the evidence must name.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);

#[test]
fn unusable_tools_and_work_folders_are_errors_not_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = scenario(root);
    let work = root.join("work");
    std::fs::create_dir(&work).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
    let closed = root.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let no_restore = tools_without(root, "no-restore", Some("barman-cloud-restore"), 0o755);
    let unreadable = tools_without(root, "unreadable", None, 0o700);
    let (no_restore, unreadable) = (no_restore.to_str().unwrap(), unreadable.to_str().unwrap());
    let work_dir = work.to_str().unwrap();
    let mut cases: Vec<Case> = vec![
        (
            "no PostgreSQL binaries",
            vec![("PGDRILL_PG_BIN", "/nonexistent/bin")],
            work_dir,
            "/nonexistent/bin/pg_ctl",
        ),
        (
            "no barman-cloud-restore",
            vec![("PGDRILL_TOOLS", no_restore)],
            work_dir,
            "barman-cloud-restore",
        ),
    ];
    if is_root() {
        cases.push((
            "a barman folder postgres cannot read",
            vec![("PGDRILL_TOOLS", unreadable)],
            work_dir,
            "cannot be run by the postgres user",
        ));
        cases.push((
            "a work folder postgres cannot enter",
            vec![],
            closed.to_str().unwrap(),
            "cannot enter or write",
        ));
    }
    let mut failures = Vec::new();
    for (case, env, work_dir, needle) in cases {
        let out = pgdrill_env(
            &[
                "run",
                "-f",
                file.to_str().unwrap(),
                "--output",
                "json",
                "--work-dir",
                work_dir,
                "--report-dir",
                root.join("reports").to_str().unwrap(),
            ],
            &env,
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let d = &report["drills"][0];
        if out.status.code() != Some(2)
            || d["verdict"] != "error"
            || !d["evidence"].as_str().unwrap_or("").contains(needle)
        {
            failures.push(format!(
                "{case}: exit {:?}, drill {d}: {}",
                out.status.code(),
                stderr(&out)
            ));
        }
        let mut doctor_env = env.clone();
        doctor_env.push(("PGDRILL_WORK_DIR", work_dir));
        let doctor = pgdrill_env(&["doctor"], &doctor_env);
        if doctor.status.code() != Some(2) || !stdout(&doctor).contains(needle) {
            failures.push(format!(
                "{case}: doctor said exit {:?}: {}",
                doctor.status.code(),
                stdout(&doctor)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
