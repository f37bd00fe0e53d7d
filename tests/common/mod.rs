//! Helpers shared by the integration tests: run the real CLI, build fixture trees, and own
//! a sandbox that is always taken down.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `assert!` inside a case: fails that case and lets the others run.
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr $(,)?) => {{
        let holds: bool = $cond;
        if !holds {
            return Err(format!("not true: {}", stringify!($cond)));
        }
    }};
    ($cond:expr, $($msg:tt)+) => {{
        let holds: bool = $cond;
        if !holds {
            return Err(format!("not true: {}: {}", stringify!($cond), format_args!($($msg)+)));
        }
    }};
}

/// `assert_eq!` inside a case: fails that case and lets the others run.
#[allow(unused_macros)]
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {
        ensure_eq!($left, $right, "")
    };
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if *left != *right {
            return Err(format!(
                "{} == {}\n   left: {left:?}\n  right: {right:?}\n  {}",
                stringify!($left),
                stringify!($right),
                format_args!($($msg)+)
            ));
        }
    }};
}

/// One named case of a table: a check over the table's shared setup.
pub type Case<T> = fn(&T) -> Result<(), String>;

/// Runs every case in order, a panic included, and returns one line per failed case, named.
pub fn failures<T>(shared: &T, cases: &[(&str, Case<T>)]) -> Vec<String> {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    cases
        .iter()
        .filter_map(|(name, case)| {
            let outcome = catch_unwind(AssertUnwindSafe(|| case(shared))).unwrap_or_else(|panic| {
                let msg = (panic.downcast_ref::<String>().cloned())
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
                Err(format!("panicked: {}", msg.unwrap_or_default()))
            });
            outcome.err().map(|e| format!("[{name}] {e}"))
        })
        .collect()
}

pub const BIN: &str = env!("CARGO_BIN_EXE_pgdrill");

pub fn pgdrill(args: &[&str]) -> Output {
    pgdrill_env(args, &[])
}

pub fn pgdrill_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("PGDRILL_DESTINATION_PATH")
        .env_remove("PGDRILL_ENDPOINT_URL");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("pgdrill runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A sandbox directory whose processes are stopped when the test ends, pass or panic.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub fn up(store: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-")
            .tempdir()
            .expect("tempdir");
        let mut sb = Sandbox {
            dir,
            env: Vec::new(),
        };
        let out = pgdrill(&["sandbox", "up", "--dir", sb.path_str(), "--store", store]);
        assert!(
            out.status.success(),
            "sandbox up failed (run scripts/prereqs.sh):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        sb.reload_env();
        sb
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn var(&self, k: &str) -> String {
        self.env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} not in sandbox.env"))
    }

    pub fn reload_env(&mut self) {
        self.env = read_env_file(&self.dir.path().join("sandbox.env"));
    }

    /// Runs pgdrill with the sandbox's environment (credentials, endpoint).
    pub fn run(&self, args: &[&str]) -> Output {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pgdrill_env(args, &env)
    }

    pub fn cmd(&self, sub: &[&str]) -> String {
        let mut args = vec!["sandbox"];
        args.extend_from_slice(sub);
        args.extend_from_slice(&["--dir", self.path_str()]);
        ok(pgdrill(&args))
    }

    pub fn barman_json(&self, tool: &str, args: &[&str]) -> serde_json::Value {
        let bin = PathBuf::from(self.var("PGDRILL_BARMAN_BIN")).join(tool);
        let mut c = Command::new(bin);
        c.args(args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let out = c.output().expect("barman-cloud runs");
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("barman JSON")
    }

    /// The `source:` block of the sandbox's own drill.yaml.
    pub fn source_block(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("drill.yaml")).unwrap();
        let start = text.find("source:\n").unwrap();
        let end = text.find("lineages:").unwrap();
        text[start..end].to_string()
    }

    /// Writes `<name>.yaml`: a scenario over the sandbox's archive with `body` after `source:`.
    pub fn scenario(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.yaml"));
        let text = format!(
            "apiVersion: pgdrill/v1\nname: {name}\n{}{body}",
            self.source_block()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The sandbox's object store, opened as pgdrill opens it.
    pub fn store(&self) -> pgdrill::store::Store {
        let loaded = pgdrill::scenario::load(&self.dir.path().join("drill.yaml")).unwrap();
        pgdrill::store::StoreSpec::for_scenario(&loaded)
            .unwrap()
            .open()
            .unwrap()
    }

    /// Deletes one object of the archive; true when it was there (S3 deletes a missing key
    /// without a word).
    pub fn delete_object(&self, key: &str) -> bool {
        use object_store::ObjectStoreExt;
        let store = self.store();
        let path = object_store::path::Path::from(key);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let existed = store.inner.head(&path).await.is_ok();
            store.inner.delete(&path).await.unwrap();
            existed
        })
    }

    /// Pids of every process the sandbox started (store and PostgreSQL postmasters).
    pub fn pids(&self) -> Vec<u32> {
        let state: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir.path().join("sandbox.json")).unwrap(),
        )
        .unwrap();
        let mut pids = vec![state["store"]["pid"].as_u64().unwrap() as u32];
        for s in state["servers"].as_array().unwrap() {
            let pidfile = Path::new(s["data_dir"].as_str().unwrap()).join("postmaster.pid");
            if let Ok(t) = std::fs::read_to_string(pidfile) {
                pids.push(t.lines().next().unwrap().trim().parse().unwrap());
            }
        }
        pids
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = pgdrill(&["sandbox", "down", "--dir", self.path_str()]);
    }
}

