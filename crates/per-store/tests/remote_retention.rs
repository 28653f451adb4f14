//! Remote retention on synthetic listings: a month of simulated history (a full snapshot a day, a
//! delta every hour, a sealed WAL segment a day, live-WAL parts every hour in two generations),
//! checked against a model of what each restore point needs that does not use the planner; and
//! `apply_remote_retention` on an in-memory target (order, interruption, re-listing, target down).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use per_store::backup::live::{LivePartName, generation_id};
use per_store::backup::retention::{
    Action, Reason, RemoteRetentionError, RemoteRetentionPolicy, apply_remote_retention,
    plan_remote_retention,
};
use per_store::backup::{BackupError, BackupTarget, ObjectInfo, ObjectName, PutOutcome};
use per_store::snapshot::SnapshotKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
const T0_MS: u64 = 1_700_000_000_000;
/// Transactions an hour; a day's segment holds 24 hours.
const PER_HOUR: u64 = 100;
const PER_DAY: u64 = 24 * PER_HOUR;

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The snapshot taken at the end of hour `hour` (from 0): its seq and kind.
fn snapshot_of(hour: u64) -> (u64, SnapshotKind) {
    let kind = if hour.is_multiple_of(24) {
        SnapshotKind::Full
    } else {
        SnapshotKind::Delta
    };
    ((hour + 1) * PER_HOUR, kind)
}

fn snap_name(hour: u64) -> String {
    let (seq, kind) = snapshot_of(hour);
    ObjectName::Snapshot { seq, kind }.name()
}

fn snap_sidecar(hour: u64) -> String {
    let (seq, kind) = snapshot_of(hour);
    ObjectName::SnapshotSidecar { seq, kind }.name()
}

fn segment_first(day: u64) -> u64 {
    day * PER_DAY + 1
}

fn segment_name(day: u64) -> String {
    ObjectName::Segment {
        first_seq: segment_first(day),
        compressed: true,
    }
    .name()
}

fn segment_sidecar(day: u64) -> String {
    ObjectName::SegmentSidecar {
        first_seq: segment_first(day),
        compressed: true,
    }
    .name()
}

fn part(generation: &str, day: u64, first_seq: u64, last_seq: u64) -> String {
    LivePartName {
        generation: generation.to_owned(),
        segment_first_seq: segment_first(day),
        first_seq,
        last_seq,
    }
    .name()
}

/// The simulated history, as a target would list it.
struct History {
    objects: BTreeMap<String, ObjectInfo>,
    gen_a: String,
    gen_b: String,
}

impl History {
    fn add(&mut self, name: String, modified_ms: u64) {
        self.objects.insert(
            name.clone(),
            ObjectInfo {
                name,
                bytes: 1000,
                modified_ms: Some(modified_ms),
            },
        );
    }

    fn remove(&mut self, name: &str) {
        assert!(self.objects.remove(name).is_some(), "{name} was there");
    }

    fn listing(&self) -> Vec<ObjectInfo> {
        self.objects.values().cloned().collect()
    }

    fn names(&self) -> BTreeSet<String> {
        self.objects.keys().cloned().collect()
    }
}

/// `days` days of history: hourly snapshots (a full at hour 0 of each day) uploaded at the end of
/// their hour; the segment of day d sealed and uploaded at the end of the day (all but the last
/// day's, which is live); hourly live-WAL parts, in generation A until the node restarts at
/// `restart_day` hour 6 and in generation B after it (B archives its live segment again from the
/// start, in one part, then hourly). Two objects with names the planner does not know.
fn history(days: u64, restart_day: u64) -> History {
    let gen_a = generation_id(1, "node-a", 1);
    let gen_b = generation_id(1, "node-a", segment_first(restart_day));
    let mut h = History {
        objects: BTreeMap::new(),
        gen_a: gen_a.clone(),
        gen_b: gen_b.clone(),
    };
    for hour in 0..days * 24 {
        let end = T0_MS + (hour + 1) * HOUR_MS;
        h.add(snap_name(hour), end);
        h.add(snap_sidecar(hour), end + 1);
        let (day, in_day) = (hour / 24, hour % 24);
        let first = hour * PER_HOUR + 1;
        let last = (hour + 1) * PER_HOUR;
        if day < restart_day || (day == restart_day && in_day < 6) {
            h.add(part(&gen_a, day, first, last), end);
        } else if day == restart_day && in_day == 6 {
            h.add(part(&gen_b, day, segment_first(day), last), end);
        } else {
            h.add(part(&gen_b, day, first, last), end);
        }
        if in_day == 23 && day + 1 < days {
            h.add(segment_name(day), end + 2);
            h.add(segment_sidecar(day), end + 3);
        }
    }
    h.add("README.txt".to_owned(), T0_MS);
    h.add("wal-live/not a generation/x.walpart".to_owned(), T0_MS);
    h
}

