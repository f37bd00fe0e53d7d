//! Bad input gives one clear line and the documented exit code, never a panic.

mod common;

use common::*;

fn one_line_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn unreachable_endpoint_exits_2() {
    let out = pgdrill_env(
        &[
            "catalog",
            "s3://bucket/path",
            "--endpoint-url",
            "http://127.0.0.1:9",
        ],
        &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
    );
    one_line_error(&out, 2, "unreachable");
    assert!(
        stderr(&out).contains("127.0.0.1:9"),
        "names the endpoint: {}",
        stderr(&out)
    );
}

#[test]
fn malformed_destination_is_usage_error() {
    let out = pgdrill(&["catalog", "bucket/path"]);
    one_line_error(&out, 64, "invalid destinationPath");
}

#[test]
fn bad_target_is_usage_error() {
    let out = pgdrill(&[
        "preflight",
        "file:///tmp",
        "--server",
        "x",
        "--target",
        "tomorrow",
    ]);
    one_line_error(&out, 64, "invalid target");
}

#[test]
fn unknown_flag_is_usage_error() {
    let out = pgdrill(&["catalog", "--bogus"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn store_file_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("store.yaml");
    std::fs::write(
        &f,
        "destinationPath: s3://b/p\ns3Credentials:\n  accessKeyID: {name: x, key: y}\n",
    )
    .unwrap();
    let out = pgdrill(&["catalog", "--store-file", f.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("store.yaml:3:3: unknown field `accessKeyID`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn secrets_are_read_from_the_secrets_dir_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("store.yaml");
    std::fs::write(
        &f,
        "barmanObjectStore:\n  destinationPath: s3://b/p\n  endpointURL: http://127.0.0.1:9\n  s3Credentials:\n    \
         accessKeyId: {name: creds, key: ACCESS}\n    secretAccessKey: {name: creds, key: SECRET}\n",
    )
    .unwrap();
    let run = || {
        pgdrill(&[
            "catalog",
            "--store-file",
            f.to_str().unwrap(),
            "--secrets-dir",
            dir.path().to_str().unwrap(),
        ])
    };
    let out = run();
    one_line_error(&out, 2, "secret \"creds\" key \"ACCESS\"");
    put(dir.path(), "creds/ACCESS", b"AKIASUPERSECRET\n");
    put(dir.path(), "creds/SECRET", b"hunter2-secret\n");
    let out = run();
    one_line_error(&out, 2, "unreachable");
    assert!(!stderr(&out).contains("AKIASUPERSECRET") && !stderr(&out).contains("hunter2"));
}

/// Flags that name where a secret is take the name of an environment variable: a secret
/// pasted as their value is refused and never echoed.
#[test]
fn secrets_never_come_from_flag_values() {
    let cases: [(&str, Vec<&str>); 2] = [
        (
            "--source-url-env",
            vec![
                "baseline",
                "record",
                "--name",
                "n",
                "--source-url-env",
                "postgresql://app:s3cr3t-pw@db:5432/app",
            ],
        ),
        (
            "--webhook-url-env",
            vec![
                "run",
                "-f",
                "missing.yaml",
                "--webhook-url-env",
                "https://hooks.slack.com/services/T0/B0/s3cr3t-pw",
            ],
        ),
    ];
    for (flag, args) in cases {
        let out = pgdrill(&args);
        one_line_error(&out, 64, "takes the name of an environment variable");
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !all.contains("s3cr3t-pw"),
            "{flag} echoed the secret: {all}"
        );
    }
    // The name form reads the variable.
    let out = pgdrill_env(
        &[
            "baseline",
            "record",
            "--name",
            "n",
            "--out",
            "/dev/null",
            "--source-url-env",
            "MY_SOURCE",
        ],
        &[("MY_SOURCE", "postgresql://app:s3cr3t-pw@127.0.0.1:9/app")],
    );
    one_line_error(&out, 2, "connecting to the source");
    assert!(!stderr(&out).contains("s3cr3t-pw"), "{}", stderr(&out));
}
