//! Finding the external programs pgdrill drives: PostgreSQL, barman-cloud, and the loopback
//! object stores the sandbox uses. `scripts/prereqs.sh` installs the last two into `.tools/`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The project-local tools folder: `$PGDRILL_TOOLS`, else the nearest `.tools/` above the
/// binary or the working directory.
pub fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGDRILL_TOOLS") {
        return Some(PathBuf::from(dir));
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    starts.into_iter().flatten().find_map(|start| {
        start
            .ancestors()
            .map(|a| a.join(".tools"))
            .find(|p| p.is_dir())
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Directory holding `barman-cloud-*` (the project venv first, then PATH).
pub fn barman_bin() -> Option<PathBuf> {
    let venv = tools_dir()
        .map(|t| t.join("barman/bin"))
        .filter(|d| d.join("barman-cloud-backup").is_file());
    venv.or_else(|| on_path("barman-cloud-backup").and_then(|p| p.parent().map(Path::to_path_buf)))
}

pub fn moto_server() -> Option<PathBuf> {
    tools_dir()
        .map(|t| t.join("moto/bin/moto_server"))
        .filter(|p| p.is_file())
        .or_else(|| on_path("moto_server"))
}

pub fn azurite_blob() -> Option<PathBuf> {
    tools_dir()
        .map(|t| t.join("azurite/node_modules/.bin/azurite-blob"))
        .filter(|p| p.exists())
        .or_else(|| on_path("azurite-blob"))
}

/// PostgreSQL server binaries: `$PGDRILL_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else `pg_ctl` on PATH.
pub fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PGDRILL_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .or_else(|| on_path("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf)))
}

/// PostgreSQL refuses to run as root, so as root its commands run as `postgres` via runuser
/// (which keeps the environment, credentials included).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// uid and gid of the `postgres` user, from /etc/passwd.
pub fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&"postgres") && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// A command that runs as the PostgreSQL user (itself when not root).
pub fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Makes `path` owned by the PostgreSQL user when running as root.
pub fn give_to_postgres(path: &Path) -> std::io::Result<()> {
    if is_root()
        && let Some((uid, gid)) = postgres_ids()
    {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// The programs a local drill executes: PostgreSQL's and barman-cloud's restore tools.
pub fn drill_programs(pg_bin: &Path, barman_bin: &Path) -> [PathBuf; 4] {
    [
        pg_bin.join("pg_ctl"),
        pg_bin.join("postgres"),
        barman_bin.join("barman-cloud-restore"),
        barman_bin.join("barman-cloud-wal-restore"),
    ]
}

/// Runs `program --version` as the user PostgreSQL runs as (what a drill will do); its first
/// line, or why it cannot run.
pub fn runs_as_postgres(program: &Path) -> Result<String, String> {
    let out = as_postgres(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let first = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if !out.status.success() {
        let why = first(&out.stderr);
        let who = if is_root() {
            "the postgres user"
        } else {
            "this user"
        };
        return Err(format!(
            "{} cannot be run by {who}: {}",
            program.display(),
            if why.is_empty() {
                out.status.to_string()
            } else {
                why
            }
        ));
    }
    Ok(if out.stdout.is_empty() {
        first(&out.stderr)
    } else {
        first(&out.stdout)
    })
}

/// Whether the user PostgreSQL runs as can enter and write `dir`.
pub fn postgres_can_use(dir: &Path) -> Result<(), String> {
    let ok = as_postgres(Path::new("test"))
        .args(["-w"])
        .arg(dir)
        .args(["-a", "-x"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the postgres user cannot enter or write {}: give it search permission on every folder above (or choose another --work-dir)",
            dir.display()
        ))
    }
}

/// First line of `program --version`, if it runs.
pub fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}