/// What restoring the snapshot of `hour` needs, from the model (not from the planner): its
/// chain (from the day's full) with sidecars, and the WAL after it up to the newest archived
/// seq: each later day's sealed segment with its sidecar, or (the live last day) generation B's
/// parts covering the day from its first seq.
fn needs(hour: u64, days: u64, gen_b: &str) -> Vec<String> {
    let mut out = Vec::new();
    for link in hour - hour % 24..=hour {
        out.push(snap_name(link));
        out.push(snap_sidecar(link));
    }
    let next_day = (hour + 1) / 24;
    for day in next_day..days {
        if day + 1 < days {
            out.push(segment_name(day));
            out.push(segment_sidecar(day));
        } else {
            for h in day * 24..days * 24 {
                out.push(part(gen_b, day, h * PER_HOUR + 1, (h + 1) * PER_HOUR));
            }
        }
    }
    out
}

fn kept(plan: &per_store::backup::retention::RemotePlan) -> BTreeSet<String> {
    plan.kept().map(|o| o.name.clone()).collect()
}

fn deleted(plan: &per_store::backup::retention::RemotePlan) -> BTreeSet<String> {
    plan.deletions().iter().map(|o| o.name.clone()).collect()
}

fn policy(days: u64, min: usize) -> RemoteRetentionPolicy {
    RemoteRetentionPolicy {
        keep_for: Duration::from_millis(days * DAY_MS),
        restore_points_min: min,
    }
}

#[test]
fn a_month_keeps_seven_days_of_restore_points_with_their_chains_and_wal() {
    let days = 30;
    let h = history(days, 20);
    // 3.5 hours after the end of the month: the restore points younger than 7 days are those
    // of hours 555.. (day 23, 03:00 on); the chain of the oldest starts at day 23's full.
    let now = at(T0_MS + days * DAY_MS + 7 * HOUR_MS / 2);
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);

    let kept_rps: Vec<u64> = plan
        .restore_points
        .iter()
        .filter(|rp| rp.kept)
        .map(|rp| rp.seq)
        .collect();
    let first_kept_hour = 555;
    assert_eq!(
        kept_rps,
        (first_kept_hour..days * 24)
            .map(|hour| snapshot_of(hour).0)
            .collect::<Vec<_>>(),
        "exactly the restore points of the last 7 days"
    );
    assert_eq!(plan.keep_from_full_seq, Some(snapshot_of(552).0));
    assert_eq!(plan.wal_kept_from_segment, Some(segment_first(23)));

    let mut expected: BTreeSet<String> = BTreeSet::new();
    for hour in 552..days * 24 {
        expected.insert(snap_name(hour));
        expected.insert(snap_sidecar(hour));
    }
    for day in 23..days - 1 {
        expected.insert(segment_name(day));
        expected.insert(segment_sidecar(day));
    }
    for hour in 23 * 24..days * 24 {
        let (first, last) = (hour * PER_HOUR + 1, (hour + 1) * PER_HOUR);
        expected.insert(part(&h.gen_b, hour / 24, first, last));
    }
    expected.insert("README.txt".to_owned());
    expected.insert("wal-live/not a generation/x.walpart".to_owned());
    assert_eq!(kept(&plan), expected, "exactly what the policy keeps");
    assert_eq!(
        deleted(&plan),
        h.names().difference(&expected).cloned().collect(),
        "everything else is deleted"
    );
    assert_eq!(
        plan.unknown,
        vec![
            "README.txt".to_owned(),
            "wal-live/not a generation/x.walpart".to_owned()
        ]
    );
    assert!(
        plan.objects
            .iter()
            .filter(|o| o.name == "README.txt")
            .all(|o| o.reason == Reason::Unknown && o.action == Action::Keep)
    );

    // Every kept snapshot (restore point or chain link) restores, and rolls forward to the end.
    let left = kept(&plan);
    for hour in 552..days * 24 {
        for needed in needs(hour, days, &h.gen_b) {
            assert!(
                left.contains(&needed),
                "snapshot of hour {hour} needs {needed}"
            );
        }
    }
    // Each object has a reason that matches its action.
    for object in &plan.objects {
        let keep_reason = matches!(
            object.reason,
            Reason::RecentRestorePoint
                | Reason::NewestRestorePoint
                | Reason::ChainOf { .. }
                | Reason::NotOlderThanKept
                | Reason::SidecarOfKept
                | Reason::WalAfterKept { .. }
                | Reason::NewestGeneration
                | Reason::Unknown
                | Reason::NoRestorePoint
        );
        assert_eq!(keep_reason, object.action == Action::Keep, "{object:?}");
        assert!(!object.reason.to_string().is_empty());
    }
}

