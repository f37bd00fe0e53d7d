//! The WAL archive of one lineage as sorted segment numbers per timeline, and walks along a
//! timeline chain that find where continuous WAL ends.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::catalog::history::HistoryEntry;
use crate::catalog::wal::{SegmentName, segment_end};
use crate::lsn::Lsn;

/// Segments present on one timeline, sorted and unique, with their upload times.
#[derive(Clone, Debug, Default)]
pub struct TimelineSegments {
    pub segnos: Vec<u64>,
    pub uploaded: Vec<Option<Timestamp>>,
}

impl TimelineSegments {
    pub fn position(&self, segno: u64) -> Result<usize, usize> {
        self.segnos.binary_search(&segno)
    }
}

/// One stretch of a timeline chain: `timeline` from segment `from` to `to` (inclusive; `None`
/// means "as far as the archive goes").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLeg {
    pub timeline: u32,
    pub from: u64,
    pub to: Option<u64>,
}

/// Where a walk along the chain stopped.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Walk {
    /// The last segment reached without a hole, as (timeline, segno).
    pub last: Option<(u32, u64)>,
    /// The first segment needed and absent, with the next segment present after it, if any.
    pub missing: Option<(u32, u64)>,
    pub next_present: Option<(u32, u64)>,
}

impl Walk {
    /// A hole followed by more WAL: recovery would stop silently at `missing`.
    pub fn is_gap(&self) -> bool {
        self.missing.is_some() && self.next_present.is_some()
    }
}

/// All segments of a lineage plus the timeline ancestry read from `.history` files.
#[derive(Clone, Debug, Default)]
pub struct Archive {
    pub segment_size: u64,
    pub timelines: BTreeMap<u32, TimelineSegments>,
    /// `<tli>.history` contents by timeline (ancestors oldest first).
    pub histories: BTreeMap<u32, Vec<HistoryEntry>>,
}

impl Archive {
    pub fn segment(&self, timeline: u32, segno: u64) -> SegmentName {
        SegmentName::from_segno(timeline, segno, self.segment_size)
    }

    pub fn segment_end(&self, segno: u64) -> Lsn {
        segment_end(segno, self.segment_size)
    }

