//! Small process and port helpers shared by the sandbox and the local backend.

use std::path::Path;

/// True while `pid` names a live process (a zombie, state `Z`, does not count).
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// SIGKILL to a process, or with `group` to its whole process group, by syscall: teardown
/// must not depend on a `kill` binary on PATH. A process already gone is not an error.
pub fn kill(pid: u32, group: bool) {
    send(pid, group, rustix::process::Signal::KILL);
}

/// SIGTERM, as `kill` sends SIGKILL.
pub fn terminate(pid: u32, group: bool) {
    send(pid, group, rustix::process::Signal::TERM);
}

fn send(pid: u32, group: bool, signal: rustix::process::Signal) {
    use rustix::process::{Pid, kill_process, kill_process_group};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = if group {
        kill_process_group(pid, signal)
    } else {
        kill_process(pid, signal)
    };
}

/// A free TCP port on 127.0.0.1 (released before use; fine on a single machine).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The live postmaster of a data directory, from its `postmaster.pid`.
pub fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines()
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|p| pid_alive(*p))
}
