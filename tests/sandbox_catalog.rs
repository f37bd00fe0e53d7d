//! The catalog against a real sandbox: PostgreSQL 15 archiving with barman-cloud into an S3
//! endpoint on loopback, two lineages (v2 grown by restore + promote), several backups.

mod common;

use common::*;
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

#[test]
fn two_lineages_match_barman_and_a_deleted_segment_is_the_gap() {
    let mut sb = Sandbox::up("s3");
    let dest = sb.var("PGDRILL_DESTINATION_PATH");
    let endpoint = sb.var("PGDRILL_ENDPOINT_URL");

    // Lineage v1: backup, three batches, a second backup, two more batches.
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
    // Lineage v2: the DR path.
    sb.cmd(&["new-lineage"]);
    sb.reload_env();
    assert_eq!(sb.var("PGDRILL_SERVER_NAME"), "app-v2");
    sb.cmd(&["workload", "--batches", "1", "--rows", "500"]);
    let batches = pgdrill::sandbox::read_workload(sb.dir.path()).unwrap();
    assert_eq!(batches.len(), 6);

    // Every lineage, compared with barman-cloud-backup-list for the same lineage.
    let doc = json(&sb.run(&["catalog", &dest, "--output", "json"]));
    let lineages = doc["lineages"].as_array().unwrap();
    let names: Vec<&str> = lineages
        .iter()
        .map(|l| l["server_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app-v1", "app-v2"]);
    for l in lineages {
        let server = l["server_name"].as_str().unwrap();
        let barman = sb.barman_json(
            "barman-cloud-backup-list",
            &[
                "--endpoint-url",
                &endpoint,
                "--format",
                "json",
                &dest,
                server,
            ],
        );
        assert_eq!(
            backup_keys(&l["backups"]),
            backup_keys(&barman["backups_list"]),
            "lineage {server}"
        );
    }
    let v1 = &lineages[0];
    assert_eq!(v1["backups"].as_array().unwrap().len(), 2);
    assert!(
        v1["gaps"].as_array().unwrap().is_empty(),
        "healthy archive: {}",
        v1["gaps"]
    );
    let v2 = &lineages[1];
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
    // The v2 archive ends at the WAL of its last batch.
    let last_v2 = batches
        .iter()
        .rev()
        .find(|b| b.lineage == "app-v2")
        .unwrap();
    assert_eq!(v2["window"]["last_wal"], last_v2.wal.as_str());

    // Preflight on the healthy v1 archive.
    let v1_batches: Vec<_> = batches.iter().filter(|b| b.lineage == "app-v1").collect();
    let pre = |target: &str| {
        let out = sb.run(&[
            "preflight",
            &dest,
            "--server",
            "app-v1",
            "--target",
            target,
            "--output",
            "json",
        ]);
        (out.status.code(), json(&out))
    };
    let (code, ok_doc) = pre("latest");
    assert_eq!(code, Some(0), "{ok_doc}");
    assert_eq!(
        ok_doc["result"]["expected_last_wal"],
        v1["window"]["last_wal"]
    );
    let (code, future) = pre(&format!(
        "time:{}",
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)
    ));
    assert_eq!(code, Some(1));
    assert_eq!(future["result"]["cause"], "target_beyond_archive");

    // Delete the segment that holds batch 2 (between the first backup and batch 3).
    let victim = v1_batches[1].wal.clone();
    // Credentials through a CNPG-shaped block and a directory of mounted Secrets.
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
        destination_path: dest.clone(),
        endpoint_url: Some(endpoint.clone()),
        s3_credentials: Some(S3Credentials {
            access_key_id: sel("ACCESS_KEY_ID"),
            secret_access_key: sel("ACCESS_SECRET_KEY"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let store = StoreSpec {
        destination_path: dest.clone(),
        block: Some(block),
        secrets_dir: Some(sb.dir.path().join("secrets")),
        ..Default::default()
    }
    .open()
    .unwrap();
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

    let doc = json(&sb.run(&["catalog", &dest, "--server", "app-v1", "--output", "json"]));
    let gaps = doc["lineages"][0]["gaps"].as_array().unwrap().clone();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["first_missing"], victim.as_str());
    assert_eq!(gaps[0]["missing_segments"], 1);
    assert_eq!(gaps[0]["next_present"], v1_batches[2].wal.as_str());
    let table = ok(sb.run(&["catalog", &dest, "--server", "app-v1"]));
    assert!(
        table.contains(&format!("WAL GAP on timeline 1: {victim} missing")),
        "{table}"
    );

    // A target across the gap (batch 3's commit, restored from the first backup) is refused.
    let (code, across) = pre(&format!("time:{}", v1_batches[2].committed_at));
    assert_eq!(code, Some(1), "{across}");
    assert_eq!(across["result"]["cause"], "wal_gap");
    assert_eq!(across["result"]["missing_wal"], victim.as_str());
    assert_eq!(across["result"]["backup_id"], first_backup.as_str());
    // Before the gap is still fine.
    let (code, before) = pre(&format!("time:{}", v1_batches[0].committed_at));
    assert_eq!(code, Some(0), "{before}");
    // Still beyond the archive after it.
    assert_eq!(
        pre(&format!(
            "time:{}",
            jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)
        ))
        .1["result"]["cause"],
        "target_beyond_archive"
    );

    // Missing bucket: one clear line, exit 2.
    let out = sb.run(&["catalog", "s3://no-such-bucket/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    // After down, nothing of the sandbox runs.
    let pids = sb.pids();
    assert_eq!(pids.len(), 2, "store + active server: {pids:?}");
    sb.cmd(&["down"]);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after down");
    }
}
