//! Drills on the local backend against a real sandbox: real PostgreSQL, real barman-cloud,
//! S3 over loopback. Each run's scratch servers and directories must be gone afterwards.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

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

/// One sandbox for every case of `local_drills_pass_fail_and_error_as_promised`: two backups,
/// a baseline at restore point `before-batch-3`, and 600 more rows after it.
struct Shared {
    sb: Sandbox,
    work: tempfile::TempDir,
    backup2: String,
    /// The WAL segment of workload batch 3, archived after the newest backup.
    batch3_wal: String,
    /// Drills `latest` and `baseline:before-batch-3`, checked against baseline.json.
    with_baseline: PathBuf,
    baseline: Value,
    /// `baseline record` with the URL taken from a mounted Secret, before the last rows.
    from_secret: std::process::Output,
    url: String,
}

impl Shared {
    fn up() -> Self {
        let sb = Sandbox::up("s3");
        let work = tempfile::tempdir().unwrap();
        // A first backup, older than the one the drills restore.
        sb.cmd(&["backup"]);
        let workload = [
            "workload",
            "--batches",
            "2",
            "--rows",
            "300",
            "--interval-ms",
            "1100",
        ];
        sb.cmd(&workload);
        let backup2 = sb.cmd(&["backup"]).trim().to_string();
        // Baseline with a restore point, then more rows after it.
        let with_baseline = sb.scenario("main",
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
        let from_secret = pgdrill(&[
            "baseline",
            "record",
            "--name",
            "again",
            "--out",
            sb.dir.path().join("from-secret.json").to_str().unwrap(),
            "--source-secret",
            sb.dir.path().join("source-secret").to_str().unwrap(),
        ]);
        sb.cmd(&workload);
        let batches = pgdrill::sandbox::read_workload(sb.dir.path()).unwrap();
        let batch3_wal = batches[2].wal.clone();
        Shared {
            sb,
            work,
            backup2,
            batch3_wal,
            with_baseline,
            baseline,
            from_secret,
            url,
        }
    }

    fn run(&self, file: &Path, extra: &[&str]) -> Run {
        run(&self.sb, self.work.path(), file, extra)
    }
}

#[test]
fn local_drills_pass_fail_and_error_as_promised() {
    let shared = Shared::up();
    // Order matters: `latest_and_baseline_pass` reads the only report directory, so it goes
    // first; the last three change the archive (a deleted WAL segment, then a truncated
    // data.tar.gz of backup 2), so every case that needs it intact runs before them.
    let cases: &[(&str, Case<Shared>)] = &[
        ("latest_and_baseline_pass", latest_and_baseline_pass),
        ("baseline_from_source_secret", baseline_from_source_secret),
        ("check_failed", check_failed),
        ("keep_on_failure", keep_on_failure),
        ("target_beyond_archive", target_beyond_archive),
        ("kept_after_recovery_failed", kept_after_recovery_failed),
        ("unreachable_store", unreachable_store),
        ("wal_gap", wal_gap),
        ("recovery_truncated", recovery_truncated),
        ("base_backup_unreadable", base_backup_unreadable),
    ];
    let failed = failures(&shared, cases);
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// latest passes with counts ≥ baseline; the baseline point gives exact counts; the report
/// is written as JSON, Markdown and JUnit.
fn latest_and_baseline_pass(cx: &Shared) -> Result<(), String> {
    let r = cx.run(&cx.with_baseline, &[]);
    ensure_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.report);
    ensure_eq!(r.report["schema"], "pgdrill.report/v1");
    let latest = drill(&r.report, "latest");
    ensure_eq!(latest["verdict"], "pass");
    ensure_eq!(latest["backup_id"], cx.backup2.as_str());
    ensure_eq!(
        count(latest, "public.accounts"),
        (">= 600".into(), "1200".into())
    );
    let exact = drill(&r.report, "baseline:before-batch-3");
    ensure_eq!(exact["verdict"], "pass");
    ensure_eq!(
        count(exact, "public.accounts"),
        ("600".into(), "600".into())
    );
    ensure_eq!(
        count(exact, "public.events"),
        ("1200".into(), "1200".into())
    );
    ensure!(latest["durations"]["rto"].as_f64().unwrap() > 0.0);
    let reports = cx.sb.dir.path().join("reports");
    let dir = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    for f in ["report.json", "report.md", "junit.xml"] {
        ensure!(dir.join(f).is_file(), "{f}");
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    ensure!(
        junit.contains("testcase") && junit.contains("rows in public.accounts"),
        "{junit}"
    );
    Ok(())
}

/// The baseline recorded through a mounted Secret never prints the URL and counts the same.
fn baseline_from_source_secret(cx: &Shared) -> Result<(), String> {
    let out = &cx.from_secret;
    ensure!(out.status.success(), "{}", stderr(out));
    ensure!(!stdout(out).contains(&cx.url) && !stderr(out).contains(&cx.url));
    let path = cx.sb.dir.path().join("from-secret.json");
    let again: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ensure_eq!(again["counts"], cx.baseline["counts"]);
    Ok(())
}

/// A SQL check that cannot hold on the sandbox (there are accounts).
fn bad_check(sb: &Sandbox) -> PathBuf {
    sb.scenario("check",
        "targets:\n  - latest\nchecks:\n  sql:\n    - name: no accounts at all\n      query: select count(*) from accounts\n      expect: 0\n",
    )
}

/// A check that does not hold fails with check_failed and both values.
fn check_failed(cx: &Shared) -> Result<(), String> {
    let r = cx.run(&bad_check(&cx.sb), &[]);
    ensure_eq!(r.code, Some(1));
    let d = drill(&r.report, "latest");
    ensure_eq!(
        (d["verdict"].as_str(), d["cause"].as_str()),
        (Some("fail"), Some("check_failed"))
    );
    ensure!(
        d["evidence"]
            .as_str()
            .unwrap()
            .contains("expected == 0, got 1200"),
        "{}",
        d["evidence"]
    );
    Ok(())
}

/// keepOnFailure leaves the failed drill's server running for a human, and says where. It
/// has a work directory of its own, so a server it fails to stop cannot fail other cases.
fn keep_on_failure(cx: &Shared) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let reports = cx.sb.dir.path().join("reports");
    let out = pgdrill(&[
        "run",
        "-f",
        bad_check(&cx.sb).to_str().unwrap(),
        "--output",
        "json",
        "--keep-on-failure",
        "--report-dir",
        reports.to_str().unwrap(),
        "--work-dir",
        work.path().to_str().unwrap(),
    ]);
    ensure_eq!(out.status.code(), Some(1));
    let kept = json(&out)["drills"][0]["kept_at"]
        .as_str()
        .unwrap()
        .to_string();
    let data = Path::new(&kept).join("pgdata");
    let kept_runs = !postgres_under(work.path()).is_empty();
    let pg_ctl = pgdrill::tools::pg_bin().unwrap().join("pg_ctl");
    let stopped = pgdrill::tools::as_postgres(&pg_ctl)
        .arg("-D")
        .arg(&data)
        .args(["-m", "immediate", "-w", "stop"])
        .status()
        .unwrap();
    std::fs::remove_dir_all(&kept).unwrap();
    ensure!(kept_runs, "the kept server runs");
    ensure!(stopped.success());
    // Stopping the kept server and removing its directory leaves nothing else behind.
    ensure!(
        postgres_under(work.path()).is_empty(),
        "scratch servers left: {:?}",
        postgres_under(work.path())
    );
    let left: Vec<_> = (std::fs::read_dir(work.path()).unwrap().flatten())
        .map(|e| e.path())
        .collect();
    ensure!(left.is_empty(), "drill directories left: {left:?}");
    Ok(())
}

fn beyond(sb: &Sandbox) -> PathBuf {
    sb.scenario("beyond", "targets:\n  - time: \"2999-01-01T00:00:00Z\"\n")
}

/// A target past the archive fails before any restore starts.
fn target_beyond_archive(cx: &Shared) -> Result<(), String> {
    let r = cx.run(&beyond(&cx.sb), &[]);
    ensure_eq!(r.code, Some(1));
    let d = drill(&r.report, "time:2999-01-01T00:00:00Z");
    ensure_eq!(
        (d["cause"].as_str(), d["stage"].as_str()),
        (Some("target_beyond_archive"), Some("preflight"))
    );
    ensure!(d["recovery"].is_null());
    ensure_eq!(d["durations"]["restore"], 0.0);
    Ok(())
}

/// A server kept after recovery itself failed is named in the report, with the time spent.
fn kept_after_recovery_failed(cx: &Shared) -> Result<(), String> {
    let work = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "-f",
        beyond(&cx.sb).to_str().unwrap(),
        "--output",
        "json",
        "--skip-preflight",
        "--keep-on-failure",
        "--work-dir",
        work.path().to_str().unwrap(),
    ]);
    let report = json(&out);
    let d = drill(&report, "time:2999-01-01T00:00:00Z");
    let kept = d["kept_at"].as_str().unwrap_or_default().to_string();
    if !kept.is_empty() {
        let pg_ctl = pgdrill::tools::pg_bin().unwrap().join("pg_ctl");
        let _ = pgdrill::tools::as_postgres(&pg_ctl)
            .arg("-D")
            .arg(Path::new(&kept).join("pgdata"))
            .args(["-m", "immediate", "-w", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&kept);
    }
    ensure_eq!(
        (d["cause"].as_str(), d["stage"].as_str()),
        (Some("target_beyond_archive"), Some("recover"))
    );
    ensure!(
        kept.starts_with(work.path().to_str().unwrap()),
        "kept_at: {}",
        d["kept_at"]
    );
    ensure!(
        d["durations"]["rto"].as_f64().unwrap_or(0.0) > 0.0,
        "{}",
        d["durations"]
    );
    Ok(())
}

