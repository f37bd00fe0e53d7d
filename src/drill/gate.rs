//! Whether a drill may restore: preflight's decision, or with `--skip-preflight` what replay
//! must reach anyway.

use crate::catalog::LineageCatalog;
use crate::outcome::{Cause, Failure, Stage};
use crate::preflight::{Preflight, Ready, Refusal, choose_backup, last_present_on_chain};
use crate::scenario::plan::DrillPlan;

/// The backup to restore and how far replay must reach, or the refusal as a failure.
pub fn ready_or_refused(
    catalog: &LineageCatalog,
    plan: &DrillPlan,
    skip_preflight: bool,
) -> Result<Ready, (Option<String>, Failure)> {
    let refused = |r: Refusal| {
        let evidence = match &r.missing_wal {
            Some(w) => format!("{} (missing {w})", r.message),
            None => r.message.clone(),
        };
        (
            r.backup_id,
            Failure::fail(Stage::Preflight, r.cause, evidence),
        )
    };
    match (&plan.preflight, skip_preflight) {
        (Preflight::Ready(ready), _) => Ok(ready.clone()),
        (Preflight::Refused(refusal), false) => Err(refused(refusal.clone())),
        (Preflight::Refused(_), true) => ready_without_preflight(catalog, plan).map_err(refused),
    }
}

/// What replay must reach when preflight is skipped: the newest segment of the chain.
fn ready_without_preflight(catalog: &LineageCatalog, plan: &DrillPlan) -> Result<Ready, Refusal> {
    let backup = choose_backup(catalog, &plan.target)?;
    let begin = backup.begin_segment().ok_or_else(|| Refusal {
        cause: Cause::NoCompletedBackup,
        message: format!("backup {} has no begin_wal", backup.backup_id),
        missing_wal: None,
        backup_id: Some(backup.backup_id.clone()),
    })?;
    let archive = &catalog.archive;
    let legs = archive.chain(begin, archive.latest_descendant(begin));
    let last =
        last_present_on_chain(catalog, &legs).map(|(leg, segno)| (legs[leg].timeline, segno));
    Ok(Ready {
        backup_id: backup.backup_id.clone(),
        target: plan.target.pin(&backup.backup_id),
        backup_end_time: backup.end_time,
        timelines: legs.iter().map(|l| l.timeline).collect(),
        expected_last_wal: last.map(|(tl, s)| archive.segment(tl, s).to_string()),
        expected_end_lsn: last.map(|(_, s)| archive.segment_end(s)),
        notes: vec!["preflight skipped".into()],
    })
}
