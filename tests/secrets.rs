//! Secrets never reach logs, reports or metrics: every secret value the drills use (the store
//! key, a webhook token, the source's password) is searched for in everything pgdrill prints
//! and writes, at trace level, on passing and failing drills. Real sandbox on loopback.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Every file under `dir` whose name says it is a log, a report or metrics.
fn written(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            written(&path, out);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str())
            && (name.ends_with(".log")
                || name.ends_with(".json")
                || name.ends_with(".md")
                || name.ends_with(".xml")
                || name.ends_with(".prom"))
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push((path, text));
        }
    }
}

#[test]
fn no_secret_value_reaches_a_log_a_report_or_metrics() {
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    // Unique values: moto takes any key, so the drill's key can be one nothing else uses.
    let store_key = format!("store-key-{}", std::process::id());
    std::fs::write(
        sb.dir.path().join("secrets/sandbox-s3/ACCESS_SECRET_KEY"),
        &store_key,
    )
    .unwrap();
    let webhook_token = format!("hook-token-{}", std::process::id());
    let webhook = format!("http://127.0.0.1:9/services/T0/B0/{webhook_token}");
    let file = sb.scenario(
        "secrets",
        "targets:\n  - latest\n  - time: \"2999-01-01T00:00:00Z\"\n\
         keepOnFailure: true\nchecks:\n  sql:\n    - {name: fails on purpose, query: select 1, expect: 2}\n",
    );
    let out_dir = tempfile::tempdir().unwrap();
    let work = out_dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let reports = out_dir.path().join("reports");
    let metrics = out_dir.path().join("metrics.prom");
    let env = [
        ("PGDRILL_WEBHOOK_URL", webhook.as_str()),
        ("PGDRILL_LOG", "trace"),
    ];
    let mut printed = Vec::new();
    for args in [
        vec!["validate", "-f", file.to_str().unwrap()],
        vec!["plan", "-f", file.to_str().unwrap(), "--output", "json"],
        vec![
            "run",
            "-f",
            file.to_str().unwrap(),
            "--output",
            "json",
            "--work-dir",
            work.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    ] {
        let out = pgdrill_env(&args, &env);
        printed.push((
            PathBuf::from(args[0]),
            format!("{}{}", stdout(&out), stderr(&out)),
        ));
    }
    let mut files = Vec::new();
    written(out_dir.path(), &mut files);
    assert!(
        files.iter().any(|(p, _)| p.ends_with("report.json"))
            && files.iter().any(|(p, _)| p.ends_with("postgres.log")),
        "the run wrote reports and kept a server log: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let leaks: Vec<String> = printed
        .iter()
        .chain(&files)
        .flat_map(|(path, text)| {
            [&store_key, &webhook_token]
                .into_iter()
                .filter(|secret| text.contains(secret.as_str()))
                .map(move |secret| format!("{} holds {secret}", path.display()))
        })
        .collect();
    // The kept server: stop it and remove its folder.
    for kept in std::fs::read_dir(&work).unwrap().flatten() {
        let pg_ctl = pgdrill::tools::pg_bin().unwrap().join("pg_ctl");
        let _ = pgdrill::tools::as_postgres(&pg_ctl)
            .arg("-D")
            .arg(kept.path().join("pgdata"))
            .args(["-m", "immediate", "-w", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(kept.path());
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