/// An unreachable object store is an error (exit 2), never a pass.
fn unreachable_store(cx: &Shared) -> Result<(), String> {
    let text = std::fs::read_to_string(beyond(&cx.sb)).unwrap();
    let endpoint = cx.sb.var("PGDRILL_ENDPOINT_URL");
    let unreachable = cx.sb.dir.path().join("unreachable.yaml");
    std::fs::write(&unreachable, text.replace(&endpoint, "http://127.0.0.1:9")).unwrap();
    let r = cx.run(&unreachable, &[]);
    ensure_eq!(r.code, Some(2), "{}", r.stderr);
    ensure!(r.stderr.contains("unreachable"), "{}", r.stderr);
    Ok(())
}

/// Deletes batch 3's WAL segment, archived after the newest backup (again: a no-op), and
/// returns the drill of `latest` alone, checked against the baseline.
fn delete_batch3_wal(cx: &Shared) -> PathBuf {
    let victim = &cx.batch3_wal;
    let key = format!("sandbox/app-v1/wals/{}/{victim}.gz", &victim[..16]);
    cx.sb.delete_object(&key);
    cx.sb.scenario(
        "latest",
        "targets:\n  - latest\nchecks:\n  baseline: baseline.json\n",
    )
}

/// A WAL segment deleted after the newest backup: latest is refused with wal_gap.
fn wal_gap(cx: &Shared) -> Result<(), String> {
    let r = cx.run(&delete_batch3_wal(cx), &[]);
    ensure_eq!(r.code, Some(1));
    let d = drill(&r.report, "latest");
    ensure_eq!(d["cause"], "wal_gap");
    ensure!(
        d["evidence"]
            .as_str()
            .unwrap()
            .contains(cx.batch3_wal.as_str())
    );
    Ok(())
}

