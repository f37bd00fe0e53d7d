//! Recovery settings as CNPG writes them, pg_hba, and files owned by the postgres user.

use std::path::Path;

use super::scratch::DirGuard;
use super::{BarmanCloud, LocalRequest};
use crate::backend::settings::{pg_hba, recovery_conf};
use crate::backend::{Failure, Stage, error};
use crate::tools;

/// Writes the recovery configuration into the restored data directory; returns the loopback
/// port the server will listen on.
pub(super) fn configure(
    req: &LocalRequest,
    barman: &BarmanCloud,
    guard: &DirGuard,
) -> Result<u16, Failure> {
    let restore_cmd = wal_restore_command(req, barman);
    let port = crate::proc::free_port()
        .map_err(|e| error(Stage::Recover, format!("finding a free port: {e}")))?;
    // sun_path holds 107 bytes: a longer socket path would stop PostgreSQL at start.
    let socket = guard.dir.join(format!(".s.PGSQL.{port}"));
    if socket.as_os_str().len() > 107 {
        return Err(error(
            Stage::Recover,
            format!(
                "{} is too long for a Unix socket path (107 bytes): choose a shorter --work-dir",
                socket.display()
            ),
        ));
    }
    let conf = recovery_conf(
        &req.target,
        &restore_cmd,
        port,
        &guard.dir,
        &guard.data_dir,
        req.listen_on_loopback,
    );
    let data_dir = &guard.data_dir;
    write_owned(data_dir, "postgresql.auto.conf", &conf, true)?;
    write_owned(
        data_dir,
        "pg_hba.conf",
        pg_hba(req.listen_on_loopback),
        false,
    )?;
    write_owned(data_dir, "pg_ident.conf", "", true)?;
    write_owned(data_dir, "recovery.signal", "", false)?;
    Ok(port)
}

/// `restore_command`: barman-cloud-wal-restore with the store's arguments, `%f` and `%p`.
fn wal_restore_command(req: &LocalRequest, barman: &BarmanCloud) -> String {
    let mut restore_cmd = vec![quote_arg(
        &barman
            .bin
            .join("barman-cloud-wal-restore")
            .display()
            .to_string(),
    )];
    restore_cmd.extend(barman.args.iter().map(|a| quote_arg(a)));
    restore_cmd.extend([
        quote_arg(&req.store.destination_path),
        quote_arg(&req.server_name),
        "%f".into(),
        "%p".into(),
    ]);
    restore_cmd.join(" ")
}

/// Appends to (or replaces) `name` in the data directory and gives it to the postgres user.
fn write_owned(data_dir: &Path, name: &str, content: &str, append: bool) -> Result<(), Failure> {
    use std::io::Write;
    let path = data_dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(&path)
        .map_err(|e| error(Stage::Recover, format!("{}: {e}", path.display())))?;
    f.write_all(content.as_bytes())
        .map_err(|e| error(Stage::Recover, format!("{}: {e}", path.display())))?;
    tools::give_to_postgres(&path)
        .map_err(|e| error(Stage::Recover, format!("chown {}: {e}", path.display())))
}

fn quote_arg(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:=%@".contains(c))
    {
        a.to_string()
    } else {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    }
}
