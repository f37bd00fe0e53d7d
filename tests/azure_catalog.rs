//! The Azure Blob path against Azurite: barman-cloud archives and backs up into it, pgdrill
//! lists and reads it (backups, backup.info, WAL), and a wrong key is refused clearly.

mod common;

use common::*;

#[test]
fn azurite_archive_is_cataloged_like_barman_lists_it() {
    let sb = Sandbox::up("azure");
    let dest = sb.var("PGDRILL_DESTINATION_PATH");
    assert!(dest.contains("/devstoreaccount1/"), "{dest}");
    let backup = sb.cmd(&["backup"]).trim().to_string();
    sb.cmd(&["workload", "--batches", "2", "--rows", "200"]);
    let batches = pgdrill::sandbox::read_workload(sb.dir.path()).unwrap();

    let doc = json(&sb.run(&["catalog", &dest, "--output", "json"]));
    let l = &doc["lineages"][0];
    assert_eq!(l["server_name"], "app-v1");
    let barman = sb.barman_json(
        "barman-cloud-backup-list",
        &[
            "--cloud-provider",
            "azure-blob-storage",
            "--format",
            "json",
            &dest,
            "app-v1",
        ],
    );
    let ours = &l["backups"][0];
    let theirs = &barman["backups_list"][0];
    assert_eq!(ours["backup_id"], backup.as_str());
    for key in [
        "backup_id",
        "begin_wal",
        "end_wal",
        "status",
        "begin_xlog",
        "end_xlog",
        "timeline",
        "version",
    ] {
        let ours_key = match key {
            "begin_xlog" => "begin_lsn",
            "end_xlog" => "end_lsn",
            "version" => "server_version",
            k => k,
        };
        assert_eq!(ours[ours_key], theirs[key], "{key}");
    }
    assert_eq!(barman["backups_list"].as_array().unwrap().len(), 1);
    // WAL: every batch's segment is listed, and the window ends at the last one.
    assert!(l["wal"]["segments"].as_u64().unwrap() >= 3, "{}", l["wal"]);
    assert_eq!(l["wal"]["by_compression"]["gz"], l["wal"]["segments"]);
    assert_eq!(
        l["window"]["last_wal"],
        batches.last().unwrap().wal.as_str()
    );
    assert!(l["gaps"].as_array().unwrap().is_empty());

    // A wrong account key: one line, exit 2, and the key is not echoed.
    let good = sb.var("AZURE_STORAGE_CONNECTION_STRING");
    let bad = good.replace("AccountKey=Eby8", "AccountKey=Xby8");
    let out = pgdrill_env(
        &["catalog", &dest],
        &[("AZURE_STORAGE_CONNECTION_STRING", &bad)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("Xby8"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);

    // A whole drill through Azure: barman-cloud-restore and WAL from Azurite, credentials from
    // the sandbox's mounted-Secret folder.
    let drill = sb.dir.path().join("drill.yaml");
    let reports = sb.dir.path().join("reports");
    let out = pgdrill(&[
        "run",
        "-f",
        drill.to_str().unwrap(),
        "--output",
        "json",
        "--report-dir",
        reports.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["drills"][0]["verdict"], "pass");
    let rows = report["drills"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rows in public.accounts")
        .unwrap()
        .clone();
    assert_eq!(rows["actual"], "400");
}
