//! Pure planning: scenario + catalogs → the drills to run (lineage, target, chosen backup) and
//! the ones refused by preflight, with their cause. No network, no processes.

use serde::Serialize;

use super::load::Loaded;
use super::types::{Expectation, LineageSelector, TargetSpec};
use crate::catalog::LineageCatalog;
use crate::checks::CountPolicy;
use crate::preflight::{Cause, Preflight, Refusal, Target, TargetPoint, preflight, refusal};

/// One drill: one lineage, one target.
#[derive(Clone, Debug, Serialize)]
pub struct DrillPlan {
    pub drill_id: String,
    pub lineage: String,
    /// The target as written in the scenario (`latest`, `baseline:nightly`, `random:7d`…).
    pub target_label: String,
    pub target: Target,
    pub preflight: Preflight,
    pub policy: CountPolicy,
    pub expect: Option<Expectation>,
}

/// Lineages the selector picks from those present; a named lineage that is absent is an error
/// naming its place in the file.
pub fn select_lineages(loaded: &Loaded, available: &[String]) -> Result<Vec<String>, String> {
    let path = loaded.path.display();
    match &loaded.scenario.lineages {
        LineageSelector::All | LineageSelector::Keyword(_) => Ok(available.to_vec()),
        LineageSelector::List(names) => names
            .iter()
            .map(|n| {
                if available.contains(&n.value) {
                    Ok(n.value.clone())
                } else {
                    Err(format!(
                        "{path}:{}:{}: unknown lineage {:?}: the archive holds {}",
                        n.referenced.line(),
                        n.referenced.column(),
                        n.value,
                        available.join(", ")
                    ))
                }
            })
            .collect(),
        LineageSelector::Pattern { pattern } => {
            let picked: Vec<String> = available
                .iter()
                .filter(|a| glob_match(&pattern.value, a))
                .cloned()
                .collect();
            if picked.is_empty() {
                return Err(format!(
                    "{path}:{}:{}: pattern {:?} matches no lineage: the archive holds {}",
                    pattern.referenced.line(),
                    pattern.referenced.column(),
                    pattern.value,
                    available.join(", ")
                ));
            }
            Ok(picked)
        }
    }
}

/// `*` matches any run of characters, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// A small deterministic generator for `random` targets (seeded by the run id).
fn pick(seed: u64, lo: i128, hi: i128) -> i128 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    if hi <= lo {
        lo
    } else {
        lo + (x as i128).rem_euclid(hi - lo)
    }
}

/// Turns one scenario target into a concrete recovery target for one lineage.
fn resolve(
    loaded: &Loaded,
    spec: &TargetSpec,
    catalog: &LineageCatalog,
    seed: u64,
) -> Result<(String, Target, CountPolicy, Option<Expectation>), Refusal> {
    let policies = &loaded.scenario.checks.counts;
    let no_window = || {
        refusal(
            Cause::NoCompletedBackup,
            format!("lineage {} has no completed backup", catalog.server_name),
        )
    };
    let point = |p| Target {
        point: p,
        backup_id: None,
    };
    Ok(match spec {
        TargetSpec::Keyword(k) => match k.value.as_str() {
            "latest" => (
                "latest".into(),
                point(TargetPoint::Latest),
                policies.latest,
                None,
            ),
            "immediate" => (
                "immediate".into(),
                point(TargetPoint::Immediate),
                policies.point_in_time,
                None,
            ),
            _ => {
                let first = catalog.window.as_ref().ok_or_else(no_window)?.first_point;
                (
                    "oldest".into(),
                    point(TargetPoint::Time { time: first }),
                    policies.point_in_time,
                    None,
                )
            }
        },
        TargetSpec::Fields(f) => {
            let expect = f.expect.clone();
            let with_id = |t: TargetPoint| Target {
                point: t,
                backup_id: f.backup_id.clone(),
            };
            let pit = policies.point_in_time;
            if let Some(t) = &f.time {
                (
                    format!("time:{}", t.value.0),
                    with_id(TargetPoint::Time { time: t.value.0 }),
                    pit,
                    expect,
                )
            } else if let Some(l) = &f.lsn {
                (
                    format!("lsn:{}", l.value),
                    with_id(TargetPoint::Lsn { lsn: l.value }),
                    pit,
                    expect,
                )
            } else if let Some(x) = f.xid {
                (
                    format!("xid:{x}"),
                    with_id(TargetPoint::Xid { xid: x }),
                    pit,
                    expect,
                )
            } else if let Some(n) = &f.name {
                (
                    format!("name:{n}"),
                    with_id(TargetPoint::Name { name: n.clone() }),
                    pit,
                    expect,
                )
            } else if let Some(b) = &f.baseline {
                let lsn = loaded.baseline.as_ref().map(|b| b.lsn).unwrap_or_default();
                (
                    format!("baseline:{b}"),
                    with_id(TargetPoint::Lsn { lsn }),
                    policies.baseline,
                    expect,
                )
            } else if let Some(r) = &f.random {
                let w = catalog.window.as_ref().ok_or_else(no_window)?;
                let hi = w.last_archived_at.unwrap_or(w.last_backup_end);
                let span = jiff::SignedDuration::try_from(r.within.value.0).unwrap_or_default();
                let lo = hi
                    .checked_sub(span)
                    .unwrap_or(w.first_point)
                    .max(w.first_point);
                let ns = pick(seed, lo.as_nanosecond(), hi.as_nanosecond());
                let time = jiff::Timestamp::from_nanosecond(ns).unwrap_or(lo);
                // A stable label (for metrics); the picked time is in the target itself.
                let label = format!("random:{}s", r.within.value.0.as_secs());
                (label, with_id(TargetPoint::Time { time }), pit, expect)
            } else {
                (
                    "immediate".into(),
                    with_id(TargetPoint::Immediate),
                    pit,
                    expect,
                )
            }
        }
    })
}

