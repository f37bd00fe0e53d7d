//! The catalog against a real sandbox: PostgreSQL 15 archiving with barman-cloud into an S3
//! endpoint on loopback, two lineages (v2 grown by restore + promote), several backups.
//!
//! Starting the sandbox takes most of the time, so one sandbox serves a table of named cases.
//! Every case runs even when an earlier one fails; the test fails at the end, naming each
//! failed case.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;
use pgdrill::sandbox::BatchRecord;
use pgdrill::store::StoreSpec;
use pgdrill::store::config::{BarmanObjectStore, S3Credentials, SecretKeySelector};
use serde_json::Value;

/// (id, begin WAL, end WAL, status) of each backup; pgdrill and barman use the same key names.
fn backup_keys(list: &Value) -> Vec<(String, String, String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
            (s("backup_id"), s("begin_wal"), s("end_wal"), s("status"))
        })
        .collect()
}

/// The sandbox the cases share: lineage v1 (backup, three batches, a second backup, two more
/// batches) and lineage v2, grown from it the DR way (one batch).
struct TwoLineages {
    sb: Sandbox,
    dest: String,
    endpoint: String,
    first_backup: String,
    batches: Vec<BatchRecord>,
    /// The catalog of every lineage before anything is deleted.
    healthy: Value,
}

impl TwoLineages {
    fn grow() -> Self {
        let mut sb = Sandbox::up("s3");
        let dest = sb.var("PGDRILL_DESTINATION_PATH");
        let endpoint = sb.var("PGDRILL_ENDPOINT_URL");
        let first_backup = sb.cmd(&["backup"]).trim().to_string();
        sb.cmd(&[
            "workload",
            "--batches",
            "3",
            "--rows",
            "500",
            "--interval-ms",
            "1200",
        ]);
        sb.cmd(&["backup"]);
        sb.cmd(&["workload", "--batches", "2", "--rows", "500"]);
        sb.cmd(&["new-lineage"]);
        sb.reload_env();
        assert_eq!(sb.var("PGDRILL_SERVER_NAME"), "app-v2");
        sb.cmd(&["workload", "--batches", "1", "--rows", "500"]);
        let batches = pgdrill::sandbox::read_workload(sb.dir.path()).unwrap();
        assert_eq!(batches.len(), 6);
        let healthy = json(&sb.run(&["catalog", &dest, "--output", "json"]));
        Self {
            sb,
            dest,
            endpoint,
            first_backup,
            batches,
            healthy,
        }
    }

    fn lineages(&self) -> &Vec<Value> {
        self.healthy["lineages"].as_array().unwrap()
    }

    fn v1(&self) -> &Value {
        &self.lineages()[0]
    }

    fn v2(&self) -> &Value {
        &self.lineages()[1]
    }

    fn v1_batches(&self) -> Vec<&BatchRecord> {
        self.batches
            .iter()
            .filter(|b| b.lineage == "app-v1")
            .collect()
    }

    /// The segment that holds batch 2 (between the first backup and batch 3).
    fn victim(&self) -> String {
        self.v1_batches()[1].wal.clone()
    }

    /// Exit code and JSON of `preflight` on v1.
    fn preflight(&self, target: &str) -> (Option<i32>, Value) {
        let out = self.sb.run(&[
            "preflight",
            &self.dest,
            "--server",
            "app-v1",
            "--target",
            target,
            "--output",
            "json",
        ]);
        (out.status.code(), json(&out))
    }

    /// Deletes the victim segment, reaching the store with credentials given as a CNPG-shaped
    /// block and a directory of mounted Secrets.
    fn delete_victim(&self) {
        let sb = &self.sb;
        put(
            sb.dir.path(),
            "secrets/creds/ACCESS_KEY_ID",
            sb.var("AWS_ACCESS_KEY_ID").as_bytes(),
        );
        put(
            sb.dir.path(),
            "secrets/creds/ACCESS_SECRET_KEY",
            sb.var("AWS_SECRET_ACCESS_KEY").as_bytes(),
        );
        let sel = |key: &str| {
            Some(SecretKeySelector {
                name: "creds".into(),
                key: key.into(),
            })
        };
        let block = BarmanObjectStore {
            destination_path: self.dest.clone(),
            endpoint_url: Some(self.endpoint.clone()),
            s3_credentials: Some(S3Credentials {
                access_key_id: sel("ACCESS_KEY_ID"),
                secret_access_key: sel("ACCESS_SECRET_KEY"),
                ..Default::default()
            }),
            ..Default::default()
        };
        let store = StoreSpec {
            destination_path: self.dest.clone(),
            block: Some(block),
            secrets_dir: Some(sb.dir.path().join("secrets")),
            ..Default::default()
        }
        .open()
        .unwrap();
        let victim = self.victim();
        let key = object_store::path::Path::from(format!(
            "sandbox/app-v1/wals/{}/{victim}.gz",
            &victim[..16]
        ));
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(object_store::ObjectStoreExt::delete(
            store.inner.as_ref(),
            &key,
        ))
        .unwrap();
    }
}

fn an_hour_from_now() -> String {
    format!(
        "time:{}",
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)
    )
}

