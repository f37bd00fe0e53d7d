//! The `targets:` of a scenario as written, and their conversion into the one target
//! grammar (`target::TargetRequest`) that `--target` uses too.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use std::path::Path;

use super::deserialize::{FromSeqOrMap, Raw};
use super::load::at;
use super::types::DurationText;
use crate::baseline::Baseline;
use crate::outcome::Expectation;
use crate::target::{Target, TargetPoint, TargetRequest};

/// A scenario target in the one target grammar, with what the scenario expects of it.
#[derive(Clone, Debug)]
pub struct ScenarioTarget {
    pub request: TargetRequest,
    pub expect: Option<Expectation>,
}

impl TargetSpec {
    /// Checks the target as written and converts it: keywords are matched here only.
    pub fn request(
        &self,
        path: &Path,
        baseline: Option<&Baseline>,
        with_baseline: bool,
    ) -> Result<ScenarioTarget, String> {
        let f = match self {
            TargetSpec::Keyword(k) => return keyword(path, k),
            TargetSpec::Fields(f) => f,
        };
        check_fields(path, f, baseline, with_baseline)?;
        Ok(ScenarioTarget {
            request: fields_request(f),
            expect: f.expect.clone(),
        })
    }
}

fn keyword(path: &Path, k: &Spanned<String>) -> Result<ScenarioTarget, String> {
    let point = |point| {
        TargetRequest::Point(Target {
            point,
            backup_id: None,
        })
    };
    let request = match k.value.as_str() {
        "latest" => point(TargetPoint::Latest),
        "immediate" => point(TargetPoint::Immediate),
        "oldest" => TargetRequest::Oldest,
        "everyBackup" => TargetRequest::EveryBackup,
        other => {
            return Err(at(
                path,
                k,
                format!(
                    "target {other:?}: expected latest, oldest, immediate, everyBackup or a map"
                ),
            ));
        }
    };
    Ok(ScenarioTarget {
        request,
        expect: None,
    })
}

/// A checked map target (exactly one kind set) in the one grammar.
fn fields_request(f: &TargetFields) -> TargetRequest {
    let backup_id = f.backup_id.clone();
    let point = |point| {
        TargetRequest::Point(Target {
            point,
            backup_id: backup_id.clone(),
        })
    };
    if let Some(t) = &f.time {
        point(TargetPoint::Time { time: t.value.0 })
    } else if let Some(l) = &f.lsn {
        point(TargetPoint::Lsn { lsn: l.value })
    } else if let Some(xid) = f.xid {
        point(TargetPoint::Xid { xid })
    } else if let Some(name) = &f.name {
        point(TargetPoint::Name { name: name.clone() })
    } else if let Some(name) = &f.baseline {
        TargetRequest::Baseline {
            name: name.clone(),
            backup_id,
        }
    } else if let Some(r) = &f.random {
        TargetRequest::Random {
            within: r.within.value.0,
            backup_id,
        }
    } else if f.immediate == Some(true) {
        point(TargetPoint::Immediate)
    } else {
        // `{backupID: X}` alone: CNPG recovers from that backup to the end of the archive.
        point(TargetPoint::Latest)
    }
}

/// One target: `latest`, `oldest`, `immediate`, `everyBackup` (latest from each completed
/// backup), or a map with one of `time`, `lsn`, `xid`, `name`, `immediate`, `baseline`,
/// `random`, or `backupID` alone (latest from that backup).
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

impl<'de> FromSeqOrMap<'de> for TargetSpec {
    const EXPECTING: &'static str = "latest, oldest, immediate, everyBackup, or a map with one of time, lsn, xid, name, immediate, baseline, random, or backupID alone";
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

/// The checks serde cannot do on a map target: exactly one kind, what CNPG requires with it,
/// and a baseline the scenario holds.
fn check_fields(
    path: &Path,
    f: &TargetFields,
    baseline: Option<&Baseline>,
    with_baseline: bool,
) -> Result<(), String> {
    let kinds = [
        f.time.is_some(),
        f.lsn.is_some(),
        f.xid.is_some(),
        f.name.is_some(),
        f.immediate == Some(true),
        f.baseline.is_some(),
        f.random.is_some(),
    ];
    let where_ = || {
        f.time
            .as_ref()
            .map(|s| (s.referenced.line(), s.referenced.column()))
            .or(f
                .lsn
                .as_ref()
                .map(|s| (s.referenced.line(), s.referenced.column())))
            .map(|(l, c)| format!("{}:{l}:{c}", path.display()))
            .unwrap_or_else(|| path.display().to_string())
    };
    match kinds.iter().filter(|k| **k).count() {
        1 => {}
        // `{backupID: X}` alone is `latest` from that backup, as in CNPG.
        0 if f.backup_id.is_some() => {}
        0 => {
            return Err(format!(
                "{}: target: expected one of time, lsn, xid, name, immediate, baseline, random (or backupID alone)",
                where_()
            ));
        }
        _ => {
            return Err(format!(
                "{}: target: time, lsn, xid, name, immediate, baseline and random are mutually exclusive",
                where_()
            ));
        }
    }
    if (f.xid.is_some() || f.name.is_some()) && f.backup_id.is_none() {
        return Err(format!(
            "{}: target: xid and name need backupID, as CNPG requires",
            where_()
        ));
    }
    if let Some(name) = &f.name
        && (name.len() >= 64 || name.chars().any(|c| c.is_control()))
    {
        return Err(format!(
            "{}: target name {name:?}: must be under 64 bytes with no control characters",
            where_()
        ));
    }
    if let Some(name) = &f.baseline
        && with_baseline
    {
        match baseline {
            Some(b) if &b.name == name => {}
            Some(b) => {
                return Err(format!(
                    "{}: target baseline {name:?}: checks.baseline holds {:?}",
                    path.display(),
                    b.name
                ));
            }
            None => {
                return Err(format!(
                    "{}: target baseline {name:?}: checks.baseline is not set",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}
