//! Nobody but pgdrill reaches a scratch server or the sandbox's source server: they listen on a
//! Unix socket in a folder only PostgreSQL's user can enter, not on TCP; even a server kept
//! for a human (`keepOnFailure`) stays closed to other local users. Real sandbox: PostgreSQL,
//! barman-cloud, S3 on loopback.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// `psql -c 'select 1'` to `host` as the OS user `as_user` (None: this process).
fn psql(as_user: Option<&str>, host: &str, port: &str) -> bool {
    let mut c = match as_user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", "psql"]);
            c
        }
        None => Command::new("psql"),
    };
    c.args(["-h", host, "-p", port, "-U", "postgres", "-d", "postgres"])
        .args(["-w", "-At", "-c", "select 1"])
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1")
}

/// The sandbox's source server: reachable through its socket by pgdrill's user only.
fn source_problems(sb: &Sandbox) -> Vec<String> {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.dir.path().join("sandbox.json")).unwrap())
            .unwrap();
    let server = &state["servers"][0];
    let data = Path::new(server["data_dir"].as_str().unwrap());
    let sock = data.parent().unwrap().join("sock");
    let (sock, port) = (sock.to_str().unwrap(), server["port"].to_string());
    let mut problems = Vec::new();
    if !psql(None, sock, &port) {
        problems.push("pgdrill's own user cannot reach the sandbox source".to_string());
    }
    if psql(Some("nobody"), sock, &port) {
        problems.push(format!(
            "user nobody connected to the sandbox source through {sock}"
        ));
    }
    if psql(Some("nobody"), "127.0.0.1", &port) {
        problems.push(format!(
            "user nobody connected to the sandbox source over TCP ({port})"
        ));
    }
    problems
}

#[test]
fn another_local_user_cannot_reach_a_kept_scratch_server_or_the_sandbox_source() {
    if !is_root() {
        eprintln!("skipped: needs root to act as another local user");
        return;
    }
    let sb = Sandbox::up("s3");
    sb.cmd(&["backup"]);
    let file = sb.scenario(
        "kept",
        "targets: [latest]\nkeepOnFailure: true\n\
         checks:\n  sql:\n    - {name: fails on purpose, query: select 1, expect: 2}\n",
    );
    let work = tempfile::tempdir().unwrap();
    let out = pgdrill(&[
        "run",
        "-f",
        file.to_str().unwrap(),
        "--output",
        "json",
        "--work-dir",
        work.path().to_str().unwrap(),
        "--report-dir",
        sb.dir.path().join("reports").to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let kept = report["drills"][0]["kept_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !kept.is_empty(),
        "no kept server: {report}\n{}",
        stderr(&out)
    );
    let data = Path::new(&kept).join("pgdata");
    let pidfile = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let port = pidfile.lines().nth(3).unwrap().trim().to_string();
    let mut problems = source_problems(&sb);
    if !psql(None, &kept, &port) {
        problems
            .push("pgdrill's own user cannot reach the kept server (is it running?)".to_string());
    }
    if psql(Some("nobody"), &kept, &port) {
        problems.push(format!(
            "user nobody connected through the socket in {kept}"
        ));
    }
    if psql(Some("nobody"), "127.0.0.1", &port) {
        problems.push(format!("user nobody connected over TCP to port {port}"));
    }
    let _ = Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
        ])
        .arg(&data)
        .args(["-m", "immediate", "-w", "stop"])
        .status();
    let _ = std::fs::remove_dir_all(&kept);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
