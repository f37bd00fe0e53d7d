//! Scenario format v1: what to drill, to which targets, and what to check.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::barman::BarmanObjectStore;
use crate::checks::{CountPolicy, SqlCheck};
pub use crate::outcome::Expectation;

/// A drill scenario (YAML). Unknown keys are errors.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "pgdrill scenario v1")]
pub struct Scenario {
    /// Must be `pgdrill/v1`.
    pub api_version: String,
    /// Names the scenario in reports and metrics (and its report folder): at most 63
    /// characters, no `/` or `\`, not starting with `.`.
    #[serde(deserialize_with = "scenario_name")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub source: Source,
    /// `all` (default), a list of lineage names, or `{pattern: "app-v*"}`.
    #[serde(default)]
    pub lineages: LineageSelector,
    /// Where each drill restores to.
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub backend: BackendKind,
    /// Settings of the `cnpg` backend.
    #[serde(default)]
    pub cnpg: CnpgSettings,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Recovery time objective: restore plus recovery longer than this fails with `rto_exceeded`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub rto: Option<Spanned<DurationText>>,
    #[serde(default)]
    pub report: ReportSettings,
    /// Leave the scratch server (and its directory) for a human when a drill fails.
    #[serde(default)]
    pub keep_on_failure: bool,
    /// Cron schedule for `pgdrill schedule`: 5 fields (Kubernetes) or 6 (CNPG, with seconds).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<CronText>>,
}

/// Where the backups are: a `barmanObjectStore` block (as in a CNPG Cluster, pasted as is), or
/// a live Cluster whose archive settings pgdrill reads through the Kubernetes API.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    #[serde(default)]
    pub barman_object_store: Option<BarmanObjectStore>,
    /// A live CNPG Cluster: its ObjectStore (plugin) or `spec.backup.barmanObjectStore`, its
    /// serverName, image and storage; the credential Secrets are read from its namespace.
    #[serde(default)]
    pub cluster: Option<ClusterRef>,
    /// Directory of mounted Secrets (`<dir>/<secret>/<key>`) for the credential references.
    #[serde(default)]
    pub secrets_dir: Option<PathBuf>,
    /// Namespace whose Secrets the credential references name, read through the Kubernetes
    /// API (backend `cnpg` copies them into the drill's namespace).
    #[serde(default)]
    pub secrets_namespace: Option<String>,
}

/// A CNPG Cluster by namespace and name.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterRef {
    pub namespace: String,
    pub name: String,
}

/// `all`, a list of names, or `{pattern: "app-v*"}`.
#[derive(Clone, Debug, Default)]
pub enum LineageSelector {
    #[default]
    All,
    Keyword(Spanned<String>),
    List(Vec<Spanned<String>>),
    Pattern {
        pattern: Spanned<String>,
    },
}

/// `all`, a list of lineage names, or `{pattern: "app-v*"}`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum LineagesShape {
    Keyword(String),
    List(Vec<String>),
    Pattern { pattern: String },
}

impl JsonSchema for LineageSelector {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LineageSelector".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        LineagesShape::json_schema(g)
    }
}

impl<'de> FromSeqOrMap<'de> for LineageSelector {
    const EXPECTING: &'static str = "all, a list of lineage names, or {pattern: …}";
    fn from_seq<A: serde::de::SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        Vec::<Spanned<String>>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
            .map(LineageSelector::List)
    }
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct P {
            pattern: Spanned<String>,
        }
        P::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(|p| LineageSelector::Pattern { pattern: p.pattern })
    }
}

impl<'de> Deserialize<'de> for LineageSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Raw<LineageSelector>>::deserialize(d)?;
        Ok(match s.value {
            Raw::Str(k) => LineageSelector::Keyword(Spanned::new(k, s.referenced, s.defined)),
            Raw::Other(o) => o,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Local,
    Cnpg,
}

/// How a CNPG recovery cluster reads the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecoveryPath {
    /// The Barman Cloud plugin: an ObjectStore and `externalClusters[].plugin`.
    Plugin,
    /// The deprecated in-tree `externalClusters[].barmanObjectStore`.
    InTree,
}

