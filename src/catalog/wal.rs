//! Names of files in a barman-cloud `wals/` folder and segment arithmetic.

use std::fmt;

use crate::lsn::Lsn;

/// PostgreSQL's default WAL segment size (16 MiB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// Compression suffixes barman-cloud-wal-archive may append (one at most).
pub const COMPRESSION_SUFFIXES: [&str; 6] = ["gz", "bz2", "xz", "snappy", "zst", "lz4"];

/// A WAL segment identity: timeline plus the `log`/`seg` halves of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    /// Parses a 24-hex-digit WAL file name (case-insensitive, as barman accepts).
    pub fn parse(name: &str) -> Option<Self> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let part = |r: std::ops::Range<usize>| u32::from_str_radix(&name[r], 16).ok();
        Some(Self {
            timeline: part(0..8)?,
            log: part(8..16)?,
            seg: part(16..24)?,
        })
    }

    /// The segment number counted from LSN 0 for a given segment size.
    pub fn segno(&self, segment_size: u64) -> u64 {
        u64::from(self.log) * segments_per_log(segment_size) + u64::from(self.seg)
    }

    pub fn from_segno(timeline: u32, segno: u64, segment_size: u64) -> Self {
        let per_log = segments_per_log(segment_size);
        Self {
            timeline,
            log: (segno / per_log) as u32,
            seg: (segno % per_log) as u32,
        }
    }

    /// The segment that holds `lsn` on `timeline`.
    pub fn containing(timeline: u32, lsn: Lsn, segment_size: u64) -> Self {
        Self::from_segno(timeline, lsn.0 / segment_size, segment_size)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

/// How many segments one 4 GiB "log" holds: 256 for 16 MiB segments, so `seg` wraps after 0xFF.
pub fn segments_per_log(segment_size: u64) -> u64 {
    (1u64 << 32) / segment_size.max(1)
}

/// LSN at the end of a segment (the start of the next one).
pub fn segment_end(segno: u64, segment_size: u64) -> Lsn {
    Lsn((segno + 1) * segment_size)
}

/// What one object under `wals/` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalFile {
    Segment {
        name: SegmentName,
        partial: bool,
        compression: Option<&'static str>,
    },
    /// `<segment>.<offset>.backup`: a backup history file.
    BackupLabel { name: SegmentName },
    /// `<timeline>.history`, which lives at the `wals/` root.
    History {
        timeline: u32,
        compression: Option<&'static str>,
    },
}

/// Splits one known compression suffix off a file name.
pub fn strip_compression(file: &str) -> (&str, Option<&'static str>) {
    if let Some((stem, ext)) = file.rsplit_once('.')
        && let Some(known) = COMPRESSION_SUFFIXES.iter().find(|s| **s == ext)
    {
        return (stem, Some(known));
    }
    (file, None)
}

/// Classifies a key relative to the `wals/` folder: `<hash>/<name>[.ext]` or `<tli>.history[.ext]`.
pub fn parse_wal_key(relative: &str) -> Option<WalFile> {
    match relative.split_once('/') {
        None => {
            let (stem, compression) = strip_compression(relative);
            let tli = stem.strip_suffix(".history")?;
            if tli.len() != 8 || !tli.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let timeline = u32::from_str_radix(tli, 16).ok()?;
            Some(WalFile::History {
                timeline,
                compression,
            })
        }
        Some((hash, file)) => {
            let (stem, compression) = strip_compression(file);
            let parsed = if let Some(seg) = stem.strip_suffix(".partial") {
                WalFile::Segment {
                    name: SegmentName::parse(seg)?,
                    partial: true,
                    compression,
                }
            } else if let Some(rest) = stem.strip_suffix(".backup") {
                let (seg, offset) = rest.split_once('.')?;
                if offset.len() != 8 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                WalFile::BackupLabel {
                    name: SegmentName::parse(seg)?,
                }
            } else {
                WalFile::Segment {
                    name: SegmentName::parse(stem)?,
                    partial: false,
                    compression,
                }
            };
            let name = match &parsed {
                WalFile::Segment { name, .. } | WalFile::BackupLabel { name } => name,
                WalFile::History { .. } => unreachable!("history files have no hash folder"),
            };
            // The hash folder is the first 16 characters of the segment name.
            hash.eq_ignore_ascii_case(&name.to_string()[..16])
                .then_some(parsed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments_and_wraps_at_ff() {
        let a = SegmentName::parse("0000000100000000000000FF").unwrap();
        let b = SegmentName::parse("000000010000000100000000").unwrap();
        assert_eq!(
            a.segno(DEFAULT_SEGMENT_SIZE) + 1,
            b.segno(DEFAULT_SEGMENT_SIZE)
        );
        assert_eq!(SegmentName::from_segno(1, 256, DEFAULT_SEGMENT_SIZE), b);
        // 64 MiB segments: 64 per log, so seg 3F is followed by the next log.
        let s64 = 64 * 1024 * 1024;
        let c = SegmentName::parse("00000001000000000000003F").unwrap();
        assert_eq!(
            SegmentName::from_segno(1, c.segno(s64) + 1, s64).to_string(),
            "000000010000000100000000"
        );
    }

    #[test]
    fn lsn_to_segment() {
        let lsn: Lsn = "0/7024A08".parse().unwrap();
        assert_eq!(
            SegmentName::containing(2, lsn, DEFAULT_SEGMENT_SIZE).to_string(),
            "000000020000000000000007"
        );
        assert_eq!(
            segment_end(7, DEFAULT_SEGMENT_SIZE).to_string(),
            "0/8000000"
        );
    }

    #[test]
    fn classifies_keys() {
        let seg = "0000000100000000/000000010000000000000003";
        assert!(matches!(
            parse_wal_key(seg),
            Some(WalFile::Segment {
                partial: false,
                compression: None,
                ..
            })
        ));
        for ext in COMPRESSION_SUFFIXES {
            let key = format!("{seg}.{ext}");
            assert!(
                matches!(parse_wal_key(&key), Some(WalFile::Segment { compression: Some(c), .. }) if c == ext),
                "{key}"
            );
        }
        assert!(matches!(
            parse_wal_key(&format!("{seg}.partial.gz")),
            Some(WalFile::Segment { partial: true, .. })
        ));
        assert!(matches!(
            parse_wal_key(&format!("{seg}.00000028.backup")),
            Some(WalFile::BackupLabel { .. })
        ));
        assert_eq!(
            parse_wal_key("00000002.history.gz"),
            Some(WalFile::History {
                timeline: 2,
                compression: Some("gz")
            })
        );
        assert_eq!(
            parse_wal_key("0000000100000001/000000010000000000000003"),
            None,
            "wrong hash folder"
        );
        assert_eq!(parse_wal_key("0000000100000000/README"), None);
        assert_eq!(
            parse_wal_key("0000000100000000/000000010000000000000003.rar"),
            None
        );
    }
}
