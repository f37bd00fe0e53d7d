//! Recovery targets (pure): the points recovery can stop at, the requests scenarios and
//! `--target` make (a point, or a policy that picks one from the catalog), and the target
//! pinned to the backup preflight chose. `render` turns a pinned target into each backend's
//! settings.

pub mod render;
mod request;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::catalog::backup_info::parse_time;
use crate::lsn::Lsn;

pub use request::{TargetKind, TargetRequest, latest_from};

/// Where recovery should stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetPoint {
    Latest,
    Time { time: Timestamp },
    Lsn { lsn: Lsn },
    Xid { xid: u32 },
    Name { name: String },
    Immediate,
}

/// A recovery target as CNPG's `recoveryTarget` expresses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    #[serde(flatten)]
    pub point: TargetPoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

impl FromStr for Target {
    type Err = String;

    /// `latest`, `immediate`, `time:<timestamp>`, `lsn:<X/Y>`, `xid:<n>`, `name:<restore point>`,
    /// `backup:<id>` (the end of that backup).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let point = match s.split_once(':') {
            None if s == "latest" => TargetPoint::Latest,
            None if s == "immediate" => TargetPoint::Immediate,
            Some(("time", v)) => TargetPoint::Time {
                time: parse_time(v).ok_or_else(|| {
                    format!("invalid time {v:?}: expected RFC 3339 or '2025-01-15 12:00:00+00'")
                })?,
            },
            Some(("lsn", v)) => TargetPoint::Lsn {
                lsn: v.parse().map_err(|e| format!("{e}"))?,
            },
            Some(("xid", v)) => TargetPoint::Xid {
                xid: v
                    .parse()
                    .map_err(|_| format!("invalid xid {v:?}: expected a 32-bit integer"))?,
            },
            Some(("name", v)) if !v.is_empty() => TargetPoint::Name {
                name: v.to_string(),
            },
            Some(("backup", id)) if !id.is_empty() => {
                return Ok(Self {
                    point: TargetPoint::Immediate,
                    backup_id: Some(id.to_string()),
                });
            }
            _ => {
                return Err(format!(
                    "invalid target {s:?}: expected latest, immediate, time:<timestamp>, lsn:<X/Y>, \
                     xid:<n>, name:<restore point> or backup:<id>"
                ));
            }
        };
        Ok(Self {
            point,
            backup_id: None,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.point {
            TargetPoint::Latest => write!(f, "latest"),
            TargetPoint::Time { time } => write!(f, "time:{time}"),
            TargetPoint::Lsn { lsn } => write!(f, "lsn:{lsn}"),
            TargetPoint::Xid { xid } => write!(f, "xid:{xid}"),
            TargetPoint::Name { name } => write!(f, "name:{name}"),
            TargetPoint::Immediate => write!(f, "immediate"),
        }?;
        if let Some(id) = &self.backup_id {
            write!(f, " (backup {id})")?;
        }
        Ok(())
    }
}

/// A target with the backup recovery starts from fixed: what every backend renders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PinnedTarget {
    #[serde(flatten)]
    pub point: TargetPoint,
    pub backup_id: String,
}

impl Target {
    /// This target, starting from `backup_id` (the backup preflight chose).
    pub fn pin(&self, backup_id: &str) -> PinnedTarget {
        PinnedTarget {
            point: self.point.clone(),
            backup_id: backup_id.to_string(),
        }
    }
}

impl PinnedTarget {
    /// The same target as a request that names its backup.
    pub fn unpinned(&self) -> Target {
        Target {
            point: self.point.clone(),
            backup_id: Some(self.backup_id.clone()),
        }
    }
}

impl fmt::Display for PinnedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.unpinned().fmt(f)
    }
}
