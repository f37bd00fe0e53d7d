//! Drills on the local backend against a real sandbox: real PostgreSQL, real barman-cloud,
//! S3 over loopback. Each run's scratch servers and directories must be gone afterwards.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The `source:` block of the sandbox's own drill.yaml.
fn source_block(sb: &Sandbox) -> String {
    let text = std::fs::read_to_string(sb.dir.path().join("drill.yaml")).unwrap();
    let start = text.find("source:\n").unwrap();
    let end = text.find("lineages:").unwrap();
    text[start..end].to_string()
}

fn scenario(sb: &Sandbox, name: &str, body: &str) -> PathBuf {
    let path = sb.dir.path().join(format!("{name}.yaml"));
    let text = format!(
        "apiVersion: pgdrill/v1\nname: {name}\n{}{body}",
        source_block(sb)
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Postmasters whose command line names `dir`.
fn postgres_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("postgres") && c.contains(needle))
        .collect()
}

struct Run {
    code: Option<i32>,
    report: Value,
    stderr: String,
}

fn run(sb: &Sandbox, work: &Path, file: &Path, extra: &[&str]) -> Run {
    let reports = sb.dir.path().join("reports");
    let mut args = vec![
        "run",
        "-f",
        file.to_str().unwrap(),
        "--output",
        "json",
        "--report-dir",
        reports.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = pgdrill(&args);
    // Teardown on every path: nothing runs and nothing stays under the work dir.
    assert!(
        postgres_under(work).is_empty(),
        "scratch servers left: {:?}",
        postgres_under(work)
    );
    let left: Vec<_> = std::fs::read_dir(work)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "drill directories left: {left:?}");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Run {
        code: out.status.code(),
        report,
        stderr: stderr(&out),
    }
}