    /// Every timeline that appears in the archive, by WAL or by history file.
    pub fn known_timelines(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .timelines
            .keys()
            .chain(self.histories.keys())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Ancestors of `timeline` (oldest first), from its history file.
    fn ancestry(&self, timeline: u32) -> &[HistoryEntry] {
        self.histories
            .get(&timeline)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The newest timeline that descends from `begin`'s timeline after `begin` (or that timeline
    /// itself): where recovery with `recovery_target_timeline = latest` ends up. A timeline
    /// that forked before the backup began is not a descendant the backup can reach.
    pub fn latest_descendant(&self, begin: SegmentName) -> u32 {
        let base = begin.timeline;
        let start = begin.segno(self.segment_size);
        self.known_timelines()
            .into_iter()
            .filter(|t| {
                *t == base
                    || self
                        .ancestry(*t)
                        .iter()
                        .any(|e| e.parent == base && e.switch_lsn.0 / self.segment_size >= start)
            })
            .max()
            .unwrap_or(base)
    }

    /// The legs recovery replays from `begin` (a backup's first WAL) to the end of timeline `to`.
    pub fn chain(&self, begin: SegmentName, to: u32) -> Vec<ChainLeg> {
        let start = begin.segno(self.segment_size);
        if to == begin.timeline {
            return vec![ChainLeg {
                timeline: to,
                from: start,
                to: None,
            }];
        }
        let ancestry = self.ancestry(to);
        let Some(first) = ancestry.iter().position(|e| e.parent == begin.timeline) else {
            return vec![ChainLeg {
                timeline: begin.timeline,
                from: start,
                to: None,
            }];
        };
        let mut legs = Vec::new();
        let mut from = start;
        for entry in &ancestry[first..] {
            // The segment holding the switch point is read from the child timeline (which
            // copies the parent's WAL up to the switch), so the parent is needed only before it.
            let switch_seg = entry.switch_lsn.0 / self.segment_size;
            if let Some(last_on_parent) = switch_seg.checked_sub(1).filter(|last| *last >= from) {
                legs.push(ChainLeg {
                    timeline: entry.parent,
                    from,
                    to: Some(last_on_parent),
                });
            }
            from = switch_seg;
        }
        legs.push(ChainLeg {
            timeline: to,
            from,
            to: None,
        });
        legs
    }

    /// Walks the legs in order and stops at the first missing segment, or at `stop`
    /// (a (leg index, segno) bound, inclusive).
    pub fn walk(&self, legs: &[ChainLeg], stop: Option<(usize, u64)>) -> Walk {
        let mut walk = Walk::default();
        for (i, leg) in legs.iter().enumerate() {
            let bound = match stop {
                Some((leg_idx, segno)) if leg_idx == i => {
                    Some(leg.to.map_or(segno, |t| t.min(segno)))
                }
                Some((leg_idx, _)) if leg_idx < i => break,
                _ => leg.to,
            };
            let empty = TimelineSegments::default();
            let segs = self.timelines.get(&leg.timeline).unwrap_or(&empty);
            let mut expect = leg.from;
            let mut idx = match segs.position(expect) {
                Ok(idx) => idx,
                Err(idx) => {
                    if leg.to.is_none() && bound.is_none() && idx == segs.segnos.len() && i > 0 {
                        // The newest timeline has not archived anything yet: the end of the archive.
                        return walk;
                    }
                    walk.missing = Some((leg.timeline, expect));
                    walk.next_present = self.next_present(legs, i, idx);
                    return walk;
                }
            };
            loop {
                walk.last = Some((leg.timeline, expect));
                if bound.is_some_and(|b| expect >= b) {
                    break;
                }
                idx += 1;
                expect += 1;
                if segs.segnos.get(idx) != Some(&expect) {
                    if bound.is_none() {
                        // Open end: a hole is a gap only if more WAL follows it.
                        if idx < segs.segnos.len() {
                            walk.missing = Some((leg.timeline, expect));
                            walk.next_present = Some((leg.timeline, segs.segnos[idx]));
                        }
                        return walk;
                    }
                    walk.missing = Some((leg.timeline, expect));
                    walk.next_present = self.next_present(legs, i, idx);
                    return walk;
                }
            }
        }
        walk
    }

    fn next_present(&self, legs: &[ChainLeg], leg: usize, idx: usize) -> Option<(u32, u64)> {
        let tl = legs[leg].timeline;
        if let Some(segno) = self.timelines.get(&tl).and_then(|s| s.segnos.get(idx)) {
            return Some((tl, *segno));
        }
        legs[leg + 1..].iter().find_map(|l| {
            let segs = self.timelines.get(&l.timeline)?;
            let at = segs.position(l.from).unwrap_or_else(|i| i);
            segs.segnos.get(at).map(|s| (l.timeline, *s))
        })
    }

    /// Upload time of a present segment.
    pub fn uploaded(&self, timeline: u32, segno: u64) -> Option<Timestamp> {
        let segs = self.timelines.get(&timeline)?;
        segs.position(segno).ok().and_then(|i| segs.uploaded[i])
    }

    /// Every hole between two present segments of the same timeline:
    /// (timeline, first missing, count missing, next present).
    pub fn holes(&self) -> Vec<(u32, u64, u64, u64)> {
        let mut holes = Vec::new();
        for (tl, segs) in &self.timelines {
            for pair in segs.segnos.windows(2) {
                if pair[1] > pair[0] + 1 {
                    holes.push((*tl, pair[0] + 1, pair[1] - pair[0] - 1, pair[1]));
                }
            }
        }
        holes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::wal::DEFAULT_SEGMENT_SIZE as S;

    fn archive(tls: &[(u32, &[u64])], histories: &[(u32, &[(u32, u64)])]) -> Archive {
        let mut a = Archive {
            segment_size: S,
            ..Default::default()
        };
        for (tl, segnos) in tls {
            let segnos = segnos.to_vec();
            let uploaded = vec![None; segnos.len()];
            a.timelines
                .insert(*tl, TimelineSegments { segnos, uploaded });
        }
        for (tl, entries) in histories {
            let entries = entries
                .iter()
                .map(|(p, lsn)| HistoryEntry {
                    parent: *p,
                    switch_lsn: Lsn(*lsn),
                    reason: String::new(),
                })
                .collect();
            a.histories.insert(*tl, entries);
        }
        a
    }

    #[test]
    fn open_walk_reaches_the_end_or_finds_the_gap() {
        let a = archive(&[(1, &[2, 3, 4, 5])], &[]);
        let legs = a.chain(a.segment(1, 2), 1);
        assert_eq!(
            a.walk(&legs, None),
            Walk {
                last: Some((1, 5)),
                missing: None,
                next_present: None
            }
        );
        let g = archive(&[(1, &[2, 3, 5, 6])], &[]);
        let w = g.walk(&g.chain(g.segment(1, 2), 1), None);
        assert_eq!(w.last, Some((1, 3)));
        assert_eq!(w.missing, Some((1, 4)));
        assert_eq!(w.next_present, Some((1, 5)));
        assert!(w.is_gap());
    }

    #[test]
    fn follows_a_timeline_switch() {
        // TLI 1 up to segment 7, switch at 0/8000000, TLI 2 from segment 8.
        let a = archive(
            &[(1, &[2, 3, 4, 5, 6, 7]), (2, &[8, 9])],
            &[(2, &[(1, 8 * S)])],
        );
        assert_eq!(a.latest_descendant(a.segment(1, 3)), 2);
        let legs = a.chain(a.segment(1, 3), 2);
        assert_eq!(
            legs,
            vec![
                ChainLeg {
                    timeline: 1,
                    from: 3,
                    to: Some(7)
                },
                ChainLeg {
                    timeline: 2,
                    from: 8,
                    to: None
                }
            ]
        );
        assert_eq!(a.walk(&legs, None).last, Some((2, 9)));
        // A hole on the parent before the switch is a gap.
        let b = archive(
            &[(1, &[2, 3, 5, 6, 7]), (2, &[8, 9])],
            &[(2, &[(1, 8 * S)])],
        );
        let w = b.walk(&b.chain(b.segment(1, 2), 2), None);
        assert_eq!((w.missing, w.next_present), (Some((1, 4)), Some((1, 5))));
    }

    #[test]
    fn a_mid_segment_switch_reads_that_segment_from_the_child() {
        // Failover at 0/7024A08: TLI 1 has 2..6 and only a .partial of 7; TLI 2 has 7..9.
        let a = archive(
            &[(1, &[2, 3, 4, 5, 6]), (2, &[7, 8, 9])],
            &[(2, &[(1, 7 * S + 0x24A08)])],
        );
        let legs = a.chain(a.segment(1, 2), 2);
        assert_eq!(
            legs,
            vec![
                ChainLeg {
                    timeline: 1,
                    from: 2,
                    to: Some(6)
                },
                ChainLeg {
                    timeline: 2,
                    from: 7,
                    to: None
                }
            ]
        );
        assert_eq!(
            a.walk(&legs, None),
            Walk {
                last: Some((2, 9)),
                missing: None,
                next_present: None
            }
        );
        // A backup that began in the switch segment reads it from TLI 2 alone.
        assert_eq!(
            a.chain(a.segment(1, 7), 2),
            vec![ChainLeg {
                timeline: 2,
                from: 7,
                to: None
            }]
        );
    }

    #[test]
    fn a_timeline_forked_before_the_backup_is_not_followed() {
        // TLI 2 forked from TLI 1 at segment 4; a backup on TLI 1 that began at 6 stays on TLI 1.
        let a = archive(
            &[(1, &[2, 3, 4, 5, 6, 7]), (2, &[4, 5])],
            &[(2, &[(1, 4 * S)])],
        );
        assert_eq!(a.latest_descendant(a.segment(1, 6)), 1);
        assert_eq!(a.latest_descendant(a.segment(1, 2)), 2);
    }

    #[test]
    fn stop_bounds_the_walk() {
        let a = archive(&[(1, &[2, 3, 5])], &[]);
        let legs = a.chain(a.segment(1, 2), 1);
        assert_eq!(
            a.walk(&legs, Some((0, 3))),
            Walk {
                last: Some((1, 3)),
                missing: None,
                next_present: None
            }
        );
        assert!(a.walk(&legs, Some((0, 5))).is_gap());
        assert_eq!(a.holes(), vec![(1, 4, 1, 5)]);
    }
}