/// Postmasters whose command line names `dir`.
pub fn postgres_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("postgres") && c.contains(needle))
        .collect()
}

/// True when the tests run as root (and can act as other local users).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

fn read_env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .expect("sandbox.env")
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// Writes a file in a fixture tree, creating its folders.
pub fn put(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

pub fn backup_info(begin_wal: &str, end_wal: &str, begin: &str, end: &str, extra: &str) -> String {
    let tli = u32::from_str_radix(&begin_wal[..8], 16).unwrap();
    format!(
        "begin_time={begin}\nbegin_wal={begin_wal}\nbegin_xlog=0/{b}000028\nend_time={end}\nend_wal={end_wal}\n\
         end_xlog=0/{e}000100\nstatus=DONE\ntimeline={tli}\nversion=150018\n{extra}",
        b = &begin_wal[23..],
        e = &end_wal[23..],
    )
}

/// Every segment name from `first` to `last` inclusive, 16 MiB segments.
pub fn wal_range(tli: u32, first: u64, last: u64) -> Vec<String> {
    (first..=last)
        .map(|n| format!("{tli:08X}{:08X}{:08X}", n / 256, n % 256))
        .collect()
}

pub fn put_wal(root: &Path, server: &str, name: &str, suffix: &str) {
    put(
        root,
        &format!("{server}/wals/{}/{name}{suffix}", &name[..16]),
        b"wal",
    );
}

/// The drill of a `pgdrill.report/v1` document with this target label.
pub fn drill<'a>(report: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    report["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == target)
        .unwrap_or_else(|| panic!("no drill {target}: {report}"))
}

/// (expected, actual) of a drill's row count check for `table`.
pub fn count(d: &serde_json::Value, table: &str) -> (String, String) {
    let c = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == format!("rows in {table}"))
        .unwrap_or_else(|| panic!("no count of {table}: {d}"));
    (
        c["expected"].as_str().unwrap().into(),
        c["actual"].as_str().unwrap().into(),
    )
}

/// Lineage app-v1 under `root`: backup 20260101T100000 (segment 2, 10:00–10:05 UTC, plus the
/// `extra_info` lines in its backup.info) and gzipped WAL from segment 2 to `last_segment`.
pub fn one_backup_archive(root: &Path, extra_info: &str, last_segment: u64) {
    let info = backup_info(
        "000000010000000000000002",
        "000000010000000000000002",
        "2026-01-01 10:00:00+00:00",
        "2026-01-01 10:05:00+00:00",
        extra_info,
    );
    put(
        root,
        "app-v1/base/20260101T100000/backup.info",
        info.as_bytes(),
    );
    for name in wal_range(1, 2, last_segment) {
        put_wal(root, "app-v1", &name, ".gz");
    }
}