#[test]
fn an_old_history_keeps_the_newest_restore_points_whatever_their_age() {
    // Ten days of history, then the node stopped: three weeks later nothing is younger than 7
    // days, so the newest 10 restore points (day 9, hours 14..23) and their chain stay.
    let days = 10;
    let h = history(days, 5);
    let now = at(T0_MS + 30 * DAY_MS);
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);
    let kept_rps: Vec<u64> = plan
        .restore_points
        .iter()
        .filter(|rp| rp.kept)
        .map(|rp| rp.seq)
        .collect();
    assert_eq!(
        kept_rps,
        (230..240)
            .map(|hour| snapshot_of(hour).0)
            .collect::<Vec<_>>()
    );
    assert!(
        plan.objects
            .iter()
            .filter(|o| o.name == snap_name(239))
            .all(|o| o.reason == Reason::NewestRestorePoint)
    );
    assert_eq!(plan.keep_from_full_seq, Some(snapshot_of(216).0));
    let left = kept(&plan);
    for hour in 216..240 {
        assert!(left.contains(&snap_name(hour)), "chain link of day 9 kept");
        for needed in needs(hour, days, &h.gen_b) {
            assert!(left.contains(&needed), "hour {hour} needs {needed}");
        }
    }
    assert!(!left.contains(&snap_name(215)), "day 8 goes");
    assert!(!left.contains(&segment_name(8)), "day 8's WAL goes");
    assert!(
        left.contains(&part(&h.gen_b, 9, 9 * PER_DAY + 1, 9 * PER_DAY + PER_HOUR)),
        "the live segment's parts stay"
    );
}

/// Whether everything `before` kept that is still listed in `h` is in `now_kept`.
fn still_kept(
    before: &per_store::backup::retention::RemotePlan,
    h: &History,
    now_kept: &BTreeSet<String>,
) -> bool {
    kept(before)
        .iter()
        .filter(|name| h.objects.contains_key(*name))
        .all(|name| now_kept.contains(name))
}

#[test]
fn a_broken_chain_never_makes_retention_keep_less() {
    let days = 10;
    let now = at(T0_MS + 30 * DAY_MS);
    let intact = plan_remote_retention(&history(days, 5).listing(), &policy(7, 10), now);

    // Day 9's full lost its sidecar: none of day 9 is a restore point; the newest 10 complete
    // ones are day 8's last 10, so day 8's chain and its WAL stay, and day 9 stays too.
    let mut h = history(days, 5);
    h.remove(&snap_sidecar(216));
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);
    let kept_rps: Vec<u64> = plan
        .restore_points
        .iter()
        .filter(|rp| rp.kept)
        .map(|rp| rp.seq)
        .collect();
    assert_eq!(
        kept_rps,
        (206..216)
            .map(|hour| snapshot_of(hour).0)
            .collect::<Vec<_>>()
    );
    assert!(
        plan.restore_points
            .iter()
            .filter(|rp| rp.seq > snapshot_of(215).0)
            .all(|rp| rp.broken.is_some() && !rp.kept)
    );
    assert_eq!(plan.keep_from_full_seq, Some(snapshot_of(192).0));
    let left = kept(&plan);
    assert!(still_kept(&intact, &h, &left), "keeps more, never less");
    for hour in 192..216 {
        for needed in needs(hour, days, &h.gen_b) {
            assert!(left.contains(&needed), "hour {hour} needs {needed}");
        }
    }
    for hour in 216..240 {
        assert!(
            left.contains(&snap_name(hour)),
            "newer broken ones are kept"
        );
    }

    // A delta deleted by hand (its sidecar left): the restore points built on it are broken;
    // the newest 10 complete ones are before it, in the same chain.
    let mut h = history(days, 5);
    h.remove(&snap_name(236));
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);
    let kept_rps: Vec<u64> = plan
        .restore_points
        .iter()
        .filter(|rp| rp.kept)
        .map(|rp| rp.seq)
        .collect();
    assert_eq!(
        kept_rps,
        (226..236)
            .map(|hour| snapshot_of(hour).0)
            .collect::<Vec<_>>()
    );
    assert!(
        plan.restore_points
            .iter()
            .filter(|rp| rp.seq > snapshot_of(236).0)
            .all(|rp| rp.broken.as_deref().is_some_and(|b| b.contains("missing")))
    );
    assert_eq!(plan.keep_from_full_seq, Some(snapshot_of(216).0));
    assert!(still_kept(&intact, &h, &kept(&plan)));
    assert!(
        kept(&plan).contains(&snap_sidecar(236)),
        "the orphan sidecar is after the cut"
    );
}

