//! The recovery settings a restored data directory gets, as CNPG's full-recovery job writes
//! them (`pkg/management/postgres/restore.go`, `BuildPostgresOptions`).

use std::path::Path;

use crate::target::Target;
use crate::target::render::{postgres_settings, quote};

/// Everything appended to `postgresql.auto.conf` of a scratch server: loopback only, no
/// archiving into any lineage, WAL fetched with barman-cloud, promote at the target.
pub fn recovery_conf(
    target: &Target,
    restore_command: &str,
    port: u16,
    drill_dir: &Path,
    data_dir: &Path,
    loopback: bool,
) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("port", port.to_string()),
        (
            "listen_addresses",
            quote(if loopback { "127.0.0.1" } else { "" }),
        ),
        (
            "unix_socket_directories",
            quote(&drill_dir.display().to_string()),
        ),
        (
            "hba_file",
            quote(&data_dir.join("pg_hba.conf").display().to_string()),
        ),
        (
            "ident_file",
            quote(&data_dir.join("pg_ident.conf").display().to_string()),
        ),
        // A restored directory inherits the source's archive_command: it must never run.
        ("archive_mode", "off".into()),
        ("archive_command", quote("false")),
        ("ssl", "off".into()),
        ("logging_collector", "off".into()),
        ("log_destination", quote("stderr")),
        ("hot_standby", "on".into()),
        ("restore_command", quote(restore_command)),
        ("recovery_target_timeline", quote("latest")),
        ("recovery_target_action", quote("promote")),
    ];
    lines.extend(postgres_settings(&target.point));
    let mut out = String::from("\n# pgdrill: scratch recovery\n");
    for (k, v) in lines {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// Who may connect: through the socket, in a folder only PostgreSQL's user can enter; over
/// loopback only for a server standing in for a pod (see `LocalRequest::listen_on_loopback`).
pub fn pg_hba(loopback: bool) -> &'static str {
    if loopback {
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    } else {
        "local all all trust\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_archives() {
        let conf = recovery_conf(
            &"latest".parse().unwrap(),
            "x %f %p",
            5432,
            Path::new("/d"),
            Path::new("/d/data"),
            false,
        );
        assert!(conf.contains("archive_mode = off"));
        assert!(conf.contains("archive_command = 'false'"));
        assert!(conf.contains("recovery_target_action = 'promote'"));
        assert!(!conf.contains("recovery_target_time ="));
        assert!(conf.contains("listen_addresses = ''"), "no TCP: {conf}");
        assert!(!pg_hba(false).contains("host "));
    }
}
