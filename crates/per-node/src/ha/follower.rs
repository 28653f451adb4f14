//! The HA writer thread: follow the shared log as a standby, take the lease when it expires, catch
//! up to the log's end, then run the sequencer (with a fenced replicator) on the same thread.
//!
//! A standby applies each group through the replay path (`apply_effects` per transaction,
//! `seal_replayed_group` at its `GroupEnd`, root checked), appends it to its local WAL, and
//! publishes it to [`Shared`] (so reads, `/pool/info` and `/health` show it) under the state's
//! write lock, exactly as the sequencer does. New groups are announced by `NOTIFY` on the
//! cluster's channel; the standby also polls every [`POLL_INTERVAL`].

use super::config::{FETCH_GROUPS_MAX, HaConfig, POLL_INTERVAL};
use super::error::HaError;
use super::lease;
use super::log::{LogGroup, PgReplicator, fetch_after};
use super::pg::{channel, connect};
use crate::clock::unix_secs;
use crate::node::shared::Shared;
use crate::node::snapshotter::SnapshotPlanner;
use crate::sequencer::SequencerQueue;
use crate::sequencer::group::{GroupParts, publish_durable};
use per_core::WalRecord;
use per_store::Wal;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `/health` alert kind of a refused shared-log group.
const REFUSED_GROUP: &str = "shared_log_refused";

/// What the writer thread owns.
pub struct Follower {
    config: HaConfig,
    shared: Arc<Shared>,
    wal: Wal,
    planner: Option<SnapshotPlanner>,
    client: Option<Client>,
    seq: u64,
    last_tick: Instant,
    last_db_error: Option<Instant>,
}

impl Follower {
    /// A follower of the shared log from the recovered state in `shared`.
    pub fn new(
        config: HaConfig,
        shared: Arc<Shared>,
        wal: Wal,
        planner: Option<SnapshotPlanner>,
        seq: u64,
    ) -> Follower {
        Follower {
            config,
            shared,
            wal,
            planner,
            client: None,
            seq,
            last_tick: Instant::now(),
            last_db_error: None,
        }
    }

    /// The thread body: follow, take over, then sequence until the queue closes or the node is
    /// fenced. A replay failure (the shared log does not fit the local state) stops the node.
    pub fn run(mut self, queue: SequencerQueue) {
        let epoch = match self.follow_until_promoted() {
            Ok(Some(epoch)) => epoch,
            Ok(None) => {
                tracing::info!("standby stopped");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "standby cannot apply the shared log; stopping (see docs/RUNBOOK.md, 'High availability')");
                self.shared.poison();
                return;
            }
        };
        let replicator = match PgReplicator::connect(&self.config) {
            Ok(replicator) => replicator,
            Err(error) => {
                tracing::error!(%error, "cannot open the shared-log session after taking the lease; exiting");
                self.shared.fence();
                return;
            }
        };
        self.wal.set_epoch(epoch);
        let stop = Arc::new(AtomicBool::new(false));
        let lease = Arc::new(LeaseClock::new());
        {
            let config = self.config.clone();
            let shared = self.shared.clone();
            let renewer_stop = stop.clone();
            let renewer_lease = lease.clone();
            let watchdog_stop = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("per-lease".to_owned())
                .spawn(move || renew_loop(&config, &shared, epoch, &renewer_stop, &renewer_lease))
                .and_then(|_| {
                    let shared = self.shared.clone();
                    let stop = watchdog_stop;
                    let ttl = self.config.lease_ttl;
                    std::thread::Builder::new()
                        .name("per-lease-watchdog".to_owned())
                        .spawn(move || watchdog(&shared, ttl, &stop, &lease))
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start the lease renewer; exiting");
                self.shared.fence();
                return;
            }
        }
        self.shared.promote(epoch);
        tracing::info!(
            epoch,
            seq = self.seq,
            node_id = %self.config.node_id,
            "took the lease: primary, accepting writes"
        );
        let Follower {
            config,
            shared,
            wal,
            planner,
            client,
            ..
        } = self;
        let replicator: crate::sequencer::Replicator = Box::new(replicator);
        queue.run(shared.clone(), wal, planner, Some(replicator));
        stop.store(true, Ordering::Release);
        if !shared.is_fenced() && !shared.flags.poisoned.load(Ordering::Acquire) {
            // Clean stop: hand the lease over at once instead of letting it expire.
            let released = client
                .map_or_else(|| connect(&config), Ok)
                .and_then(|mut client| {
                    lease::release(&mut client, &config.cluster, &config.node_id, epoch)
                });
            match released {
                Ok(true) => tracing::info!(epoch, "lease released"),
                Ok(false) => tracing::warn!(epoch, "lease was no longer ours at stop"),
                Err(error) => {
                    tracing::warn!(%error, "could not release the lease; it expires by its TTL")
                }
            }
        }
    }

