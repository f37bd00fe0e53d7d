//! Reading a scenario file: `${VAR}` expansion, strict YAML, and the checks serde cannot do.
//! Every error is one line, `file:line:column: problem`.

use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use super::targets::ScenarioTarget;
use super::types::{BackendKind, LineageSelector, Scenario};
use crate::barman::config::yaml_error;
use crate::baseline::Baseline;

pub const API_VERSION: &str = "pgdrill/v1";

/// A scenario with its file and the baseline it references, loaded.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub scenario: Scenario,
    pub baseline: Option<Baseline>,
    /// The scenario's targets in the one target grammar, in order.
    pub targets: Vec<ScenarioTarget>,
}

pub(super) fn at<T>(path: &Path, s: &Spanned<T>, problem: impl std::fmt::Display) -> String {
    format!(
        "{}:{}:{}: {problem}",
        path.display(),
        s.referenced.line(),
        s.referenced.column()
    )
}

/// Scenario files are small; a larger one (or `/dev/zero`) is refused before it is read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{}: larger than {} KiB: not a scenario file",
            path.display(),
            MAX_FILE_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// Replaces `${NAME}` with the environment variable; an unset variable, or a value that would
/// change the YAML's structure (a line break), is an error.
pub fn expand_env(path: &Path, text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + len];
            let place = format!(
                "{}:{}:{}",
                path.display(),
                i + 1,
                line.len() - rest.len() + start + 1
            );
            let value = std::env::var(name)
                .map_err(|_| format!("{place}: environment variable {name} is not set"))?;
            if value.contains(['\n', '\r']) {
                return Err(format!(
                    "{place}: environment variable {name} holds a line break: a value may not add YAML lines"
                ));
            }
            out.push_str(&rest[..start]);
            out.push_str(&value);
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

pub fn load(path: &Path) -> Result<Loaded, String> {
    load_with(path, true)
}

/// `with_baseline: false` reads the scenario without its baseline file (which
/// `pgdrill baseline record` is about to write).
pub fn load_with(path: &Path, with_baseline: bool) -> Result<Loaded, String> {
    let raw = read_bounded(path)?;
    from_text(path, &raw, with_baseline)
}

/// A scenario from its text; `path` names it in errors and anchors its relative paths.
pub fn from_text(path: &Path, raw: &str, with_baseline: bool) -> Result<Loaded, String> {
    let text = expand_env(path, raw)?;
    // YAML 1.2 booleans only: `yes`/`no`/`on`/`off` are strings, never a silent `true`.
    let options = serde_saphyr::options! { strict_booleans: true };
    let scenario: Scenario = serde_saphyr::from_str_with_options(&text, options)
        .map_err(|e| yaml_error(path, &e.to_string()))?;
    check_header(path, &scenario)?;
    check_source(path, &scenario)?;
    check_cnpg(path, &scenario)?;
    check_lineages(path, &scenario)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let baseline = match &scenario.checks.baseline {
        Some(file) if with_baseline => Some(Baseline::load(&base.join(file))?),
        _ => None,
    };
    let targets = scenario
        .targets
        .iter()
        .map(|t| t.request(path, baseline.as_ref(), with_baseline))
        .collect::<Result<Vec<_>, _>>()?;
    check_sql(path, &scenario)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        scenario,
        baseline,
        targets,
    })
}

fn check_header(path: &Path, scenario: &Scenario) -> Result<(), String> {
    if scenario.api_version != API_VERSION {
        return Err(format!(
            "{}: apiVersion {:?}: expected {API_VERSION:?}",
            path.display(),
            scenario.api_version
        ));
    }
    if scenario.targets.is_empty() {
        return Err(format!(
            "{}: targets: at least one target is required",
            path.display()
        ));
    }
    Ok(())
}

fn check_source(path: &Path, scenario: &Scenario) -> Result<(), String> {
    let src = &scenario.source;
    match (&src.barman_object_store, &src.cluster) {
        (Some(_), None) | (None, Some(_)) => {}
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: source: expected one of barmanObjectStore or cluster, found both",
                path.display()
            ));
        }
        (None, None) => {
            return Err(format!(
                "{}: source: expected barmanObjectStore (the archive) or cluster ({{namespace, name}} of a live CNPG Cluster)",
                path.display()
            ));
        }
    }
    if src.secrets_dir.is_some() && (src.secrets_namespace.is_some() || src.cluster.is_some()) {
        return Err(format!(
            "{}: source.secretsDir: not with source.cluster or source.secretsNamespace (Secrets come from the cluster then)",
            path.display()
        ));
    }
    Ok(())
}

fn check_cnpg(path: &Path, scenario: &Scenario) -> Result<(), String> {
    if scenario.backend != BackendKind::Cnpg {
        return Ok(());
    }
    let t = &scenario.timeouts;
    let needed = t.restore.0 + t.recovery.0 + std::time::Duration::from_secs(600);
    if scenario.cnpg.ttl.0 < needed {
        return Err(format!(
            "{}: cnpg.ttl: {}s is shorter than timeouts.restore + timeouts.recovery + 10m ({}s): another run's sweep could delete a drill still running",
            path.display(),
            scenario.cnpg.ttl.0.as_secs(),
            needed.as_secs()
        ));
    }
    Ok(())
}

fn check_lineages(path: &Path, scenario: &Scenario) -> Result<(), String> {
    match &scenario.lineages {
        LineageSelector::Keyword(k) if k.value != "all" => Err(at(
            path,
            k,
            format!(
                "lineages: expected all, a list of names or {{pattern: …}}, found {:?}",
                k.value
            ),
        )),
        LineageSelector::List(l) if l.is_empty() => {
            Err(format!("{}: lineages: the list is empty", path.display()))
        }
        _ => Ok(()),
    }
}

fn check_sql(path: &Path, scenario: &Scenario) -> Result<(), String> {
    for c in &scenario.checks.sql {
        if !crate::checks::OPS.contains(&c.op.as_str()) {
            return Err(format!(
                "{}: checks.sql {:?}: op {:?}: expected one of {}",
                path.display(),
                c.name,
                c.op,
                crate::checks::OPS.join(" ")
            ));
        }
    }
    Ok(())
}

impl Loaded {
    /// A path from the scenario, relative to the scenario's folder.
    pub fn relative(&self, p: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// True when reading the source needs the Kubernetes API.
    pub fn source_needs_kubernetes(&self) -> bool {
        let src = &self.scenario.source;
        src.cluster.is_some() || src.secrets_namespace.is_some()
    }
}
