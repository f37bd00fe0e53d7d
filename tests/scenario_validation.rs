//! Scenario files: strict parsing with file:line:column errors (exit 64), the committed JSON
//! Schema in step with the types, and every example in scenarios/ valid.

mod common;

use common::*;

const HEAD: &str = "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: s3://b/p\n";

fn validate(body: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.yaml");
    std::fs::write(&f, format!("{HEAD}{body}")).unwrap();
    let out = pgdrill(&["validate", "-f", f.to_str().unwrap()]);
    (
        out.status.code(),
        stderr(&out).replace(dir.path().to_str().unwrap(), "DIR"),
    )
}

fn assert_located(body: &str, line: usize, needle: &str) {
    let (code, err) = validate(body);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.starts_with(&format!("error: DIR/s.yaml:{line}:")),
        "{err}"
    );
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn unknown_key() {
    assert_located(
        "targets: [latest]\nkeepOnFailur: true\n",
        7,
        "unknown field `keepOnFailur`",
    );
}

#[test]
fn wrong_type() {
    assert_located("targets: [latest]\nkeepOnFailure: [yes]\n", 7, "");
}

#[test]
fn bad_time() {
    assert_located("targets:\n  - time: \"yesterday\"\n", 7, "invalid time");
}

#[test]
fn bad_cron() {
    assert_located(
        "targets: [latest]\nschedule: \"61 * * * *\"\n",
        7,
        "invalid cron expression",
    );
}

#[test]
fn bad_duration_and_target_rules() {
    assert_located(
        "targets: [latest]\nrto: 10 minutes\n",
        7,
        "invalid duration",
    );
    let (code, err) = validate("targets:\n  - xid: 1234\n");
    assert_eq!(code, Some(64));
    assert!(err.contains("need backupID"), "{err}");
    let (code, err) = validate("targets:\n  - tomorrow\n");
    assert_eq!(code, Some(64));
    assert!(err.contains("s.yaml:7:5"), "{err}");
    assert_eq!(
        validate("targets: [latest, oldest, {lsn: 0/3000000}, {random: {within: 7d}}]\n").0,
        Some(0)
    );
}

#[test]
fn unknown_lineage_names_its_place() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "archive/app-v1/wals/0000000100000000/000000010000000000000001",
        b"w",
    );
    let f = dir.path().join("s.yaml");
    let text = format!(
        "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}/archive\n\
         lineages:\n  - app-v1\n  - app-v9\ntargets: [latest]\n",
        dir.path().display()
    );
    std::fs::write(&f, text).unwrap();
    let out = pgdrill(&["plan", "-f", f.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("s.yaml:8:5: unknown lineage \"app-v9\""),
        "{err}"
    );
}

#[test]
fn committed_schema_matches_the_types() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/schema.json"
    ))
    .unwrap();
    let out = pgdrill(&["schema"]);
    assert!(out.status.success());
    assert!(
        stdout(&out) == committed,
        "scenarios/schema.json is stale: run `make schema`"
    );
}

#[test]
fn every_example_scenario_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(files.len() >= 4, "{files:?}");
    let mut args = vec!["validate"];
    for f in &files {
        args.extend(["-f", f.as_str()]);
    }
    let out = pgdrill_env(
        &args,
        &[
            ("STORAGE_ACCOUNT_NAME", "example"),
            ("NAMESPACE", "example"),
            ("DB", "example"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), files.len());
}
