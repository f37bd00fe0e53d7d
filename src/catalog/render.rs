//! The catalog for people (a table) and for machines (`pgdrill.catalog/v1` JSON).

use std::fmt::Write;

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::catalog::lineage::LineageCatalog;

pub const SCHEMA: &str = "pgdrill.catalog/v1";

#[derive(Serialize)]
pub struct CatalogDocument<'a> {
    pub schema: &'static str,
    pub destination_path: &'a str,
    pub lineages: &'a [LineageCatalog],
}

pub fn to_json(destination_path: &str, lineages: &[LineageCatalog]) -> String {
    let doc = CatalogDocument {
        schema: SCHEMA,
        destination_path,
        lineages,
    };
    serde_json::to_string_pretty(&doc).expect("catalog serializes")
}

fn human_size(bytes: Option<u64>) -> String {
    let Some(b) = bytes else { return "-".into() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn time(t: Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn to_table(destination_path: &str, lineages: &[LineageCatalog]) -> String {
    let mut out = String::new();
    for l in lineages {
        let _ = writeln!(out, "Lineage {} ({destination_path})", l.server_name);
        write_window(&mut out, l);
        let _ = writeln!(
            out,
            "  WAL: {} segments, {} partial, {} history file(s); segment size {} MiB",
            l.wal.segments,
            l.wal.partial,
            l.wal.history,
            l.segment_size / (1024 * 1024)
        );
        if !l.backups.is_empty() {
            let _ = writeln!(out, "{}", backups_table(l));
        }
        // A single timeline says nothing the WAL line has not said.
        if l.timelines.len() > 1 {
            write_timelines(&mut out, l);
        }
        write_problems(&mut out, l);
        out.push('\n');
    }
    out
}

fn write_window(out: &mut String, l: &LineageCatalog) {
    match &l.window {
        Some(w) => {
            let _ = writeln!(
                out,
                "  recoverable from {} to {} (last WAL {}, archived {})",
                time(Some(w.first_point)),
                w.last_lsn
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "-".into()),
                w.last_wal.as_deref().unwrap_or("-"),
                time(w.last_archived_at),
            );
        }
        None => {
            let _ = writeln!(out, "  not recoverable: no completed backup");
        }
    }
}

fn backups_table(l: &LineageCatalog) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "backup",
        "state",
        "TLI",
        "begin WAL",
        "end WAL",
        "ended",
        "size",
        "WAL to end",
    ]);
    for b in &l.backups {
        t.add_row([
            b.info.backup_id.clone(),
            b.state.to_string(),
            b.info
                .timeline
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            b.info.begin_wal.clone().unwrap_or_else(|| "-".into()),
            b.info.end_wal.clone().unwrap_or_else(|| "-".into()),
            time(b.info.end_time),
            human_size(b.info.size.or(b.info.cluster_size)),
            reach(l, &b.info.backup_id),
        ]);
    }
    t
}

/// Whether the backup's WAL runs to the end of the archive, or where it stops.
fn reach(l: &LineageCatalog, backup_id: &str) -> String {
    match l.continuity.iter().find(|c| c.backup_id == backup_id) {
        Some(c) if c.continuous => "continuous".to_string(),
        Some(c) => format!("GAP at {}", c.first_missing.as_deref().unwrap_or("?")),
        None => "-".into(),
    }
}

fn write_timelines(out: &mut String, l: &LineageCatalog) {
    for t in &l.timelines {
        let parent = t
            .parent
            .map(|p| format!(" from {p} at {}", t.switch_lsn.unwrap_or_default()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  timeline {}{parent}: {} segments, last {} (history {})",
            t.timeline,
            t.segments,
            t.last_wal.as_deref().unwrap_or("-"),
            t.history
        );
    }
}

/// Gaps, backups without a usable `backup.info`, and warnings.
fn write_problems(out: &mut String, l: &LineageCatalog) {
    for g in &l.gaps {
        let _ = writeln!(
            out,
            "  !! WAL GAP on timeline {}: {} missing ({} segment(s)), next present {}{}",
            g.timeline,
            g.first_missing,
            g.missing_segments,
            g.next_present,
            if g.affects_recovery {
                ""
            } else {
                " (before the oldest backup)"
            }
        );
    }
    for id in &l.incomplete_backups {
        let _ = writeln!(
            out,
            "  backup {id}: no backup.info (in progress or abandoned)"
        );
    }
    for p in &l.unreadable_backups {
        let _ = writeln!(out, "  backup {}: unreadable: {}", p.backup_id, p.reason);
    }
    for w in &l.warnings {
        let _ = writeln!(out, "  warning: {w}");
    }
}
