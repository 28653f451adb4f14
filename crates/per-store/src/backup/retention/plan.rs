//! The planner: a pure function from a listing to a [`RemotePlan`].

use super::types::{
    Action, PlannedObject, Reason, RemotePlan, RemoteRetentionPolicy, RestorePoint,
};
use crate::backup::live::LivePartName;
use crate::backup::object_name::ObjectName;
use crate::backup::target::ObjectInfo;
use crate::snapshot::SnapshotKind;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// What an object name denotes, for the planner.
#[derive(Debug, Clone)]
pub(super) enum Parsed {
    Snapshot(SnapKey),
    SnapshotSidecar(SnapKey),
    /// First seq, and whether it is the `.wal.zst` form.
    Segment(u64, bool),
    /// The sidecar of that segment object.
    SegmentSidecar(u64, bool),
    Part(LivePartName),
    Unknown,
}

/// A snapshot's place in the order of names: by seq, a full before a delta of the same seq.
pub(super) type SnapKey = (u64, SnapshotKind);

pub(super) fn parse(name: &str) -> Parsed {
    match ObjectName::parse(name) {
        Some(ObjectName::Snapshot { seq, kind }) => Parsed::Snapshot((seq, kind)),
        Some(ObjectName::SnapshotSidecar { seq, kind }) => Parsed::SnapshotSidecar((seq, kind)),
        Some(ObjectName::Segment {
            first_seq,
            compressed,
        }) => Parsed::Segment(first_seq, compressed),
        Some(ObjectName::SegmentSidecar {
            first_seq,
            compressed,
        }) => Parsed::SegmentSidecar(first_seq, compressed),
        None => match LivePartName::parse(name) {
            Some(part) => Parsed::Part(part),
            None => Parsed::Unknown,
        },
    }
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Plans retention for one target from its listing (`objects`, as
/// [`BackupTarget::list`](crate::backup::BackupTarget::list) returns it) at time `now`: every
/// object with keep/delete and a reason. Pure: reads nothing but its arguments. See the
/// [module documentation](super) for the rules.
pub fn plan_remote_retention(
    objects: &[ObjectInfo],
    policy: &RemoteRetentionPolicy,
    now: SystemTime,
) -> RemotePlan {
    let now_ms = millis(now);
    let keep_for_ms = u64::try_from(policy.keep_for.as_millis()).unwrap_or(u64::MAX);
    let parsed: Vec<(&ObjectInfo, Parsed)> = objects.iter().map(|o| (o, parse(&o.name))).collect();

    // Snapshots and their sidecars, in name order.
    let mut snapshots: BTreeMap<SnapKey, &ObjectInfo> = BTreeMap::new();
    let mut snapshot_sidecars: BTreeSet<SnapKey> = BTreeSet::new();
    for (info, p) in &parsed {
        match p {
            Parsed::Snapshot(key) => {
                snapshots.insert(*key, info);
            }
            Parsed::SnapshotSidecar(key) => {
                snapshot_sidecars.insert(*key);
            }
            _ => {}
        }
    }

    // Chains: walk every snapshot name (and every sidecar whose snapshot is gone: a missing link)
    // in order; a full starts a chain, a gap or a missing sidecar breaks it until the next full.
    let links: BTreeSet<SnapKey> = snapshots
        .keys()
        .chain(snapshot_sidecars.iter())
        .copied()
        .collect();
    let mut restore_points: Vec<RestorePoint> = Vec::new();
    let mut chain_full: HashMap<SnapKey, SnapKey> = HashMap::new();
    let mut current: Option<(SnapKey, Vec<String>, Option<String>)> = None;
    for key in links {
        let (seq, kind) = key;
        let Some(info) = snapshots.get(&key) else {
            // Only the sidecar is left: the object was deleted (an interrupted retention run, or
            // by hand). Anything built on it is unusable.
            let missing = format!(
                "{} is missing (only its sidecar is on the target)",
                ObjectName::Snapshot { seq, kind }
            );
            match (kind, current.as_mut()) {
                (SnapshotKind::Full, _) => current = Some((key, Vec::new(), Some(missing))),
                (SnapshotKind::Delta, Some((_, _, broken))) => {
                    broken.get_or_insert(missing);
                }
                (SnapshotKind::Delta, None) => {}
            }
            continue;
        };
        if kind == SnapshotKind::Full {
            current = Some((key, Vec::new(), None));
        }
        let rp = match current.as_mut() {
            Some((full, chain, broken)) => {
                chain.push(info.name.clone());
                if !snapshot_sidecars.contains(&key) {
                    broken.get_or_insert(format!("{} has no sidecar", info.name));
                }
                chain_full.insert(key, *full);
                RestorePoint {
                    seq,
                    kind,
                    name: info.name.clone(),
                    modified_ms: info.modified_ms,
                    chain: chain.clone(),
                    broken: broken.clone(),
                    kept: false,
                }
            }
            None => RestorePoint {
                seq,
                kind,
                name: info.name.clone(),
                modified_ms: info.modified_ms,
                chain: vec![info.name.clone()],
                broken: Some("no full snapshot before it on the target".to_owned()),
                kept: false,
            },
        };
        restore_points.push(rp);
    }

    // Which complete restore points the policy keeps, and why.
    let mut kept_reason: HashMap<SnapKey, Reason> = HashMap::new();
    let mut complete_seen = 0usize;
    for rp in restore_points.iter_mut().rev() {
        if rp.broken.is_some() {
            continue;
        }
        let recent = rp
            .modified_ms
            .is_none_or(|t| now_ms.saturating_sub(t) < keep_for_ms);
        let reason = if recent {
            Some(Reason::RecentRestorePoint)
        } else if complete_seen < policy.restore_points_min {
            Some(Reason::NewestRestorePoint)
        } else {
            None
        };
        complete_seen += 1;
        if let Some(reason) = reason {
            rp.kept = true;
            kept_reason.insert((rp.seq, rp.kind), reason);
        }
    }
    let oldest_kept: Option<SnapKey> = restore_points
        .iter()
        .find(|rp| rp.kept)
        .map(|rp| (rp.seq, rp.kind));
    let unknown: Vec<String> = parsed
        .iter()
        .filter(|(_, p)| matches!(p, Parsed::Unknown))
        .map(|(o, _)| o.name.clone())
        .collect();

    let Some(oldest_kept) = oldest_kept else {
        // No complete restore point: nothing can be shown unneeded.
        let mut planned: Vec<PlannedObject> = parsed
            .iter()
            .map(|(o, p)| PlannedObject {
                name: o.name.clone(),
                bytes: o.bytes,
                action: Action::Keep,
                reason: if matches!(p, Parsed::Unknown) {
                    Reason::Unknown
                } else {
                    Reason::NoRestorePoint
                },
            })
            .collect();
        planned.sort_by(|a, b| a.name.cmp(&b.name));
        return RemotePlan {
            policy: *policy,
            now,
            objects: planned,
            restore_points,
            keep_from_full_seq: None,
            wal_kept_from_segment: None,
            protected_generations: Vec::new(),
            unknown,
        };
    };
    // The oldest kept restore point is complete, so its chain has a full.
    let first_full: SnapKey = chain_full.get(&oldest_kept).copied().unwrap_or(oldest_kept);
    let full_seq = first_full.0;

    // Snapshot links of kept chains: the oldest kept restore point whose chain holds each.
    let mut chain_of: HashMap<String, u64> = HashMap::new();
    for rp in restore_points.iter().filter(|rp| rp.kept) {
        for link in &rp.chain {
            chain_of.entry(link.clone()).or_insert(rp.seq);
        }
    }

    // WAL: the segment holding full_seq + 1 (as the restore verb picks it: the greatest first seq
    // at or below it, among sealed segments with their sidecar and live-WAL segments).
    let sealed: HashSet<(u64, bool)> = parsed
        .iter()
        .filter_map(|(_, p)| match p {
            Parsed::Segment(first, compressed) => Some((*first, *compressed)),
            _ => None,
        })
        .collect();
    // Sealed segments whose object and sidecar are both there (either form).
    let sealed_complete: HashSet<u64> = parsed
        .iter()
        .filter_map(|(_, p)| match p {
            Parsed::SegmentSidecar(first, compressed)
                if sealed.contains(&(*first, *compressed)) =>
            {
                Some(*first)
            }
            _ => None,
        })
        .collect();
    let parts: Vec<&LivePartName> = parsed
        .iter()
        .filter_map(|(_, p)| match p {
            Parsed::Part(part) => Some(part),
            _ => None,
        })
        .collect();
    let mut firsts: BTreeSet<u64> = sealed_complete.iter().copied().collect();
    firsts.extend(parts.iter().map(|p| p.segment_first_seq));
    let wal_from: Option<u64> = firsts
        .range(..=full_seq.saturating_add(1))
        .next_back()
        .copied();
    // Live-WAL groups (generation, segment) → the last seq they reach.
    let mut reach: HashMap<(&str, u64), u64> = HashMap::new();
    for part in &parts {
        let entry = reach
            .entry((part.generation.as_str(), part.segment_first_seq))
            .or_insert(0);
        *entry = (*entry).max(part.last_seq);
    }
    let mut protected: BTreeSet<String> = BTreeSet::new();
    if let Some(newest) = parts.iter().map(|p| &p.generation).max() {
        protected.insert(newest.clone());
    }
    let last_uploaded = parsed
        .iter()
        .filter_map(|(o, p)| match p {
            Parsed::Part(part) => o.modified_ms.map(|t| (t, &part.generation)),
            _ => None,
        })
        .max();
    if let Some((_, generation)) = last_uploaded {
        protected.insert(generation.clone());
    }
    let wal_before = |first: u64| wal_from.is_some_and(|from| first < from);

    let mut planned: Vec<PlannedObject> = Vec::with_capacity(parsed.len());
    for (info, p) in &parsed {
        let (action, reason) = match p {
            Parsed::Unknown => (Action::Keep, Reason::Unknown),
            Parsed::Snapshot(key) if *key < first_full => {
                (Action::Delete, Reason::OlderThanKeptChains { full_seq })
            }
            Parsed::Snapshot(key) => match (kept_reason.get(key), chain_of.get(&info.name)) {
                (Some(reason), _) => (Action::Keep, reason.clone()),
                (None, Some(seq)) => (
                    Action::Keep,
                    Reason::ChainOf {
                        restore_point_seq: *seq,
                    },
                ),
                (None, None) => (Action::Keep, Reason::NotOlderThanKept),
            },
            Parsed::SnapshotSidecar(key) if *key < first_full => {
                if snapshots.contains_key(key) {
                    (Action::Delete, Reason::OlderThanKeptChains { full_seq })
                } else {
                    (Action::Delete, Reason::OrphanSidecar)
                }
            }
            Parsed::SnapshotSidecar(key) => {
                let object = ObjectName::Snapshot {
                    seq: key.0,
                    kind: key.1,
                }
                .name();
                if kept_reason.contains_key(key) || chain_of.contains_key(&object) {
                    (Action::Keep, Reason::SidecarOfKept)
                } else {
                    (Action::Keep, Reason::NotOlderThanKept)
                }
            }
            Parsed::Segment(first, _) if wal_before(*first) => (
                Action::Delete,
                Reason::WalBeforeKept {
                    from_seq: full_seq.saturating_add(1),
                },
            ),
            Parsed::SegmentSidecar(first, compressed) if wal_before(*first) => {
                if sealed.contains(&(*first, *compressed)) {
                    (
                        Action::Delete,
                        Reason::WalBeforeKept {
                            from_seq: full_seq.saturating_add(1),
                        },
                    )
                } else {
                    (Action::Delete, Reason::OrphanSidecar)
                }
            }
            Parsed::Segment(..) | Parsed::SegmentSidecar(..) => (
                Action::Keep,
                Reason::WalAfterKept {
                    from_seq: full_seq.saturating_add(1),
                },
            ),
            Parsed::Part(part) => {
                let reaches = reach
                    .get(&(part.generation.as_str(), part.segment_first_seq))
                    .copied()
                    .unwrap_or(part.last_seq);
                let first = part.segment_first_seq;
                let unneeded = wal_before(first) && reaches <= full_seq;
                // The newest generation's parts go only where a sealed copy replaced them.
                let newest = protected.contains(&part.generation);
                if !unneeded {
                    (
                        Action::Keep,
                        Reason::WalAfterKept {
                            from_seq: full_seq.saturating_add(1),
                        },
                    )
                } else if newest && !sealed_complete.contains(&first) {
                    (Action::Keep, Reason::NewestGeneration)
                } else {
                    (
                        Action::Delete,
                        Reason::WalBeforeKept {
                            from_seq: full_seq.saturating_add(1),
                        },
                    )
                }
            }
        };
        planned.push(PlannedObject {
            name: info.name.clone(),
            bytes: info.bytes,
            action,
            reason,
        });
    }
    planned.sort_by(|a, b| a.name.cmp(&b.name));
    RemotePlan {
        policy: *policy,
        now,
        objects: planned,
        restore_points,
        keep_from_full_seq: Some(full_seq),
        wal_kept_from_segment: wal_from,
        protected_generations: protected.into_iter().collect(),
        unknown,
    }
}
