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
    /// Names the scenario in reports and metrics.
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

/// A string, or a value built from a sequence or a map with the live deserializer, so that
/// errors inside keep their line and column (an untagged enum would lose them).
enum Raw<T> {
    Str(String),
    Other(T),
}

trait FromSeqOrMap<'de>: Sized {
    const EXPECTING: &'static str;
    fn from_seq<A: serde::de::SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(serde::de::Error::custom(format!(
            "expected {}",
            Self::EXPECTING
        )))
    }
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de, T: FromSeqOrMap<'de>> Deserialize<'de> for Raw<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromSeqOrMap<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Raw<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                T::from_seq(seq).map(Raw::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::from_map(map).map(Raw::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
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

impl<'de> FromSeqOrMap<'de> for TargetSpec {
    const EXPECTING: &'static str = "latest, oldest, immediate, or a map with one of time, lsn, xid, name, immediate, baseline, random";
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        TargetFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            .map(|f| TargetSpec::Fields(Box::new(f)))
    }
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<Raw<TargetSpec>>::deserialize(d)?;
        Ok(match s.value {
            Raw::Str(k) => TargetSpec::Keyword(Spanned::new(k, s.referenced, s.defined)),
            Raw::Other(o) => o,
        })
    }
}

/// `latest`, `oldest`, `immediate`, or a map with one of `time`, `lsn`, `xid`, `name`,
/// `immediate`, `baseline`, `random`.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum TargetShape {
    Keyword(String),
    Fields(Box<TargetFields>),
}

impl JsonSchema for TargetSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TargetSpec".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TargetShape::json_schema(g)
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

/// One target: `latest`, `oldest`, `immediate`, or a map with one of `time`, `lsn`, `xid`,
/// `name`, `immediate`, `baseline`, `random`.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    Keyword(Spanned<String>),
    Fields(Box<TargetFields>),
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetFields {
    /// RFC 3339, or the PostgreSQL forms CNPG accepts (`2025-01-15 12:00:00+00`).
    #[schemars(with = "Option<String>")]
    pub time: Option<Spanned<TimeText>>,
    #[schemars(with = "Option<String>")]
    pub lsn: Option<Spanned<crate::lsn::Lsn>>,
    pub xid: Option<u32>,
    pub name: Option<String>,
    pub immediate: Option<bool>,
    /// The exact point the named baseline was recorded at.
    pub baseline: Option<String>,
    pub random: Option<RandomTarget>,
    /// recoveryTarget.backupID; required with `xid` and `name`, as CNPG requires.
    #[serde(rename = "backupID")]
    pub backup_id: Option<String>,
    /// The verdict this drill is meant to reach, e.g. `{verdict: fail, cause: wal_gap}`
    /// (`cause` is one of the codes in the README's table).
    pub expect: Option<Expectation>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RandomTarget {
    /// A time picked uniformly in the last `within` of the window (`7d`, `12h`).
    #[schemars(with = "String")]
    pub within: Spanned<DurationText>,
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
    pub restore: DurationText,
    #[serde(default = "ten_minutes")]
    #[schemars(with = "String")]
    pub recovery: DurationText,
    #[serde(default = "thirty_seconds")]
    #[schemars(with = "String")]
    pub statement: DurationText,
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

fn ten_minutes() -> DurationText {
    DurationText(std::time::Duration::from_secs(600))
}
fn thirty_seconds() -> DurationText {
    DurationText(std::time::Duration::from_secs(30))
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

/// `30s`, `10m`, `1h`, `7d` (a number and a unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationText(pub std::time::Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(DurationText)
            .map_err(serde::de::Error::custom)
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a number and s, m, h or d, such as 10m")
    })?;
    let too_long = || format!("invalid duration {s:?}: too long");
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(too_long)?,
        "h" => n.checked_mul(3600).ok_or_else(too_long)?,
        "d" => n.checked_mul(86400).ok_or_else(too_long)?,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: expected a number and s, m, h or d, such as 10m"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// A recovery target time, checked when the scenario is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeText(pub jiff::Timestamp);

impl<'de> Deserialize<'de> for TimeText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::catalog::backup_info::parse_time(&s).map(TimeText).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid time {s:?}: expected RFC 3339 (2025-01-15T12:00:00Z) or 2025-01-15 12:00:00+00"
            ))
        })
    }
}

/// A cron expression, checked when the scenario is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronText(pub String);

impl<'de> Deserialize<'de> for CronText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        cron_schedule(&s)
            .map(|_| CronText(s))
            .map_err(serde::de::Error::custom)
    }
}

/// Parses 5-field (Kubernetes) and 6-field (CNPG, seconds first) cron expressions. Both count
/// weekdays 0-6 from Sunday (7 is Sunday too); the cron crate counts 1-7, so numbers shift.
pub fn cron_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let mut fields: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
    if fields.len() == 5 {
        fields.insert(0, "0".into());
    }
    if fields.len() != 6 {
        return Err(format!(
            "invalid cron expression {expr:?}: expected 5 fields (minute hour day month weekday) or 6 (with seconds first)"
        ));
    }
    fields[5] = shift_weekdays(&fields[5]);
    fields.join(" ").parse::<cron::Schedule>().map_err(|e| {
        let why = e.to_string().replace("\\n", "\n");
        let why = why.lines().last().unwrap_or_default().trim().to_string();
        format!("invalid cron expression {expr:?}: {why}")
    })
}

fn shift_weekdays(field: &str) -> String {
    let shift = |d: &str| match d.parse::<u32>() {
        Ok(7) => "1".to_string(),
        Ok(n) => (n + 1).to_string(),
        Err(_) => d.to_string(),
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let step = step.map(|s| format!("/{s}")).unwrap_or_default();
            match range.split_once('-') {
                // A range that ends on Sunday as 7 becomes "start..Saturday" plus Sunday (1).
                Some((from, "7")) if from.parse::<u32>().is_ok() => {
                    format!("{}-7{step},1", shift(from))
                }
                Some((from, to)) => format!("{}-{}{step}", shift(from), shift(to)),
                None => format!("{}{step}", shift(range)),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_and_cnpg_cron_forms() {
        let sunday_3am = cron_schedule("0 3 * * 0").unwrap();
        let next = sunday_3am.upcoming(chrono::Utc).next().unwrap();
        assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Sun);
        assert!(cron_schedule("0 0 3 * * 1-5").is_ok());
        assert!(cron_schedule("0 3 * * 7").is_ok());
        // Friday to Sunday, with Sunday written as 7.
        let weekend = cron_schedule("0 3 * * 5-7").unwrap();
        let days: Vec<_> = weekend
            .upcoming(chrono::Utc)
            .take(3)
            .map(|t| chrono::Datelike::weekday(&t))
            .collect();
        assert!(
            days.contains(&chrono::Weekday::Fri)
                && days.contains(&chrono::Weekday::Sat)
                && days.contains(&chrono::Weekday::Sun),
            "{days:?}"
        );
        let err = cron_schedule("0 25 * * *").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(cron_schedule("every sunday").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604800);
        assert!(parse_duration("10 minutes").is_err());
    }
}
