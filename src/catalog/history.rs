//! Timeline history files: `parentTLI<TAB>switchLSN<TAB>reason` per line.

use serde::Serialize;

use crate::lsn::Lsn;

/// One line of a `.history` file: the timeline we branched from and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub parent: u32,
    pub switch_lsn: Lsn,
    pub reason: String,
}

/// Parses a history file. The last line names the direct parent; earlier lines, older ancestors.
pub fn parse_history(text: &str) -> Result<Vec<HistoryEntry>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, char::is_whitespace);
        let bad = || {
            format!(
                "line {}: expected 'parentTLI<TAB>switchLSN<TAB>reason', found {line:?}",
                i + 1
            )
        };
        let parent = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let switch_lsn = parts
            .next()
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(bad)?;
        let reason = parts.next().unwrap_or("").trim().to_string();
        entries.push(HistoryEntry {
            parent,
            switch_lsn,
            reason,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_measured_content() {
        let h = parse_history(
            "1\t0/8000000\tno recovery target specified\n\n2\t0/A000000\tat restore point \"x\"\n",
        )
        .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].parent, 1);
        assert_eq!(h[0].switch_lsn.to_string(), "0/8000000");
        assert_eq!(h[1].reason, "at restore point \"x\"");
        assert!(parse_history("one\ttwo").is_err());
    }
}
