//! Pure planning: scenario + catalogs → the drills to run (lineage, target, chosen backup) and
//! the ones refused by preflight, with their cause. No network, no processes.

use serde::Serialize;

use super::load::Loaded;
use super::targets::ScenarioTarget;
use super::types::{CountPolicies, Expectation, LineageSelector};
use crate::baseline::Baseline;
use crate::catalog::LineageCatalog;
use crate::checks::CountPolicy;
use crate::preflight::{Cause, Preflight, Refusal, preflight, refusal};
use crate::target::{Target, TargetKind, TargetPoint, TargetRequest, latest_from};

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

/// `*` matches any run of characters, `?` one character. Linear in practice: on a mismatch
/// only the last `*` is retried (so `****…` cannot explode).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
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

/// Turns one request into a concrete recovery target for one lineage.
pub fn resolve(
    request: &TargetRequest,
    catalog: &LineageCatalog,
    baseline: Option<&Baseline>,
    seed: u64,
) -> Result<Target, Refusal> {
    let window = || {
        catalog.window.as_ref().ok_or_else(|| {
            refusal(
                Cause::NoCompletedBackup,
                format!("lineage {} has no completed backup", catalog.server_name),
            )
        })
    };
    let at = |point, backup_id: &Option<String>| Target {
        point,
        backup_id: backup_id.clone(),
    };
    Ok(match request {
        TargetRequest::Point(t) => t.clone(),
        // Expanded per backup by `expand`; as one target it is the newest backup's latest.
        TargetRequest::EveryBackup => at(TargetPoint::Latest, &None),
        TargetRequest::Baseline { backup_id, .. } => {
            let lsn = baseline.map(|b| b.lsn).unwrap_or_default();
            at(TargetPoint::Lsn { lsn }, backup_id)
        }
        TargetRequest::Oldest => at(
            TargetPoint::Time {
                time: window()?.first_point,
            },
            &None,
        ),
        TargetRequest::Random { within, backup_id } => {
            let w = window()?;
            let hi = w.last_archived_at.unwrap_or(w.last_backup_end);
            let span = jiff::SignedDuration::try_from(*within).unwrap_or_default();
            let lo = hi
                .checked_sub(span)
                .unwrap_or(w.first_point)
                .max(w.first_point);
            let ns = pick(seed, lo.as_nanosecond(), hi.as_nanosecond());
            let time = jiff::Timestamp::from_nanosecond(ns).unwrap_or(lo);
            at(TargetPoint::Time { time }, backup_id)
        }
    })
}

/// The count policy of `checks.counts` for a kind of target.
fn policy(policies: &CountPolicies, kind: TargetKind) -> CountPolicy {
    match kind {
        TargetKind::Latest => policies.latest,
        TargetKind::Baseline => policies.baseline,
        TargetKind::PointInTime => policies.point_in_time,
    }
}

/// A seed for `random` targets that differs per run (from the run id) and per target.
fn seed_of(id_prefix: &str) -> u64 {
    crate::hash::fnv1a(id_prefix.as_bytes())
}

/// Every drill of a scenario over the given lineage catalogs, in order. `override_target`
/// (`--target`) replaces the scenario's targets. Drill ids are `<id_prefix>-<n>`.
pub fn plan(
    loaded: &Loaded,
    catalogs: &[LineageCatalog],
    id_prefix: &str,
    override_target: Option<&TargetRequest>,
) -> Vec<DrillPlan> {
    let overridden: Vec<ScenarioTarget> = override_target
        .map(|request| ScenarioTarget {
            request: request.clone(),
            expect: None,
        })
        .into_iter()
        .collect();
    let targets = if override_target.is_some() {
        &overridden
    } else {
        &loaded.targets
    };
    let seed = seed_of(id_prefix);
    let mut drills = Vec::new();
    for catalog in catalogs {
        for (i, t) in targets.iter().enumerate() {
            let seed = seed.wrapping_add(i as u64);
            for (label, decided) in expand(&t.request, catalog, loaded.baseline.as_ref(), seed) {
                let (target, policy, decision) = match decided {
                    Ok(target) => {
                        let decision = preflight(catalog, &target);
                        let policy = policy(&loaded.scenario.checks.counts, t.request.kind());
                        (target, policy, decision)
                    }
                    Err(refusal) => (
                        Target {
                            point: TargetPoint::Latest,
                            backup_id: None,
                        },
                        CountPolicy::Report,
                        Preflight::Refused(refusal),
                    ),
                };
                drills.push(DrillPlan {
                    drill_id: format!("{id_prefix}-{}", drills.len() + 1),
                    lineage: catalog.server_name.clone(),
                    target_label: label,
                    target,
                    preflight: decision,
                    policy,
                    expect: t.expect.clone(),
                });
            }
        }
    }
    drills
}

/// One request as drills of one lineage, each with its label: `everyBackup` is `latest` from
/// each completed backup (or one refused drill when there is none); any other, one drill.
fn expand(
    request: &TargetRequest,
    catalog: &LineageCatalog,
    baseline: Option<&Baseline>,
    seed: u64,
) -> Vec<(String, Result<Target, Refusal>)> {
    if *request != TargetRequest::EveryBackup {
        return vec![(request.label(), resolve(request, catalog, baseline, seed))];
    }
    let every: Vec<(String, Result<Target, Refusal>)> = catalog
        .done_backups()
        .map(|b| {
            let target = Target {
                point: TargetPoint::Latest,
                backup_id: Some(b.backup_id.clone()),
            };
            (latest_from(&b.backup_id), Ok(target))
        })
        .collect();
    if every.is_empty() {
        let why = format!("lineage {} has no completed backup", catalog.server_name);
        return vec![(request.label(), Err(refusal(Cause::NoCompletedBackup, why)))];
    }
    every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("app-v*", "app-v12"));
        assert!(!glob_match("app-v*", "db-v1"));
        assert!(glob_match("app-v?", "app-v2"));
        assert!(glob_match("*-v*", "app-v2"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
        // Many stars and a near miss: answered at once, not in exponential time.
        let stars = "*".repeat(200) + "x";
        assert!(!glob_match(&stars, &"a".repeat(60)));
    }

    #[test]
    fn random_stays_in_range() {
        for seed in 0..100 {
            let v = pick(seed, 10, 20);
            assert!((10..20).contains(&v));
        }
    }
}
