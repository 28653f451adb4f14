//! The shared log: one row per commit group in `per_log`. `frames` is one format byte, then
//! - `0` (plaintext): the group's WAL records length-prefixed (`[len u32 LE][record]...`, the
//!   same record bytes as in the local WAL frames);
//! - `1` (sealed, with `PER_ENCRYPTION_KEY_FILE`): that same byte string sealed with the key
//!   (`EncryptionKey::seal`, associated data `per/log/<cluster>` || first seq u64 LE), so a group
//!   cannot be moved to another cluster or seq unnoticed.
//!
//! The fenced append locks the lease row (`FOR UPDATE`), checks that this node holds it at this
//! epoch and that it has not expired, checks the group continues the log, inserts, notifies, and
//! commits — all in one transaction. While the row is locked no other node can take the lease, so
//! an append either lands before a takeover (and the new primary reads it while catching up) or
//! fails the check: two primaries can never both append.

use super::pg::{channel, connect, to_i64, to_u64};
use super::{HaConfig, HaError};
use crate::sequencer::{GroupReplicator, ReplicationError};
use per_store::EncryptionKey;
use postgres::Client;

const FORMAT_PLAIN: u8 = 0;
const FORMAT_SEALED: u8 = 1;

fn associated_data(cluster: &str, first_seq: u64) -> Vec<u8> {
    let mut ad = format!("per/log/{cluster}").into_bytes();
    ad.extend_from_slice(&first_seq.to_le_bytes());
    ad
}

/// The `frames` value of a group.
pub fn seal_group(
    key: Option<&EncryptionKey>,
    cluster: &str,
    first_seq: u64,
    records: &[&[u8]],
) -> Vec<u8> {
    let encoded = encode_records(records);
    match key {
        None => {
            let mut out = Vec::with_capacity(encoded.len() + 1);
            out.push(FORMAT_PLAIN);
            out.extend_from_slice(&encoded);
            out
        }
        Some(key) => {
            let sealed = key.seal(&associated_data(cluster, first_seq), &encoded);
            let mut out = Vec::with_capacity(sealed.len() + 1);
            out.push(FORMAT_SEALED);
            out.extend_from_slice(&sealed);
            out
        }
    }
}

/// The records of a group's `frames` value.
pub fn open_group(
    key: Option<&EncryptionKey>,
    cluster: &str,
    first_seq: u64,
    frames: &[u8],
) -> Result<Vec<Vec<u8>>, HaError> {
    match (frames.split_first(), key) {
        (Some((&FORMAT_PLAIN, body)), _) => decode_records(body),
        (Some((&FORMAT_SEALED, body)), Some(key)) => {
            let plain = key
                .open(&associated_data(cluster, first_seq), body)
                .map_err(|e| {
                    HaError::Diverged(format!(
                        "shared-log group at seq {first_seq} does not open with this node's key: {e}"
                    ))
                })?;
            decode_records(&plain)
        }
        (Some((&FORMAT_SEALED, _)), None) => Err(HaError::Diverged(format!(
            "shared-log group at seq {first_seq} is encrypted: configure the cluster's PER_ENCRYPTION_KEY_FILE"
        ))),
        _ => Err(HaError::Diverged(format!(
            "shared-log group at seq {first_seq} has an unknown format"
        ))),
    }
}

/// One commit group read back from the shared log.
#[derive(Debug, Clone)]
pub struct LogGroup {
    /// First seq of the group.
    pub first_seq: u64,
    /// Last seq (its `GroupEnd`).
    pub last_seq: u64,
    /// Epoch of the writer.
    pub epoch: u64,
    /// The encoded records, in order.
    pub records: Vec<Vec<u8>>,
    /// Seconds since it was committed (Postgres's clock).
    pub age_secs: f64,
}

/// Length-prefixes records into one `bytea`.
pub fn encode_records(records: &[&[u8]]) -> Vec<u8> {
    let total = records.iter().map(|r| r.len() + 4).sum();
    let mut out = Vec::with_capacity(total);
    for record in records {
        out.extend_from_slice(&(record.len() as u32).to_le_bytes());
        out.extend_from_slice(record);
    }
    out
}

