//! The lease: one row per cluster `(holder, epoch, expires_at)`, only ever compared with
//! Postgres's `now()` (never a node's clock). Every acquisition increments `epoch`: the fencing
//! token every shared-log append is checked against.

use super::error::HaError;
use super::pg::{to_i64, to_u64};
use postgres::Client;
use std::time::Duration;

/// Who holds the lease, as Postgres sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    /// Holder's node id.
    pub holder: String,
    /// Current epoch.
    pub epoch: u64,
    /// Whether it expired (by Postgres's clock).
    pub expired: bool,
}

/// Takes the lease if it is free, expired, or already ours; returns the new epoch (previous + 1).
/// `None`: another node holds an unexpired lease.
pub fn try_acquire(
    client: &mut Client,
    cluster: &str,
    node_id: &str,
    ttl: Duration,
) -> Result<Option<u64>, HaError> {
    let row = client.query_opt(
        "INSERT INTO per_lease (cluster, holder, epoch, expires_at)
         VALUES ($1, $2, 1, now() + make_interval(secs => $3))
         ON CONFLICT (cluster) DO UPDATE
            SET holder = EXCLUDED.holder,
                epoch = per_lease.epoch + 1,
                expires_at = EXCLUDED.expires_at
          WHERE per_lease.expires_at < now() OR per_lease.holder = EXCLUDED.holder
         RETURNING epoch",
        &[&cluster, &node_id, &ttl.as_secs_f64()],
    )?;
    row.map(|row| to_u64(row.get(0))).transpose()
}

/// Extends our lease; `false` if it is no longer ours at `epoch` or already expired.
pub fn renew(
    client: &mut Client,
    cluster: &str,
    node_id: &str,
    epoch: u64,
    ttl: Duration,
) -> Result<bool, HaError> {
    let updated = client.execute(
        "UPDATE per_lease SET expires_at = now() + make_interval(secs => $4)
          WHERE cluster = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
        &[&cluster, &node_id, &to_i64(epoch)?, &ttl.as_secs_f64()],
    )?;
    Ok(updated == 1)
}

/// Gives the lease up at once (clean shutdown), so a standby takes over without waiting for the
/// TTL. Only if it is still ours at `epoch`.
pub fn release(
    client: &mut Client,
    cluster: &str,
    node_id: &str,
    epoch: u64,
) -> Result<bool, HaError> {
    let updated = client.execute(
        "UPDATE per_lease SET expires_at = now() - interval '1 millisecond'
          WHERE cluster = $1 AND holder = $2 AND epoch = $3",
        &[&cluster, &node_id, &to_i64(epoch)?],
    )?;
    Ok(updated == 1)
}

/// Expires the lease whoever holds it, but only at `epoch` (the one the operator read), so a
/// concurrent takeover is never undone: `per failover --to-standby`'s step 2. The holder's next
/// renewal or append then fails and it stops acknowledging. `false`: the epoch moved on already.
pub fn force_expire(client: &mut Client, cluster: &str, epoch: u64) -> Result<bool, HaError> {
    let updated = client.execute(
        "UPDATE per_lease SET expires_at = now() - interval '1 millisecond'
          WHERE cluster = $1 AND epoch = $2",
        &[&cluster, &to_i64(epoch)?],
    )?;
    Ok(updated == 1)
}

/// The lease as Postgres sees it (`None`: never taken).
pub fn status(client: &mut Client, cluster: &str) -> Result<Option<LeaseStatus>, HaError> {
    let row = client.query_opt(
        "SELECT holder, epoch, expires_at < now() FROM per_lease WHERE cluster = $1",
        &[&cluster],
    )?;
    row.map(|row| {
        Ok(LeaseStatus {
            holder: row.get(0),
            epoch: to_u64(row.get(1))?,
            expired: row.get(2),
        })
    })
    .transpose()
}