/// How the `cnpg` backend builds its scratch recovery cluster.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CnpgSettings {
    /// `plugin` (Barman Cloud plugin, default) or `inTree` (deprecated `barmanObjectStore`).
    #[serde(default = "plugin_path")]
    pub recovery_path: RecoveryPath,
    /// A fixed namespace for drill clusters; by default each drill gets a scratch namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Defaults to the CNPG image of the backup's PostgreSQL major.
    #[serde(default)]
    pub image_name: Option<String>,
    /// Defaults to the backed-up size plus half, in GiB.
    #[serde(default)]
    pub storage_size: Option<String>,
    #[serde(default = "app")]
    pub database: String,
    #[serde(default = "app")]
    pub owner: String,
    /// Enable the superuser and verify as `postgres` (reads `<cluster>-superuser`); by default
    /// checks run as the database owner from `<cluster>-app`.
    #[serde(default)]
    pub enable_superuser_access: bool,
    /// How long drill objects live before `cleanup` may sweep them.
    #[serde(default = "six_hours")]
    #[schemars(with = "String")]
    pub ttl: DurationText,
}

impl Default for CnpgSettings {
    fn default() -> Self {
        Self {
            recovery_path: plugin_path(),
            namespace: None,
            image_name: None,
            storage_size: None,
            database: app(),
            owner: app(),
            enable_superuser_access: false,
            ttl: six_hours(),
        }
    }
}

fn plugin_path() -> RecoveryPath {
    RecoveryPath::Plugin
}
fn app() -> String {
    "app".into()
}
fn six_hours() -> DurationText {
    DurationText(std::time::Duration::from_secs(6 * 3600))
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    /// Database the checks run in.
    #[serde(default = "default_database")]
    pub database: String,
    /// Baseline file (from `pgdrill baseline record`), relative to the scenario.
    #[serde(default)]
    pub baseline: Option<PathBuf>,
    /// `all` (every user table, or every table of the baseline) or a list of `schema.table`.
    #[serde(default)]
    pub tables: Option<TablesSpec>,
    /// Count policy per target kind.
    #[serde(default)]
    pub counts: CountPolicies,
    #[serde(default)]
    pub sql: Vec<SqlCheck>,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            database: default_database(),
            baseline: None,
            tables: None,
            counts: CountPolicies::default(),
            sql: Vec::new(),
        }
    }
}

fn default_database() -> String {
    "postgres".into()
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TablesSpec {
    Keyword(String),
    List(Vec<String>),
}

/// `exact`, `atLeast` or `report` per target kind.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountPolicies {
    #[serde(default = "at_least")]
    pub latest: CountPolicy,
    #[serde(default = "exact")]
    pub baseline: CountPolicy,
    /// time, lsn, xid, name, immediate, random and oldest targets.
    #[serde(default = "report")]
    pub point_in_time: CountPolicy,
}

impl Default for CountPolicies {
    fn default() -> Self {
        Self {
            latest: at_least(),
            baseline: exact(),
            point_in_time: report(),
        }
    }
}

fn at_least() -> CountPolicy {
    CountPolicy::AtLeast
}
fn exact() -> CountPolicy {
    CountPolicy::Exact
}
fn report() -> CountPolicy {
    CountPolicy::Report
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "ten_minutes")]
    #[schemars(with = "String")]
    pub restore: Timeout,
    #[serde(default = "ten_minutes")]
    #[schemars(with = "String")]
    pub recovery: Timeout,
    #[serde(default = "thirty_seconds")]
    #[schemars(with = "String")]
    pub statement: Timeout,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            restore: ten_minutes(),
            recovery: ten_minutes(),
            statement: thirty_seconds(),
        }
    }
}

fn ten_minutes() -> Timeout {
    Timeout(std::time::Duration::from_secs(600))
}
fn thirty_seconds() -> Timeout {
    Timeout(std::time::Duration::from_secs(30))
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportSettings {
    /// Where reports are written (relative to the working directory); `--report-dir` overrides.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Any of `json`, `markdown`, `junit` (default: all three).
    #[serde(default = "all_formats")]
    pub formats: Vec<ReportFormat>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            dir: None,
            formats: all_formats(),
        }
    }
}

fn all_formats() -> Vec<ReportFormat> {
    vec![
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Junit,
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Markdown,
    Junit,
}

pub use super::cron::{CronText, cron_schedule};
pub use super::deserialize::{FromSeqOrMap, Raw};
pub use super::targets::{RandomTarget, TargetFields, TargetSpec, TimeText};
pub use crate::duration::{DurationText, Timeout, parse_duration};

/// A scenario name becomes a folder name and a metrics label: no path separators, no `..`.
fn scenario_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    let allowed = |c: char| !c.is_control() && !matches!(c, '/' | '\\');
    if name.trim().is_empty()
        || name.chars().count() > 63
        || !name.chars().all(allowed)
        || name.starts_with('.')
    {
        return Err(serde::de::Error::custom(format!(
            "invalid name {name:?}: expected 1 to 63 characters without '/', '\\' or control characters, not starting with '.'"
        )));
    }
    Ok(name)
}