/// With preflight skipped PostgreSQL stops silently at the same gap, which must fail as
/// recovery_truncated.
fn recovery_truncated(cx: &Shared) -> Result<(), String> {
    let r = cx.run(&delete_batch3_wal(cx), &["--skip-preflight"]);
    ensure_eq!(r.code, Some(1), "{}", r.report);
    let d = drill(&r.report, "latest");
    ensure_eq!(
        (d["verdict"].as_str(), d["cause"].as_str()),
        (Some("fail"), Some("recovery_truncated")),
        "{d}"
    );
    Ok(())
}

/// A truncated base backup fails with base_backup_unreadable (the end of backup 2 needs
/// no WAL after the gap, so preflight lets it through).
fn base_backup_unreadable(cx: &Shared) -> Result<(), String> {
    let backup2 = &cx.backup2;
    truncate_object(
        &cx.sb,
        &format!("sandbox/app-v1/base/{backup2}/data.tar.gz"),
    );
    let immediate = cx.sb.scenario(
        "immediate",
        &format!("targets:\n  - immediate: true\n    backupID: \"{backup2}\"\n"),
    );
    let r = cx.run(&immediate, &[]);
    ensure_eq!(r.code, Some(1), "{}", r.report);
    let d = &r.report["drills"][0];
    ensure_eq!(
        (d["cause"].as_str(), d["stage"].as_str()),
        (Some("base_backup_unreadable"), Some("restore")),
        "{d}"
    );
    Ok(())
}

fn truncate_object(sb: &Sandbox, key: &str) {
    let store = sb.store();
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
    let file = sb.scenario("sigterm", "targets:\n  - latest\n");
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