    fn follow_until_promoted(&mut self) -> Result<Option<u64>, HaError> {
        loop {
            if self.shared.flags.shutting_down.load(Ordering::Acquire) {
                return Ok(None);
            }
            match self.step() {
                Ok(Some(epoch)) => {
                    self.shared.ha_alerts.clear(REFUSED_GROUP);
                    return Ok(Some(epoch));
                }
                Ok(None) => self.shared.ha_alerts.clear(REFUSED_GROUP),
                Err(HaError::Db(error)) => {
                    if self
                        .last_db_error
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(5))
                    {
                        let error = per_store::describe_pg_error(&error);
                        tracing::warn!(%error, "shared log unreachable; retrying");
                        self.last_db_error = Some(Instant::now());
                    }
                    self.client = None;
                    std::thread::sleep(POLL_INTERVAL);
                }
                Err(error @ HaError::Unauthenticated { .. }) => {
                    // Never applied, never promoted past: the node stays a standby at its last
                    // good seq, says why in /health, and looks again (an operator may delete
                    // the forged row).
                    let reason = error.to_string();
                    if self
                        .last_db_error
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(5))
                    {
                        tracing::error!(error = %reason, "refusing an unauthenticated shared-log group; not applying it and not taking the lease");
                        self.last_db_error = Some(Instant::now());
                    }
                    self.shared.ha_alerts.set(REFUSED_GROUP, true, reason);
                    std::thread::sleep(POLL_INTERVAL);
                }
                Err(other) => return Err(other),
            }
            if self.last_tick.elapsed() >= Duration::from_secs(1) {
                self.last_tick = Instant::now();
                if let (Some(planner), Some(state)) =
                    (self.planner.as_mut(), self.shared.read_state())
                {
                    planner.on_tick(&state);
                }
            }
        }
    }

    fn client(&mut self) -> Result<&mut Client, HaError> {
        if self.client.is_none() {
            let mut client = connect(&self.config)?;
            client.batch_execute(&format!("LISTEN {}", channel(&self.config.cluster)))?;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| HaError::Other("no connection".to_owned()))
    }

    /// One round: apply what is new; when at the log's end and the lease is free, take it.
    fn step(&mut self) -> Result<Option<u64>, HaError> {
        if !self.catch_up()? {
            return Ok(None); // more to fetch right away
        }
        let (cluster, node_id, ttl) = (
            self.config.cluster.clone(),
            self.config.node_id.clone(),
            self.config.lease_ttl,
        );
        let client = self.client()?;
        let status = lease::status(client, &cluster)?;
        let may_take = status
            .as_ref()
            .is_none_or(|s| s.expired || s.holder == node_id);
        if may_take && let Some(epoch) = lease::try_acquire(client, &cluster, &node_id, ttl)? {
            tracing::info!(
                epoch,
                previous = ?status,
                "lease acquired; catching up to the end of the shared log"
            );
            // Every append committed before the acquisition is visible now: read to the end.
            while !self.catch_up()? {}
            let client = self.client()?;
            if !lease::renew(client, &cluster, &node_id, epoch, ttl)? {
                return Err(HaError::Other(
                    "lost the lease while catching up".to_owned(),
                ));
            }
            self.shared.ha_heartbeat();
            return Ok(Some(epoch));
        }
        self.wait_for_news()?;
        Ok(None)
    }

    /// Applies the next groups; `true` when the local state holds the whole shared log.
    fn catch_up(&mut self) -> Result<bool, HaError> {
        let cluster = self.config.cluster.clone();
        let after = self.seq;
        let key = self.config.key.clone();
        let groups = fetch_after(
            self.client()?,
            key.as_deref(),
            &cluster,
            after,
            FETCH_GROUPS_MAX,
        )?;
        let at_end = (groups.len() as i64) < FETCH_GROUPS_MAX;
        for group in groups {
            self.apply(group)?;
        }
        self.shared.ha_heartbeat();
        if at_end {
            self.shared
                .caught_up_secs
                .store(unix_secs(), Ordering::Relaxed);
        }
        Ok(at_end)
    }

    fn wait_for_news(&mut self) -> Result<(), HaError> {
        let client = self.client()?;
        let mut notifications = client.notifications();
        let first = notifications.timeout_iter(POLL_INTERVAL).next()?;
        if first.is_some() {
            // Drain whatever else is pending (non-blocking).
            let mut pending = notifications.iter();
            while pending.next()?.is_some() {}
        }
        Ok(())
    }

    /// Applies one shared-log group through the replay path, appends it to the local WAL and
    /// publishes it (under the state's write lock, as the sequencer does).
    fn apply(&mut self, group: LogGroup) -> Result<(), HaError> {
        if group.first_seq != self.seq + 1 || group.last_seq < group.first_seq {
            return Err(HaError::Diverged(format!(
                "the shared log's next group is seq {}..={} but this node holds up to seq {}",
                group.first_seq, group.last_seq, self.seq
            )));
        }
        let records = group
            .records
            .iter()
            .map(|data| WalRecord::decode(data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                HaError::Diverged(format!(
                    "shared-log group at seq {} does not decode: {e}",
                    group.first_seq
                ))
            })?;
        let shared = self.shared.clone();
        let mut state = shared
            .write_state()
            .ok_or_else(|| HaError::Other("the state lock is poisoned".to_owned()))?;
        let applied = self.apply_locked(&mut state, &group, &records);
        if applied.is_err() {
            // The state may hold half the group: poison before the lock is released, so no
            // reader ever sees it.
            shared.poison();
            drop(state);
            return applied;
        }
        self.seq = state.seq();
        self.shared.follow_epoch(group.epoch);
        drop(state);
        if group.age_secs > 1.0 {
            tracing::debug!(
                seq = self.seq,
                age_secs = group.age_secs,
                "applied an older shared-log group"
            );
        }
        Ok(())
    }

    /// The part of [`apply`](Self::apply) done under the state's write lock; on error the caller
    /// poisons before releasing it.
    fn apply_locked(
        &mut self,
        state: &mut per_core::State,
        group: &LogGroup,
        records: &[WalRecord],
    ) -> Result<(), HaError> {
        let diverged = |what: String| {
            HaError::Diverged(format!(
                "shared-log group {}..={}: {what}",
                group.first_seq, group.last_seq
            ))
        };
        // Like every group's root, a batch seal's root is checked when replayed.
        state.check_every_group(true);
        let mut logged = Vec::new();
        let mut settled = Vec::new();
        let mut root = None;
        for (index, record) in records.iter().enumerate() {
            match record {
                WalRecord::Tx { seq, effects, .. } => {
                    if root.is_some() {
                        return Err(diverged("a record after the GroupEnd".to_owned()));
                    }
                    state
                        .apply_effects(*seq, effects)
                        .map_err(|e| diverged(e.to_string()))?;
                    if self.planner.is_some() {
                        logged.push((*seq, effects.clone()));
                    }
                }
                WalRecord::Settlement { seq, event, .. } => {
                    if root.is_some() {
                        return Err(diverged("a record after the GroupEnd".to_owned()));
                    }
                    state
                        .apply_settlement(*seq, event)
                        .map_err(|e| diverged(e.to_string()))?;
                    if self.planner.is_some() {
                        settled.push((*seq, event.clone()));
                    }
                }
                WalRecord::GroupEnd {
                    seq_last,
                    root: logged_root,
                    ..
                } => {
                    if index + 1 != records.len()
                        || *seq_last != group.last_seq
                        || state.seq() != *seq_last
                    {
                        return Err(diverged(format!(
                            "GroupEnd at seq {seq_last} does not close the group (state at {})",
                            state.seq()
                        )));
                    }
                    state
                        .seal_replayed_group(*logged_root)
                        .map_err(|e| diverged(e.to_string()))?;
                    root = Some(*logged_root);
                }
            }
        }
        let Some(root) = root else {
            return Err(diverged("no GroupEnd".to_owned()));
        };

        if self.wal.epoch() != group.epoch {
            self.wal.set_epoch(group.epoch);
        }
        let frames: Vec<&[u8]> = group.records.iter().map(Vec::as_slice).collect();
        let stats = self
            .wal
            .append_group_seqs(group.first_seq, group.last_seq, &frames)?;
        publish_durable(
            &self.shared,
            self.planner.as_mut(),
            state,
            stats,
            GroupParts {
                logged,
                seals: settled,
            },
            root,
        );
        Ok(())
    }
}