/// Splits a `frames` value back into records.
pub fn decode_records(bytes: &[u8]) -> Result<Vec<Vec<u8>>, HaError> {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(HaError::Diverged(
                "a shared-log group is truncated (length prefix)".to_owned(),
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len == 0 || len > tail.len() {
            return Err(HaError::Diverged(
                "a shared-log group is truncated (record)".to_owned(),
            ));
        }
        records.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(records)
}

/// The last seq in the shared log (0 when empty).
pub fn log_end(client: &mut Client, cluster: &str) -> Result<u64, HaError> {
    let row = client.query_opt(
        "SELECT last_seq FROM per_log WHERE cluster = $1 ORDER BY first_seq DESC LIMIT 1",
        &[&cluster],
    )?;
    row.map_or(Ok(0), |row| to_u64(row.get(0)))
}

/// Groups with `first_seq > after`, in order, at most `limit`.
pub fn fetch_after(
    client: &mut Client,
    key: Option<&EncryptionKey>,
    cluster: &str,
    after: u64,
    limit: i64,
) -> Result<Vec<LogGroup>, HaError> {
    fetch(
        client,
        "SELECT first_seq, last_seq, epoch, frames,
                extract(epoch FROM (now() - committed_at))::float8
           FROM per_log WHERE cluster = $1 AND first_seq > $2
          ORDER BY first_seq LIMIT $3",
        key,
        cluster,
        after,
        limit,
    )
}

/// Groups with `first_seq >= from`, in order, at most `limit`.
pub fn fetch_from(
    client: &mut Client,
    key: Option<&EncryptionKey>,
    cluster: &str,
    from: u64,
    limit: i64,
) -> Result<Vec<LogGroup>, HaError> {
    fetch(
        client,
        "SELECT first_seq, last_seq, epoch, frames,
                extract(epoch FROM (now() - committed_at))::float8
           FROM per_log WHERE cluster = $1 AND first_seq >= $2
          ORDER BY first_seq LIMIT $3",
        key,
        cluster,
        from,
        limit,
    )
}

fn fetch(
    client: &mut Client,
    sql: &str,
    key: Option<&EncryptionKey>,
    cluster: &str,
    seq: u64,
    limit: i64,
) -> Result<Vec<LogGroup>, HaError> {
    let rows = client.query(sql, &[&cluster, &to_i64(seq)?, &limit])?;
    rows.iter()
        .map(|row| {
            let frames: Vec<u8> = row.get(3);
            let first_seq = to_u64(row.get(0))?;
            Ok(LogGroup {
                first_seq,
                last_seq: to_u64(row.get(1))?,
                epoch: to_u64(row.get(2))?,
                records: open_group(key, cluster, first_seq, &frames)?,
                age_secs: row.get::<_, Option<f64>>(4).unwrap_or(0.0),
            })
        })
        .collect()
}

/// The primary's fenced appender (the sequencer's [`GroupReplicator`]).
pub struct PgReplicator {
    config: HaConfig,
    client: Client,
    channel: String,
}

impl PgReplicator {
    /// Connects (its own session, used only by the sequencer thread).
    pub fn connect(config: &HaConfig) -> Result<PgReplicator, HaError> {
        Ok(PgReplicator {
            client: connect(config)?,
            channel: channel(&config.cluster),
            config: config.clone(),
        })
    }

    fn try_append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
        records: &[&[u8]],
    ) -> Result<Result<(), String>, HaError> {
        let cluster = self.config.cluster.as_str();
        let mut tx = self.client.transaction()?;
        let lease = tx.query_opt(
            "SELECT holder, epoch, expires_at > now() FROM per_lease WHERE cluster = $1 FOR UPDATE",
            &[&cluster],
        )?;
        let Some(lease) = lease else {
            return Ok(Err("no lease row for the cluster".to_owned()));
        };
        let holder: String = lease.get(0);
        let lease_epoch: i64 = lease.get(1);
        let unexpired: bool = lease.get(2);
        if holder != self.config.node_id || lease_epoch != to_i64(epoch)? || !unexpired {
            return Ok(Err(format!(
                "the lease is held by {holder} at epoch {lease_epoch} (unexpired: {unexpired}); this node is {} at epoch {epoch}",
                self.config.node_id
            )));
        }
        let end = tx
            .query_opt(
                "SELECT last_seq FROM per_log WHERE cluster = $1 ORDER BY first_seq DESC LIMIT 1",
                &[&cluster],
            )?
            .map_or(Ok(0), |row| to_u64(row.get(0)))?;
        if end + 1 != first_seq {
            return Ok(Err(format!(
                "the shared log ends at seq {end} but this group starts at {first_seq}"
            )));
        }
        tx.execute(
            "INSERT INTO per_log (cluster, first_seq, last_seq, epoch, frames)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &cluster,
                &to_i64(first_seq)?,
                &to_i64(last_seq)?,
                &to_i64(epoch)?,
                &seal_group(self.config.key.as_deref(), cluster, first_seq, records),
            ],
        )?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.channel, &last_seq.to_string()],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }
}

impl GroupReplicator for PgReplicator {
    fn append(
        &mut self,
        first_seq: u64,
        last_seq: u64,
        epoch: u64,
        records: &[&[u8]],
    ) -> Result<(), ReplicationError> {
        match self.try_append(first_seq, last_seq, epoch, records) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(ReplicationError::Fenced(why)),
            Err(error) => Err(ReplicationError::Unavailable(error.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_refused() {
        let records: Vec<&[u8]> = vec![b"one", b"second record", b"x"];
        let encoded = encode_records(&records);
        let decoded = decode_records(&encoded).expect("decode");
        assert_eq!(
            decoded,
            records.iter().map(|r| r.to_vec()).collect::<Vec<_>>()
        );
        assert!(decode_records(&encoded[..encoded.len() - 1]).is_err());
        assert!(decode_records(&[0, 0, 0, 0]).is_err());
        assert!(decode_records(&[]).expect("empty").is_empty());
    }

    #[test]
    fn sealed_groups_open_only_with_the_key_at_their_place() {
        let key = EncryptionKey::from_bytes([7; 32]);
        let other = EncryptionKey::from_bytes([8; 32]);
        let records: Vec<&[u8]> = vec![b"alpha", b"beta"];
        let plain = seal_group(None, "c", 5, &records);
        assert_eq!(plain[0], FORMAT_PLAIN);
        assert_eq!(open_group(None, "c", 5, &plain).expect("plain").len(), 2);
        let sealed = seal_group(Some(&key), "c", 5, &records);
        assert_eq!(sealed[0], FORMAT_SEALED);
        assert!(!sealed.windows(5).any(|w| w == b"alpha"), "no plaintext");
        let opened = open_group(Some(&key), "c", 5, &sealed).expect("open");
        assert_eq!(opened, vec![b"alpha".to_vec(), b"beta".to_vec()]);
        assert!(open_group(Some(&other), "c", 5, &sealed).is_err());
        assert!(
            open_group(Some(&key), "c", 6, &sealed).is_err(),
            "moved to another seq"
        );
        assert!(
            open_group(Some(&key), "d", 5, &sealed).is_err(),
            "moved to another cluster"
        );
        assert!(open_group(None, "c", 5, &sealed).is_err());
        assert!(open_group(None, "c", 5, &[9]).is_err());
    }
}