#[test]
fn without_a_complete_restore_point_nothing_is_deleted() {
    let mut h = history(3, 1);
    for hour in (0..72).step_by(24) {
        h.remove(&snap_name(hour)); // every full gone, their sidecars left
    }
    let plan = plan_remote_retention(&h.listing(), &policy(0, 1), at(T0_MS + 90 * DAY_MS));
    assert!(plan.restore_points.iter().all(|rp| rp.broken.is_some()));
    assert_eq!(plan.deletions().len(), 0);
    assert_eq!(plan.keep_from_full_seq, None);
    assert!(plan.objects.iter().all(|o| o.action == Action::Keep));
}

#[test]
fn an_unknown_upload_time_counts_as_new() {
    let mut h = history(3, 1);
    for object in h.objects.values_mut() {
        object.modified_ms = None;
    }
    let plan = plan_remote_retention(&h.listing(), &policy(1, 1), at(T0_MS + 90 * DAY_MS));
    assert_eq!(plan.keep_from_full_seq, Some(snapshot_of(0).0));
    assert!(plan.restore_points.iter().all(|rp| rp.kept));
    assert_eq!(plan.wal_kept_from_segment, Some(segment_first(0)));
    assert!(plan.deletions().is_empty(), "{:?}", plan.deletions());
}

/// An in-memory target: can be down, and can fail a deletion.
#[derive(Default)]
struct MemTarget {
    objects: BTreeMap<String, ObjectInfo>,
    down: bool,
    deletes_before_failure: Option<usize>,
    deleted: Vec<String>,
}

impl MemTarget {
    fn from(h: &History) -> MemTarget {
        MemTarget {
            objects: h.objects.clone(),
            ..MemTarget::default()
        }
    }

    fn names(&self) -> BTreeSet<String> {
        self.objects.keys().cloned().collect()
    }
}

impl BackupTarget for MemTarget {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn put(&mut self, name: &str, bytes: &[u8]) -> Result<PutOutcome, BackupError> {
        let info = ObjectInfo {
            name: name.to_owned(),
            bytes: bytes.len() as u64,
            modified_ms: None,
        };
        self.objects.insert(name.to_owned(), info);
        Ok(PutOutcome::Stored)
    }

    fn get(&mut self, name: &str) -> Result<Vec<u8>, BackupError> {
        Err(BackupError::NotFound {
            target: "memory",
            name: name.to_owned(),
        })
    }

    fn list(&mut self) -> Result<Vec<ObjectInfo>, BackupError> {
        if self.down {
            return Err(BackupError::Unreachable {
                target: "memory",
                message: "down".to_owned(),
            });
        }
        Ok(self.objects.values().cloned().collect())
    }

    fn delete(&mut self, name: &str) -> Result<(), BackupError> {
        if self.deletes_before_failure == Some(self.deleted.len()) {
            return Err(BackupError::Unreachable {
                target: "memory",
                message: "connection lost".to_owned(),
            });
        }
        self.objects.remove(name);
        self.deleted.push(name.to_owned());
        Ok(())
    }
}

/// Every snapshot left on the target still restores and rolls forward: its chain and the WAL
/// after it (from the model) are all there.
fn every_snapshot_left_restores(target: &MemTarget, days: u64, gen_b: &str) {
    let names = target.names();
    for hour in 0..days * 24 {
        if !names.contains(&snap_name(hour)) {
            continue;
        }
        for needed in needs(hour, days, gen_b) {
            assert!(
                names.contains(&needed),
                "snapshot of hour {hour} lost {needed}"
            );
        }
    }
}

