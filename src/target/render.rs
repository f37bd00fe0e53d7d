//! A pinned target in each backend's words: PostgreSQL's `recovery_target_*` settings (the
//! local backend, as CNPG's instance manager writes them) and CNPG's `recoveryTarget` (the cnpg
//! backend). Side by side, so the two cannot drift apart.

use serde::{Deserialize, Serialize};

use super::{PinnedTarget, TargetPoint};

/// Single-quoted for postgresql.conf.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// CNPG normalises target times to `YYYY-MM-DD HH:MM:SS.ffffff+00:00` (PostgreSQL rejects the
/// RFC 3339 `…Z` form).
pub fn target_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S.%6f+00:00").to_string()
}

/// `recovery_target_*` settings for a target (none for `latest`). The backup is chosen by the
/// restore, not by a setting.
pub fn postgres_settings(point: &TargetPoint) -> Vec<(&'static str, String)> {
    let mut s = match point {
        TargetPoint::Latest => vec![],
        TargetPoint::Time { time } => vec![("recovery_target_time", quote(&target_time(*time)))],
        TargetPoint::Lsn { lsn } => vec![("recovery_target_lsn", quote(&lsn.to_string()))],
        TargetPoint::Xid { xid } => vec![("recovery_target_xid", quote(&xid.to_string()))],
        TargetPoint::Name { name } => vec![("recovery_target_name", quote(name))],
        TargetPoint::Immediate => vec![("recovery_target", quote("immediate"))],
    };
    if !matches!(point, TargetPoint::Latest) {
        s.push(("recovery_target_inclusive", "true".into()));
    }
    s
}

/// CNPG's `bootstrap.recovery.recoveryTarget`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryTarget {
    #[serde(rename = "backupID", skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(rename = "targetTLI", skip_serializing_if = "Option::is_none")]
    pub target_tli: Option<String>,
    #[serde(rename = "targetXID", skip_serializing_if = "Option::is_none")]
    pub target_xid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    #[serde(rename = "targetLSN", skip_serializing_if = "Option::is_none")]
    pub target_lsn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_immediate: Option<bool>,
}

/// recoveryTarget as CNPG validates it: backupID always (the backup preflight chose), one of
/// the target options at most.
pub fn cnpg_recovery_target(target: &PinnedTarget) -> RecoveryTarget {
    let mut rt = RecoveryTarget {
        backup_id: Some(target.backup_id.clone()),
        ..Default::default()
    };
    match &target.point {
        TargetPoint::Latest => {}
        TargetPoint::Time { time } => rt.target_time = Some(time.to_string()),
        TargetPoint::Lsn { lsn } => rt.target_lsn = Some(lsn.to_string()),
        TargetPoint::Xid { xid } => rt.target_xid = Some(xid.to_string()),
        TargetPoint::Name { name } => rt.target_name = Some(name.clone()),
        TargetPoint::Immediate => rt.target_immediate = Some(true),
    }
    rt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Target;

    /// A target as written, its PostgreSQL settings, and CNPG's recoveryTarget without backupID.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        serde_json::Value,
    );

    /// Each form, rendered for PostgreSQL and for CNPG.
    #[test]
    fn both_renderings_side_by_side() {
        let cases: [Case; 6] = [
            ("latest", &[], serde_json::json!({})),
            (
                "time:2025-01-15 12:00:00+02",
                &[
                    ("recovery_target_time", "'2025-01-15 10:00:00.000000+00:00'"),
                    ("recovery_target_inclusive", "true"),
                ],
                serde_json::json!({"targetTime": "2025-01-15T10:00:00Z"}),
            ),
            (
                "lsn:0/7000028",
                &[
                    ("recovery_target_lsn", "'0/7000028'"),
                    ("recovery_target_inclusive", "true"),
                ],
                serde_json::json!({"targetLSN": "0/7000028"}),
            ),
            (
                "xid:1234",
                &[
                    ("recovery_target_xid", "'1234'"),
                    ("recovery_target_inclusive", "true"),
                ],
                serde_json::json!({"targetXID": "1234"}),
            ),
            (
                "name:it's",
                &[
                    ("recovery_target_name", "'it''s'"),
                    ("recovery_target_inclusive", "true"),
                ],
                serde_json::json!({"targetName": "it's"}),
            ),
            (
                "immediate",
                &[
                    ("recovery_target", "'immediate'"),
                    ("recovery_target_inclusive", "true"),
                ],
                serde_json::json!({"targetImmediate": true}),
            ),
        ];
        for (text, settings, cnpg) in cases {
            let pinned = text.parse::<Target>().unwrap().pin("20250115T000000");
            let got: Vec<(&str, String)> = postgres_settings(&pinned.point);
            let want: Vec<(&str, String)> =
                settings.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(got, want, "{text}: PostgreSQL settings");
            let mut want_cnpg = cnpg.clone();
            want_cnpg["backupID"] = "20250115T000000".into();
            let got_cnpg = serde_json::to_value(cnpg_recovery_target(&pinned)).unwrap();
            assert_eq!(got_cnpg, want_cnpg, "{text}: CNPG recoveryTarget");
        }
    }
}