/// When the last successful renewal started (ms since `base`), by this node's monotonic clock.
struct LeaseClock {
    base: Instant,
    renewed_ms: std::sync::atomic::AtomicU64,
}

impl LeaseClock {
    fn new() -> LeaseClock {
        LeaseClock {
            base: Instant::now(),
            renewed_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn renewed(&self, started: Instant) {
        let ms = started.saturating_duration_since(self.base).as_millis() as u64;
        self.renewed_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn since_renewal(&self) -> Duration {
        let renewed = self.base + Duration::from_millis(self.renewed_ms.load(Ordering::Acquire));
        renewed.elapsed()
    }
}

/// Fences the primary once a TTL has passed since the start of its last successful renewal, even
/// if the renewal call itself is stuck (a partition that swallows packets): the lease may be
/// someone else's by now, so `/readyz` must stop routing writes here. (Safety does not depend on
/// this: every append is checked under the lease row lock.)
fn watchdog(shared: &Shared, ttl: Duration, stop: &AtomicBool, lease: &LeaseClock) {
    loop {
        if stop.load(Ordering::Acquire) || shared.is_fenced() {
            return;
        }
        if lease.since_renewal() >= ttl {
            tracing::error!(
                ttl_secs = ttl.as_secs_f64(),
                "lease not renewed within its TTL (Postgres unreachable?): fenced, no more acknowledgements; exiting"
            );
            shared.fence();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The primary's lease renewer: every TTL/3; the first failure fences the node.
fn renew_loop(
    config: &HaConfig,
    shared: &Shared,
    epoch: u64,
    stop: &AtomicBool,
    lease: &LeaseClock,
) {
    let mut client = match connect(config) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "lease renewer cannot reach Postgres: fenced, exiting");
            shared.fence();
            return;
        }
    };
    let interval = config.renew_interval();
    let mut last = Instant::now();
    loop {
        while last.elapsed() < interval {
            if stop.load(Ordering::Acquire) || shared.is_fenced() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::Acquire) || shared.is_fenced() {
            return;
        }
        last = Instant::now();
        let started = last;
        match lease::renew(
            &mut client,
            &config.cluster,
            &config.node_id,
            epoch,
            config.lease_ttl,
        ) {
            Ok(true) => {
                lease.renewed(started);
                shared.ha_heartbeat();
            }
            Ok(false) => {
                tracing::error!(
                    epoch,
                    "lost the lease (taken over or expired): fenced, no more acknowledgements; exiting"
                );
                shared.fence();
                return;
            }
            Err(error) => {
                tracing::error!(%error, epoch, "lease renewal failed: fenced, no more acknowledgements; exiting");
                shared.fence();
                return;
            }
        }
    }
}
