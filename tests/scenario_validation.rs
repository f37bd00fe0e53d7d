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

/// An archive with two backups of `app-v1` (ending 11:00 and 13:00) and WAL 2..9, and a
/// scenario over it with the given targets.
fn two_backups(targets: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let t = |h: u32| format!("2026-01-01 {h:02}:00:00.000000+00:00");
    put(
        &root,
        "app-v1/base/20260101T100000/backup.info",
        backup_info(
            "000000010000000000000002",
            "000000010000000000000002",
            &t(10),
            &t(11),
            "",
        )
        .as_bytes(),
    );
    put(
        &root,
        "app-v1/base/20260101T120000/backup.info",
        backup_info(
            "000000010000000000000006",
            "000000010000000000000006",
            &t(12),
            &t(13),
            "",
        )
        .as_bytes(),
    );
    for name in wal_range(1, 2, 9) {
        put_wal(&root, "app-v1", &name, ".gz");
    }
    let f = dir.path().join("s.yaml");
    let text = format!(
        "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
         targets:\n{targets}",
        root.display()
    );
    std::fs::write(&f, text).unwrap();
    (dir, f)
}

#[test]
fn plan_resolves_oldest_random_and_lsn_targets_without_side_effects() {
    let (_dir, f) =
        two_backups("  - oldest\n  - random: {within: 1d}\n  - lsn: 0/F000000\n  - latest\n");
    let out = pgdrill(&["plan", "-f", f.to_str().unwrap(), "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    let drills = doc["scenarios"][0]["drills"].as_array().unwrap();
    assert_eq!(drills.len(), 4);
    let decision = |i: usize| &drills[i]["preflight"];
    // oldest: the end of the oldest backup, restored from it.
    assert_eq!(drills[0]["target"]["time"], "2026-01-01T11:00:00Z");
    assert_eq!(decision(0)["backup_id"], "20260101T100000");
    // random: a time inside the window, from the backup that ended before it.
    let picked: jiff::Timestamp = drills[1]["target"]["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        picked >= "2026-01-01T11:00:00Z".parse().unwrap(),
        "{picked}"
    );
    assert_eq!(decision(1)["decision"], "ready");
    // Past the last segment: refused before anything runs.
    assert_eq!(decision(2)["cause"], "target_beyond_archive");
    assert_eq!(decision(3)["backup_id"], "20260101T120000");
    assert_eq!(decision(3)["expected_last_wal"], "000000010000000000000009");
}

#[test]
fn plan_prints_cnpg_manifests_without_a_cluster_and_run_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    one_backup_archive(&root, "cluster_size=1073741824\n", 4);
    let f = dir.path().join("s.yaml");
    let text = format!(
        "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
         backend: cnpg\ncnpg: {{recoveryPath: inTree, namespace: drills}}\ntargets: [latest, {{lsn: 0/F000000}}]\n",
        root.display()
    );
    std::fs::write(&f, text).unwrap();
    let out = pgdrill(&["plan", "-f", f.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("kind: Cluster") && text.contains("namespace: drills"),
        "{text}"
    );
    assert!(
        text.contains("serverName: app-v1")
            && text.contains("imageName: ghcr.io/cloudnative-pg/postgresql:15"),
        "{text}"
    );
    assert!(
        text.contains("size: 2Gi") && text.contains("backupID: 20260101T100000"),
        "{text}"
    );
    assert_eq!(
        text.matches("kind: Cluster").count(),
        1,
        "the refused drill gets no manifests: {text}"
    );
    // run needs a cluster: without a Kubernetes configuration it is an error, not a drill.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["run", "-f", f.to_str().unwrap()])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Kubernetes configuration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn schedule_dry_run_prints_fire_times() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("weekly.yaml"),
        format!("{HEAD}targets: [latest]\nschedule: \"0 3 * * 0\"\n"),
    )
    .unwrap();
    let out = pgdrill(&[
        "schedule",
        "-f",
        dir.path().to_str().unwrap(),
        "--dry-run",
        "--count",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let at: jiff::Timestamp = l.split_whitespace().next().unwrap().parse().unwrap();
        let civil = at.to_zoned(jiff::tz::TimeZone::UTC);
        assert_eq!(
            (civil.weekday(), civil.hour(), civil.minute()),
            (jiff::civil::Weekday::Sunday, 3, 0),
            "{l}"
        );
        assert!(l.ends_with("weekly.yaml"), "{l}");
    }
    std::fs::write(
        dir.path().join("adhoc.yaml"),
        format!("{HEAD}targets: [latest]\n"),
    )
    .unwrap();
    let out = pgdrill(&["schedule", "-f", dir.path().to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("adhoc.yaml: no schedule"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn source_and_cnpg_settings_are_checked() {
    // Both, or neither, of barmanObjectStore and cluster.
    let (code, err) = validate("  cluster: {namespace: app, name: app}\ntargets: [latest]\n");
    assert_eq!(code, Some(64));
    assert!(
        err.contains("source: expected one of barmanObjectStore or cluster, found both"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yaml");
    std::fs::write(
        &f,
        "apiVersion: pgdrill/v1\nname: t\nsource: {secretsDir: x}\ntargets: [latest]\n",
    )
    .unwrap();
    let out = pgdrill(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("source: expected barmanObjectStore"),
        "{}",
        stderr(&out)
    );
    // A TTL shorter than a drill may take would let another run sweep a live drill.
    let (code, err) = validate(
        "targets: [latest]\nbackend: cnpg\ncnpg: {ttl: 30m}\ntimeouts: {restore: 30m, recovery: 30m}\n",
    );
    assert_eq!(code, Some(64));
    assert!(err.contains("cnpg.ttl"), "{err}");
    assert_eq!(
        validate("  cluster: null\ntargets: [latest]\nbackend: cnpg\ncnpg: {ttl: 2h}\n").0,
        Some(0)
    );
}

#[test]
fn an_unknown_cause_or_verdict_is_refused_with_the_valid_ones() {
    assert_located(
        "targets:\n  - time: \"2999-01-01T00:00:00Z\"\n    expect: {verdict: fail, cause: beyond_archive}\n",
        8,
        "unknown variant `beyond_archive`, expected one of target_before_first_recoverability_point, target_beyond_archive, wal_gap",
    );
    assert_located(
        "targets:\n  - time: \"2999-01-01T00:00:00Z\"\n    expect: {verdict: failed}\n",
        8,
        "expected one of pass, fail, error",
    );
}

#[test]
fn plan_takes_every_scenario_target_form_from_the_command_line() {
    let (_dir, f) = two_backups("  - latest\n");
    let file = f.to_str().unwrap();
    let plan = |target: &str| {
        let out = pgdrill(&["plan", "-f", file, "--output", "json", "--target", target]);
        (
            out.status.code(),
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
            stderr(&out),
        )
    };
    let cases = [
        ("oldest", "oldest", Some("20260101T100000")),
        ("random:1d", "random:86400s", None),
        (
            "backup:20260101T100000",
            "backup:20260101T100000",
            Some("20260101T100000"),
        ),
        ("lsn:0/5000000", "lsn:0/5000000", Some("20260101T100000")),
        ("latest", "latest", Some("20260101T120000")),
    ];
    let mut failures = Vec::new();
    for (target, label, backup) in cases {
        let (code, doc, err) = plan(target);
        let drill = &doc["scenarios"][0]["drills"][0];
        if code != Some(0) || drill["target_label"] != label {
            failures.push(format!(
                "{target}: exit {code:?}, label {}: {err}",
                drill["target_label"]
            ));
        } else if let Some(b) = backup
            && drill["preflight"]["backup_id"] != b
        {
            failures.push(format!(
                "{target}: backup {} (want {b})",
                drill["preflight"]["backup_id"]
            ));
        }
    }
    for (target, needle) in [
        ("baseline:nightly", "has no checks.baseline"),
        ("newest", "random:<duration>"),
    ] {
        let (code, _, err) = plan(target);
        if code != Some(64) || !err.contains(needle) {
            failures.push(format!(
                "{target}: exit {code:?}, want 64 and {needle:?}: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `validate` on a whole file (with extra environment); (exit code, stderr with DIR for the
/// folder).
fn validate_file(text: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.yaml");
    std::fs::write(&f, text).unwrap();
    let out = pgdrill_env(&["validate", "-f", f.to_str().unwrap()], env);
    (
        out.status.code(),
        stderr(&out).replace(dir.path().to_str().unwrap(), "DIR"),
    )
}

/// Input `validate` once accepted and `run` then broke on: refused at validate time, each
/// with the place and what was expected.
#[test]
fn input_that_broke_later_is_refused_at_validate() {
    let src = "source:\n  barmanObjectStore:\n    destinationPath: s3://b/p\n";
    let cases: [(&str, String, &str, &str); 8] = [
        (
            "a timeout that overflows a deadline",
            format!("apiVersion: pgdrill/v1\nname: t\n{src}targets: [latest]\ntimeouts: {{recovery: 18446744073709551615s}}\n"),
            "DIR/s.yaml:7:",
            "at most 3650d",
        ),
        (
            "the same with backend cnpg",
            format!("apiVersion: pgdrill/v1\nname: t\nbackend: cnpg\n{src}targets: [latest]\ntimeouts: {{restore: 3650d}}\n"),
            "DIR/s.yaml:",
            "cnpg.ttl",
        ),
        (
            "a name that leaves the report folder",
            format!("apiVersion: pgdrill/v1\nname: ../../x\n{src}targets: [latest]\n"),
            "DIR/s.yaml:2:",
            "invalid name",
        ),
        (
            "an environment value with a line break",
            format!("apiVersion: pgdrill/v1\nname: t\n{src}targets: [latest]\ncnpg: {{namespace: ${{PGDRILL_TEST_NS}}}}\n"),
            "DIR/s.yaml:7:19:",
            "line break",
        ),
        (
            "a quoted yes as a boolean",
            format!("apiVersion: pgdrill/v1\nname: t\n{src}targets: [latest]\nkeepOnFailure: \"yes\"\n"),
            "DIR/s.yaml:7:",
            "",
        ),
        (
            "a zero statement timeout",
            format!("apiVersion: pgdrill/v1\nname: t\n{src}targets: [latest]\ntimeouts: {{statement: 0s}}\n"),
            "DIR/s.yaml:7:",
            "at least 1s",
        ),
        (
            "a destinationPath pgdrill cannot read",
            "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: ftp://host/p\ntargets: [latest]\n".to_string(),
            "DIR/s.yaml:5:",
            "destinationPath \"ftp://host/p\"",
        ),
        (
            "an unquoted on as a boolean",
            format!("apiVersion: pgdrill/v1\nname: t\n{src}targets: [latest]\nkeepOnFailure: on\n"),
            "DIR/s.yaml:7:",
            "",
        ),
    ];
    let env = [("PGDRILL_TEST_NS", "ns\nbackend: cnpg")];
    let mut failures = Vec::new();
    for (case, text, place, needle) in cases {
        let (code, err) = validate_file(&text, &env);
        let located = err.starts_with(&format!("error: {place}"));
        if code != Some(64) || !located || !err.contains(needle) || err.trim().lines().count() != 1
        {
            failures.push(format!(
                "{case}: exit {code:?}, want 64 at {place} with {needle:?}: {err}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_endless_file_is_refused_without_reading_it_all() {
    let out = pgdrill(&["validate", "-f", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/dev/zero: larger than 1024 KiB"),
        "{}",
        stderr(&out)
    );
}

/// `everyBackup` drills `latest` from each completed backup, and `{backupID: X}` alone is
/// `latest` from X: a segment only the older backup needs fails that drill and no other.
#[test]
fn every_backup_and_backup_id_alone_drill_latest_from_each_backup() {
    let (dir, f) = two_backups("  - everyBackup\n  - backupID: \"20260101T100000\"\n");
    let gap = dir
        .path()
        .join("archive/app-v1/wals/0000000100000000/000000010000000000000003.gz");
    std::fs::remove_file(gap).unwrap();
    let out = pgdrill(&["plan", "-f", f.to_str().unwrap(), "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    let drills = doc["scenarios"][0]["drills"].as_array().unwrap();
    let seen: Vec<(String, String, String, String)> = drills
        .iter()
        .map(|d| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&d["target_label"]),
                text(&d["target"]["kind"]),
                text(&d["preflight"]["backup_id"]),
                text(&d["preflight"]["cause"]),
            )
        })
        .collect();
    let want = [
        (
            "latest@20260101T100000",
            "latest",
            "20260101T100000",
            "wal_gap",
        ),
        ("latest@20260101T120000", "latest", "20260101T120000", ""),
        (
            "latest@20260101T100000",
            "latest",
            "20260101T100000",
            "wal_gap",
        ),
    ]
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()));
    assert_eq!(
        seen,
        want,
        "{}",
        serde_json::to_string_pretty(drills).unwrap()
    );
    assert_eq!(
        drills[1]["preflight"]["expected_last_wal"], "000000010000000000000009",
        "the newer backup replays to the end of the archive"
    );
}

/// A lineage that lost every completed backup is drilled, not dropped: a garbled
/// `backup.info`, a backup without one, or WAL alone is `fail` `no_completed_backup` in the
/// report, beside a healthy lineage that is planned as usual.
#[test]
fn lineages_without_a_completed_backup_fail_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    one_backup_archive(&root, "", 3);
    put(
        &root,
        "garbled/base/20260101T100000/backup.info",
        b"status=DONE\nbegin_wal=nonsense\n\0\xff",
    );
    put(
        &root,
        "no-info/base/20260101T100000/data.tar.gz",
        b"partial",
    );
    for name in wal_range(1, 2, 3) {
        put_wal(&root, "wal-only", &name, ".gz");
    }
    let f = dir.path().join("s.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: pgdrill/v1\nname: t\nsource:\n  barmanObjectStore:\n    destinationPath: file://{}\n\
             targets: [immediate]\n",
            root.display()
        ),
    )
    .unwrap();
    let out = pgdrill(&[
        "run",
        "-f",
        f.to_str().unwrap(),
        "--output",
        "json",
        "--report-dir",
        dir.path().join("reports").to_str().unwrap(),
        "--lineage",
        "garbled",
        "--lineage",
        "no-info",
        "--lineage",
        "wal-only",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let seen: Vec<(String, String)> = report["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            (
                text(&d["lineage"]),
                format!("{} {}", text(&d["verdict"]), text(&d["cause"])),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ["garbled", "no-info", "wal-only"]
        .map(|l| (l.to_string(), "fail no_completed_backup".to_string()))
        .into();
    assert_eq!(seen, want, "{report}");
    let plan = pgdrill(&["plan", "-f", f.to_str().unwrap(), "--output", "json"]);
    let doc = json(&plan);
    let lineages: Vec<&str> = doc["scenarios"][0]["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["lineage"].as_str().unwrap())
        .collect();
    assert_eq!(
        lineages,
        ["app-v1", "garbled", "no-info", "wal-only"],
        "lineages: all keeps them"
    );
}