/// Every drill of a scenario over the given lineage catalogs, in order. `override_target`
/// (`--target`) replaces the scenario's targets. Drill ids are `<id_prefix>-<n>`.
pub fn plan(
    loaded: &Loaded,
    catalogs: &[LineageCatalog],
    id_prefix: &str,
    override_target: Option<(&str, &Target)>,
) -> Vec<DrillPlan> {
    if let Some((label, target)) = override_target {
        let policies = &loaded.scenario.checks.counts;
        let policy = match target.point {
            TargetPoint::Latest => policies.latest,
            _ => policies.point_in_time,
        };
        return catalogs
            .iter()
            .enumerate()
            .map(|(i, c)| DrillPlan {
                drill_id: format!("{id_prefix}-{}", i + 1),
                lineage: c.server_name.clone(),
                target_label: label.to_string(),
                target: target.clone(),
                preflight: preflight(c, target),
                policy,
                expect: None,
            })
            .collect();
    }
    let run_id = id_prefix;
    let seed = run_id.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    let mut drills = Vec::new();
    for catalog in catalogs {
        for (i, spec) in loaded.scenario.targets.iter().enumerate() {
            let drill_id = format!("{run_id}-{}", drills.len() + 1);
            let (target_label, target, policy, expect, decision) =
                match resolve(loaded, spec, catalog, seed.wrapping_add(i as u64)) {
                    Ok((label, target, policy, expect)) => {
                        let decision = preflight(catalog, &target);
                        (label, target, policy, expect, decision)
                    }
                    Err(refusal) => {
                        let expect = match spec {
                            TargetSpec::Fields(f) => f.expect.clone(),
                            TargetSpec::Keyword(_) => None,
                        };
                        (
                            match spec {
                                TargetSpec::Keyword(k) => k.value.clone(),
                                TargetSpec::Fields(f) => match &f.random {
                                    Some(r) => format!("random:{}s", r.within.value.0.as_secs()),
                                    None => "unresolved".into(),
                                },
                            },
                            Target {
                                point: TargetPoint::Latest,
                                backup_id: None,
                            },
                            CountPolicy::Report,
                            expect,
                            Preflight::Refused(refusal),
                        )
                    }
                };
            drills.push(DrillPlan {
                drill_id,
                lineage: catalog.server_name.clone(),
                target_label,
                target,
                preflight: decision,
                policy,
                expect,
            });
        }
    }
    drills
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("app-v*", "app-v12"));
        assert!(!glob_match("app-v*", "db-v1"));
        assert!(glob_match("app-v?", "app-v2"));
    }

    #[test]
    fn random_stays_in_range() {
        for seed in 0..100 {
            let v = pick(seed, 10, 20);
            assert!((10..20).contains(&v));
        }
    }
}