#[test]
fn local_drills_pass_fail_and_error_as_promised() {
    let sb = Sandbox::up("s3");
    let work = tempfile::tempdir().unwrap();
    let backup1 = sb.cmd(&["backup"]).trim().to_string();
    sb.cmd(&[
        "workload",
        "--batches",
        "2",
        "--rows",
        "300",
        "--interval-ms",
        "1100",
    ]);
    let backup2 = sb.cmd(&["backup"]).trim().to_string();
    // Baseline with a restore point, then more rows after it.
    let with_baseline = scenario(
        &sb,
        "main",
        "lineages: [app-v1]\ntargets:\n  - latest\n  - baseline: before-batch-3\n\
         checks:\n  baseline: baseline.json\n  sql:\n    - name: accounts exist\n      query: select count(*) from accounts\n      op: \">\"\n      expect: 0\n",
    );
    let url = sb.var("PGDRILL_SOURCE_URL");
    let out = pgdrill_env(
        &[
            "baseline",
            "record",
            "-f",
            with_baseline.to_str().unwrap(),
            "--name",
            "before-batch-3",
            "--restore-point",
            "--switch-wal",
        ],
        &[("PGDRILL_SOURCE_URL", &url)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let baseline: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.dir.path().join("baseline.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(baseline["counts"]["public.accounts"], 600);
    // The URL can also come from a mounted Secret's `uri` key (CNPG's -app/-superuser shape).
    put(sb.dir.path(), "source-secret/uri", url.as_bytes());
    let from_secret = sb.dir.path().join("from-secret.json");
    let out = pgdrill(&[
        "baseline",
        "record",
        "--name",
        "again",
        "--out",
        from_secret.to_str().unwrap(),
        "--source-secret",
        sb.dir.path().join("source-secret").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains(&url) && !stderr(&out).contains(&url));
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(&from_secret).unwrap()).unwrap();
    assert_eq!(again["counts"], baseline["counts"]);
    sb.cmd(&[
        "workload",
        "--batches",
        "2",
        "--rows",
        "300",
        "--interval-ms",
        "1100",
    ]);
    let batches = pgdrill::sandbox::read_workload(sb.dir.path()).unwrap();

    // latest passes with counts ≥ baseline; the baseline point gives exact counts.
    let r = run(&sb, work.path(), &with_baseline, &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.report);
    assert_eq!(r.report["schema"], "pgdrill.report/v1");
    let latest = drill(&r.report, "latest");
    assert_eq!(latest["verdict"], "pass");
    assert_eq!(latest["backup_id"], backup2.as_str());
    assert_eq!(
        count(latest, "public.accounts"),
        (">= 600".into(), "1200".into())
    );
    let exact = drill(&r.report, "baseline:before-batch-3");
    assert_eq!(exact["verdict"], "pass");
    assert_eq!(
        count(exact, "public.accounts"),
        ("600".into(), "600".into())
    );
    assert_eq!(
        count(exact, "public.events"),
        ("1200".into(), "1200".into())
    );
    assert!(latest["durations"]["rto"].as_f64().unwrap() > 0.0);
    let reports = sb.dir.path().join("reports");
    let dir = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    for f in ["report.json", "report.md", "junit.xml"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("testcase") && junit.contains("rows in public.accounts"),
        "{junit}"
    );

    // A check that does not hold fails with check_failed and both values.
    let bad_check = scenario(
        &sb,
        "check",
        "targets:\n  - latest\nchecks:\n  sql:\n    - name: no accounts at all\n      query: select count(*) from accounts\n      expect: 0\n",
    );
    let r = run(&sb, work.path(), &bad_check, &[]);
    assert_eq!(r.code, Some(1));
    let d = drill(&r.report, "latest");
    assert_eq!(
        (d["verdict"].as_str(), d["cause"].as_str()),
        (Some("fail"), Some("check_failed"))
    );
    assert!(
        d["evidence"]
            .as_str()
            .unwrap()
            .contains("expected == 0, got 1200"),
        "{}",
        d["evidence"]
    );

    // keepOnFailure leaves the failed drill's server running for a human, and says where.
    let reports = sb.dir.path().join("reports");
    let out = pgdrill(&[
        "run",
        "-f",
        bad_check.to_str().unwrap(),
        "--output",
        "json",
        "--keep-on-failure",
        "--report-dir",
        reports.to_str().unwrap(),
        "--work-dir",
        work.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let kept = json(&out)["drills"][0]["kept_at"]
        .as_str()
        .unwrap()
        .to_string();
    let data = Path::new(&kept).join("pgdata");
    assert!(
        !postgres_under(work.path()).is_empty(),
        "the kept server runs"
    );
    let pg_ctl = pgdrill::tools::pg_bin().unwrap().join("pg_ctl");
    let stopped = pgdrill::tools::as_postgres(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "-w", "stop"])
        .status()
        .unwrap();
    assert!(stopped.success());
    std::fs::remove_dir_all(&kept).unwrap();

    // A target past the archive fails before any restore starts.
    let beyond = scenario(
        &sb,
        "beyond",
        "targets:\n  - time: \"2999-01-01T00:00:00Z\"\n",
    );
    let r = run(&sb, work.path(), &beyond, &[]);
    assert_eq!(r.code, Some(1));
    let d = drill(&r.report, "time:2999-01-01T00:00:00Z");
    assert_eq!(
        (d["cause"].as_str(), d["stage"].as_str()),
        (Some("target_beyond_archive"), Some("preflight"))
    );
    assert!(d["recovery"].is_null());
    assert_eq!(d["durations"]["restore"], 0.0);

    // An unreachable object store is an error (exit 2), never a pass.
    let text = std::fs::read_to_string(&beyond).unwrap();
    let endpoint = sb.var("PGDRILL_ENDPOINT_URL");
    let unreachable = sb.dir.path().join("unreachable.yaml");
    std::fs::write(&unreachable, text.replace(&endpoint, "http://127.0.0.1:9")).unwrap();
    let r = run(&sb, work.path(), &unreachable, &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);

    // A WAL segment deleted after the newest backup: latest is refused with wal_gap, and with
    // preflight skipped PostgreSQL stops silently at the gap, which must fail as recovery_truncated.
    let victim = &batches[2].wal;
    let key = format!("sandbox/app-v1/wals/{}/{victim}.gz", &victim[..16]);
    delete_object(&sb, &key);
    let latest_only = scenario(
        &sb,
        "latest",
        "targets:\n  - latest\nchecks:\n  baseline: baseline.json\n",
    );
    let r = run(&sb, work.path(), &latest_only, &[]);
    assert_eq!(r.code, Some(1));
    let d = drill(&r.report, "latest");
    assert_eq!(d["cause"], "wal_gap");
    assert!(d["evidence"].as_str().unwrap().contains(victim.as_str()));
    let r = run(&sb, work.path(), &latest_only, &["--skip-preflight"]);
    assert_eq!(r.code, Some(1), "{}", r.report);
    let d = drill(&r.report, "latest");
    assert_eq!(
        (d["verdict"].as_str(), d["cause"].as_str()),
        (Some("fail"), Some("recovery_truncated")),
        "{d}"
    );

    // A truncated base backup fails with base_backup_unreadable (the end of backup 2 needs
    // no WAL after the gap, so preflight lets it through).
    truncate_object(&sb, &format!("sandbox/app-v1/base/{backup2}/data.tar.gz"));
    let immediate = scenario(
        &sb,
        "immediate",
        &format!("targets:\n  - immediate: true\n    backupID: \"{backup2}\"\n"),
    );
    let r = run(&sb, work.path(), &immediate, &[]);
    assert_eq!(r.code, Some(1), "{}", r.report);
    let d = &r.report["drills"][0];
    assert_eq!(
        (d["cause"].as_str(), d["stage"].as_str()),
        (Some("base_backup_unreadable"), Some("restore")),
        "{d}"
    );
    let _ = backup1;
}

fn s3_store(sb: &Sandbox) -> pgdrill::store::Store {
    let loaded = pgdrill::scenario::load(&sb.dir.path().join("drill.yaml")).unwrap();
    pgdrill::store::StoreSpec::for_scenario(&loaded)
        .unwrap()
        .open()
        .unwrap()
}

fn delete_object(sb: &Sandbox, key: &str) {
    let store = s3_store(sb);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(object_store::ObjectStoreExt::delete(
        store.inner.as_ref(),
        &object_store::path::Path::from(key),
    ))
    .unwrap();
}

fn truncate_object(sb: &Sandbox, key: &str) {
    let store = s3_store(sb);
    let path = object_store::path::Path::from(key);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bytes = object_store::ObjectStoreExt::get(store.inner.as_ref(), &path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let half = bytes.slice(0..bytes.len() / 2);
        object_store::ObjectStoreExt::put(store.inner.as_ref(), &path, half.into())
            .await
            .unwrap();
    });
}

#[test]
fn sigterm_mid_drill_tears_everything_down() {
    let sb = Sandbox::up("s3");
    let work = tempfile::tempdir().unwrap();
    sb.cmd(&["backup"]);
    sb.cmd(&["workload", "--batches", "3", "--rows", "300"]);
    let file = scenario(&sb, "sigterm", "targets:\n  - latest\n");
    let child = std::process::Command::new(BIN)
        .args([
            "run",
            "-f",
            file.to_str().unwrap(),
            "--work-dir",
            work.path().to_str().unwrap(),
        ])
        .args([
            "--report-dir",
            sb.dir.path().join("reports").to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the drill has a data directory (restore under way or recovering).
    let started = std::time::Instant::now();
    while std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .all(|e| !e.path().join("pgdata").exists())
    {
        assert!(started.elapsed().as_secs() < 60, "the drill never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("terminated"), "{err}");
    // Give a killed restore's process group a moment to exit, then nothing may remain.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        postgres_under(work.path()).is_empty(),
        "{:?}",
        postgres_under(work.path())
    );
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