type Case = (&'static str, fn(&TwoLineages));

/// Cases on the archive as the sandbox wrote it.
const HEALTHY: &[Case] = &[
    ("the catalog lists both lineages", both_lineages_listed),
    (
        "every lineage's backups match barman-cloud-backup-list",
        backups_match_barman,
    ),
    ("v1 has two backups and no gap", v1_is_healthy),
    ("v2 forks from timeline 1", v2_forks_from_timeline_1),
    (
        "the v2 window ends at the WAL of its last batch",
        v2_window_ends_at_last_batch,
    ),
    (
        "preflight of latest on v1 expects the window's last WAL",
        preflight_latest_on_v1,
    ),
    (
        "preflight of a future time is beyond the archive",
        preflight_future_is_beyond_archive,
    ),
];

/// Cases after the segment of batch 2 is deleted from v1.
const WITH_GAP: &[Case] = &[
    (
        "the deleted segment is the only gap in the JSON catalog",
        gap_in_json,
    ),
    ("the table names the gap", gap_in_table),
    (
        "a target across the gap is refused with the gap's cause",
        target_across_gap_refused,
    ),
    ("a target before the gap passes", target_before_gap_passes),
    (
        "a future time is still beyond the archive",
        future_still_beyond_archive,
    ),
    (
        "a missing bucket is one clear line and exit 2",
        missing_bucket,
    ),
];

/// Stops the sandbox, so it comes last.
const LAST: &[Case] = &[(
    "after down nothing of the sandbox runs",
    nothing_runs_after_down,
)];

fn both_lineages_listed(t: &TwoLineages) {
    let names: Vec<&str> = t
        .lineages()
        .iter()
        .map(|l| l["server_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app-v1", "app-v2"]);
}

fn backups_match_barman(t: &TwoLineages) {
    for l in t.lineages() {
        let server = l["server_name"].as_str().unwrap();
        let barman = t.sb.barman_json(
            "barman-cloud-backup-list",
            &[
                "--endpoint-url",
                &t.endpoint,
                "--format",
                "json",
                &t.dest,
                server,
            ],
        );
        assert_eq!(
            backup_keys(&l["backups"]),
            backup_keys(&barman["backups_list"]),
            "lineage {server}"
        );
    }
}

fn v1_is_healthy(t: &TwoLineages) {
    let v1 = t.v1();
    assert_eq!(v1["backups"].as_array().unwrap().len(), 2);
    assert!(
        v1["gaps"].as_array().unwrap().is_empty(),
        "healthy archive: {}",
        v1["gaps"]
    );
}

fn v2_forks_from_timeline_1(t: &TwoLineages) {
    let v2 = t.v2();
    assert_eq!(
        v2["timelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["timeline"] == 2)
            .unwrap()["parent"],
        1
    );
    assert_eq!(v2["backups"][0]["timeline"], 2);
}

fn v2_window_ends_at_last_batch(t: &TwoLineages) {
    let last_v2 = t
        .batches
        .iter()
        .rev()
        .find(|b| b.lineage == "app-v2")
        .unwrap();
    assert_eq!(t.v2()["window"]["last_wal"], last_v2.wal.as_str());
}

fn preflight_latest_on_v1(t: &TwoLineages) {
    let (code, ok_doc) = t.preflight("latest");
    assert_eq!(code, Some(0), "{ok_doc}");
    assert_eq!(
        ok_doc["result"]["expected_last_wal"],
        t.v1()["window"]["last_wal"]
    );
}

fn preflight_future_is_beyond_archive(t: &TwoLineages) {
    let (code, future) = t.preflight(&an_hour_from_now());
    assert_eq!(code, Some(1));
    assert_eq!(future["result"]["cause"], "target_beyond_archive");
}

fn gap_in_json(t: &TwoLineages) {
    let victim = t.victim();
    let doc = json(
        &t.sb
            .run(&["catalog", &t.dest, "--server", "app-v1", "--output", "json"]),
    );
    let gaps = doc["lineages"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["first_missing"], victim.as_str());
    assert_eq!(gaps[0]["missing_segments"], 1);
    assert_eq!(gaps[0]["next_present"], t.v1_batches()[2].wal.as_str());
}

fn gap_in_table(t: &TwoLineages) {
    let victim = t.victim();
    let table = ok(t.sb.run(&["catalog", &t.dest, "--server", "app-v1"]));
    assert!(
        table.contains(&format!("WAL GAP on timeline 1: {victim} missing")),
        "{table}"
    );
}

/// Batch 3's commit, restored from the first backup, needs the deleted segment.
fn target_across_gap_refused(t: &TwoLineages) {
    let (code, across) = t.preflight(&format!("time:{}", t.v1_batches()[2].committed_at));
    assert_eq!(code, Some(1), "{across}");
    assert_eq!(across["result"]["cause"], "wal_gap");
    assert_eq!(across["result"]["missing_wal"], t.victim().as_str());
    assert_eq!(across["result"]["backup_id"], t.first_backup.as_str());
}

fn target_before_gap_passes(t: &TwoLineages) {
    let (code, before) = t.preflight(&format!("time:{}", t.v1_batches()[0].committed_at));
    assert_eq!(code, Some(0), "{before}");
}

fn future_still_beyond_archive(t: &TwoLineages) {
    assert_eq!(
        t.preflight(&an_hour_from_now()).1["result"]["cause"],
        "target_beyond_archive"
    );
}

fn missing_bucket(t: &TwoLineages) {
    let out = t.sb.run(&["catalog", "s3://no-such-bucket/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

fn nothing_runs_after_down(t: &TwoLineages) {
    let pids = t.sb.pids();
    assert_eq!(pids.len(), 2, "store + active server: {pids:?}");
    t.sb.cmd(&["down"]);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
}

/// Runs every case; a failure is recorded as "case: message" and the next case runs.
fn run_cases(t: &TwoLineages, cases: &[Case], failures: &mut Vec<String>) {
    for (name, case) in cases {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(t))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    }
}

#[test]
fn two_lineages_match_barman_and_a_deleted_segment_is_the_gap() {
    let t = TwoLineages::grow();
    let mut failures = Vec::new();
    run_cases(&t, HEALTHY, &mut failures);
    t.delete_victim();
    run_cases(&t, WITH_GAP, &mut failures);
    run_cases(&t, LAST, &mut failures);
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
