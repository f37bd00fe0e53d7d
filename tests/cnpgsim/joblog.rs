//! Log lines as CNPG's instance manager writes them: JSON, PostgreSQL's own lines wrapped as
//! `{"logger":"postgres","msg":"record","record":{"error_severity":…,"message":…}}`.

use serde_json::json;

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

pub fn info(pod: &str, msg: &str) -> String {
    json!({"level": "info", "ts": now(), "msg": msg, "logging_pod": pod}).to_string() + "\n"
}

pub fn error(pod: &str, msg: &str, err: &str) -> String {
    json!({"level": "error", "ts": now(), "msg": msg, "logging_pod": pod, "error": err}).to_string()
        + "\n"
}

/// A plain PostgreSQL log (`2026-… UTC [123] LOG:  message`) as CNPG JSON records.
pub fn postgres(pod: &str, plain: &str) -> String {
    let mut out = String::new();
    for line in plain.lines() {
        let Some((severity, message)) = [
            "LOG", "FATAL", "ERROR", "WARNING", "PANIC", "DETAIL", "HINT",
        ]
        .iter()
        .find_map(|s| {
            line.find(&format!("{s}:  "))
                .map(|i| (*s, line[i + s.len() + 3..].to_string()))
        }) else {
            continue;
        };
        let backend_type = if message.contains("redo") || message.contains("recovery") {
            "startup"
        } else {
            "postmaster"
        };
        out.push_str(
            &(json!({
                "level": "info", "ts": now(), "logger": "postgres", "msg": "record",
                "logging_pod": pod,
                "record": {
                    "log_time": now(), "error_severity": severity,
                    "sql_state_code": if severity == "FATAL" { "XX000" } else { "00000" },
                    "message": message, "backend_type": backend_type,
                }
            })
            .to_string()
                + "\n"),
        );
    }
    out
}