#[test]
fn apply_deletes_in_a_consistent_order_and_survives_interruption() {
    let days = 10;
    let h = history(days, 5);
    let now = at(T0_MS + 30 * DAY_MS);
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);
    let order: Vec<String> = plan.deletions().iter().map(|o| o.name.clone()).collect();
    assert!(!order.is_empty());
    // Snapshots first (oldest chain first, newest link first, object before sidecar), then WAL.
    let first_wal = order
        .iter()
        .position(|n| n.starts_with("wal"))
        .expect("WAL deleted");
    assert!(order[first_wal..].iter().all(|n| n.starts_with("wal")));
    assert_eq!(
        order[0],
        snap_name(23),
        "the oldest chain's newest link first"
    );
    assert_eq!(order[1], snap_sidecar(23), "then its sidecar");
    assert_eq!(order[46], snap_name(0), "down to the chain's full");
    assert_eq!(order[48], snap_name(47), "then the next chain");
    assert_eq!(
        order[first_wal],
        part(&h.gen_a, 0, 1, PER_HOUR),
        "the oldest segment first, its live parts before its sealed copy"
    );
    assert_eq!(order[first_wal + 24], segment_name(0));
    assert_eq!(order[first_wal + 25], segment_sidecar(0));

    // Interrupted after any number of deletions: what is left is consistent, and a fresh plan
    // and apply finish the job with the same end state.
    let mut end_state: Option<BTreeSet<String>> = None;
    for stop in 0..order.len() {
        let mut target = MemTarget::from(&h);
        target.deletes_before_failure = Some(stop);
        match apply_remote_retention(&mut target, &plan) {
            Err(RemoteRetentionError::Delete { deleted, name, .. }) => {
                assert_eq!(deleted, stop);
                assert_eq!(name, order[stop]);
            }
            other => panic!("expected a failed deletion, got {other:?}"),
        }
        assert_eq!(target.deleted, order[..stop].to_vec());
        every_snapshot_left_restores(&target, days, &h.gen_b);
        target.deletes_before_failure = None;
        let again = plan_remote_retention(&target.list().expect("list"), &policy(7, 10), now);
        let applied = apply_remote_retention(&mut target, &again).expect("finishes");
        assert_eq!(applied.deleted.len(), order.len() - stop);
        every_snapshot_left_restores(&target, days, &h.gen_b);
        let names = target.names();
        assert_eq!(end_state.get_or_insert_with(|| names.clone()), &names);
    }
    assert_eq!(end_state.expect("ran"), kept(&plan));

    // The original plan applied to a target that was partly cleaned already: the gone ones are
    // skipped.
    let mut target = MemTarget::from(&h);
    for name in &order[..10] {
        target.objects.remove(name);
    }
    let applied = apply_remote_retention(&mut target, &plan).expect("applies");
    assert_eq!(applied.already_gone, order[..10].to_vec());
    assert_eq!(applied.deleted, order[10..].to_vec());
    assert_eq!(applied.bytes_deleted, 1000 * (order.len() as u64 - 10));
}

#[test]
fn apply_deletes_nothing_when_the_target_is_down_or_changed() {
    let days = 10;
    let h = history(days, 5);
    let now = at(T0_MS + 30 * DAY_MS);
    let plan = plan_remote_retention(&h.listing(), &policy(7, 10), now);
    assert!(!plan.deletions().is_empty());

    let mut down = MemTarget::from(&h);
    down.down = true;
    match apply_remote_retention(&mut down, &plan) {
        Err(RemoteRetentionError::List { source }) => assert!(source.is_unreachable()),
        other => panic!("expected a listing error, got {other:?}"),
    }
    assert!(down.deleted.is_empty());
    assert_eq!(down.names(), h.names());

    // A kept chain link disappeared since the plan: refuse, delete nothing.
    let mut changed = MemTarget::from(&h);
    changed.objects.remove(&snap_name(220));
    match apply_remote_retention(&mut changed, &plan) {
        Err(RemoteRetentionError::PlanInvalidated { reasons }) => {
            assert!(
                reasons.iter().any(|r| r.contains(&snap_name(220))),
                "{reasons:?}"
            );
        }
        other => panic!("expected the plan to be refused, got {other:?}"),
    }
    assert!(changed.deleted.is_empty());

    // New uploads since the plan (a newer restore point) do not invalidate it.
    let mut grown = MemTarget::from(&h);
    let newer = ObjectName::Snapshot {
        seq: snapshot_of(240).0,
        kind: SnapshotKind::Delta,
    };
    for name in [newer.name(), newer.sidecar().expect("sidecar").name()] {
        grown.objects.insert(
            name.clone(),
            ObjectInfo {
                name,
                bytes: 1,
                modified_ms: Some(T0_MS + 30 * DAY_MS),
            },
        );
    }
    let applied = apply_remote_retention(&mut grown, &plan).expect("applies");
    assert_eq!(applied.deleted.len(), plan.deletions().len());
}
