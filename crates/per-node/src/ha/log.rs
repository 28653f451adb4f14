//! The shared log: one row per commit group in `per_log`. `frames` is one format byte, then
//! - `0` (plaintext, only without a key: `PER_HA_INSECURE_LOG=1`): the group's WAL records
//!   length-prefixed (`[len u32 LE][record]...`, the same record bytes as in the local WAL frames);
//! - `2` (sealed, with `PER_ENCRYPTION_KEY_FILE`): that same byte string sealed with the key
//!   (`EncryptionKey::seal`, XChaCha20-Poly1305), associated data `per/log/v2` || cluster || epoch
//!   || first seq || last seq, so a row moved to another cluster, epoch or seq range does not
//!   open;
//! - `1` (sealed by earlier versions, associated data `per/log/<cluster>` || first seq): still
//!   read, bound to cluster and first seq only.
//!
//! With a key, a plaintext group is refused ([`HaError::Unauthenticated`]), never applied: anyone
//! able to write `per_log` could otherwise insert effects that spend any leaf.
//!
//! The fenced append locks the lease row (`FOR UPDATE`), checks that this node holds it at this
//! epoch and that it has not expired, checks the group continues the log, inserts, notifies, and
//! commits — all in one transaction. While the row is locked no other node can take the lease, so
//! an append either lands before a takeover (and the new primary reads it while catching up) or
//! fails the check: two primaries can never both append.

use super::config::HaConfig;
use super::error::HaError;
use super::pg::{channel, connect, to_i64, to_u64};
use crate::sequencer::{GroupReplicator, ReplicationError};
use per_store::EncryptionKey;
use postgres::{Client, GenericClient};

const FORMAT_PLAIN: u8 = 0;
const FORMAT_SEALED_V1: u8 = 1;
const FORMAT_SEALED: u8 = 2;

fn associated_data_v1(cluster: &str, first_seq: u64) -> Vec<u8> {
    let mut ad = format!("per/log/{cluster}").into_bytes();
    ad.extend_from_slice(&first_seq.to_le_bytes());
    ad
}

/// Binds a sealed group to its place: cluster (length-prefixed), epoch, first and last seq.
fn associated_data(cluster: &str, epoch: u64, first_seq: u64, last_seq: u64) -> Vec<u8> {
    let mut ad = b"per/log/v2".to_vec();
    ad.extend_from_slice(&(cluster.len() as u64).to_le_bytes());
    ad.extend_from_slice(cluster.as_bytes());
    ad.extend_from_slice(&epoch.to_le_bytes());
    ad.extend_from_slice(&first_seq.to_le_bytes());
    ad.extend_from_slice(&last_seq.to_le_bytes());
    ad
}

/// The `frames` value of a group written by `epoch` for seqs `first_seq..=last_seq`.
pub fn seal_group(
    key: Option<&EncryptionKey>,
    cluster: &str,
    epoch: u64,
    first_seq: u64,
    last_seq: u64,
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
            let sealed = key.seal(
                &associated_data(cluster, epoch, first_seq, last_seq),
                &encoded,
            );
            let mut out = Vec::with_capacity(sealed.len() + 1);
            out.push(FORMAT_SEALED);
            out.extend_from_slice(&sealed);
            out
        }
    }
}

/// The records of a group's `frames` value, read from the row at (`epoch`, `first_seq`,
/// `last_seq`). With a key only sealed groups that open at exactly that place are accepted.
pub fn open_group(
    key: Option<&EncryptionKey>,
    cluster: &str,
    epoch: u64,
    first_seq: u64,
    last_seq: u64,
    frames: &[u8],
) -> Result<Vec<Vec<u8>>, HaError> {
    let unauthenticated = |why: String| HaError::Unauthenticated {
        first_seq,
        last_seq,
        why,
    };
    match (frames.split_first(), key) {
        (Some((&FORMAT_PLAIN, body)), None) => decode_records(body),
        (Some((&FORMAT_PLAIN, _)), Some(_)) => Err(unauthenticated(
            "a plaintext group while this node has an encryption key: refused (only the key's holder may write the shared log)".to_owned(),
        )),
        (Some((&FORMAT_SEALED, body)), Some(key)) => {
            let plain = key
                .open(&associated_data(cluster, epoch, first_seq, last_seq), body)
                .map_err(|e| {
                    unauthenticated(format!(
                        "does not open with this node's key for cluster {cluster:?}, epoch {epoch}, seqs {first_seq}..={last_seq} (another key, or a row copied from another cluster, epoch or place): {e}"
                    ))
                })?;
            decode_records(&plain)
        }
        (Some((&FORMAT_SEALED_V1, body)), Some(key)) => {
            let plain = key
                .open(&associated_data_v1(cluster, first_seq), body)
                .map_err(|e| {
                    unauthenticated(format!(
                        "does not open with this node's key for cluster {cluster:?} at seq {first_seq}: {e}"
                    ))
                })?;
            decode_records(&plain)
        }
        (Some((&(FORMAT_SEALED | FORMAT_SEALED_V1), _)), None) => Err(HaError::Diverged(format!(
            "shared-log group at seq {first_seq} is encrypted: configure the cluster's PER_ENCRYPTION_KEY_FILE"
        ))),
        _ => Err(unauthenticated("an unknown format".to_owned())),
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
pub fn log_end(client: &mut impl GenericClient, cluster: &str) -> Result<u64, HaError> {
    let row = client.query_opt(
        "SELECT last_seq FROM per_log WHERE cluster = $1 ORDER BY first_seq DESC LIMIT 1",
        &[&cluster],
    )?;
    row.map_or(Ok(0), |row| to_u64(row.get(0)))
}

/// Groups with `first_seq > after`, in order, at most `limit`.
pub fn fetch_after(
    client: &mut impl GenericClient,
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
    client: &mut impl GenericClient,
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
    client: &mut impl GenericClient,
    sql: &str,
    key: Option<&EncryptionKey>,
    cluster: &str,
    seq: u64,
    limit: i64,
) -> Result<Vec<LogGroup>, HaError> {
    let rows = client.query(sql, &[&cluster, &to_i64(seq)?, &limit])?;
    let mut groups = Vec::with_capacity(rows.len());
    for row in &rows {
        let frames: Vec<u8> = row.get(3);
        let first_seq = to_u64(row.get(0))?;
        let last_seq = to_u64(row.get(1))?;
        let epoch = to_u64(row.get(2))?;
        let records = match open_group(key, cluster, epoch, first_seq, last_seq, &frames) {
            Ok(records) => records,
            // The good groups before a refused one are returned; the next read starts at it.
            Err(HaError::Unauthenticated { .. }) if !groups.is_empty() => break,
            Err(error) => return Err(error),
        };
        groups.push(LogGroup {
            first_seq,
            last_seq,
            epoch,
            records,
            age_secs: row.get::<_, Option<f64>>(4).unwrap_or(0.0),
        });
    }
    Ok(groups)
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
                &seal_group(
                    self.config.key.as_deref(),
                    cluster,
                    epoch,
                    first_seq,
                    last_seq,
                    records,
                ),
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
        let plain = seal_group(None, "c", 1, 5, 6, &records);
        assert_eq!(plain[0], FORMAT_PLAIN);
        assert_eq!(
            open_group(None, "c", 1, 5, 6, &plain).expect("plain").len(),
            2
        );
        assert!(
            matches!(
                open_group(Some(&key), "c", 1, 5, 6, &plain),
                Err(HaError::Unauthenticated { first_seq: 5, .. })
            ),
            "plaintext refused with a key"
        );
        let sealed = seal_group(Some(&key), "c", 1, 5, 6, &records);
        assert_eq!(sealed[0], FORMAT_SEALED);
        assert!(!sealed.windows(5).any(|w| w == b"alpha"), "no plaintext");
        let opened = open_group(Some(&key), "c", 1, 5, 6, &sealed).expect("open");
        assert_eq!(opened, vec![b"alpha".to_vec(), b"beta".to_vec()]);
        assert!(open_group(Some(&other), "c", 1, 5, 6, &sealed).is_err());
        for (cluster, epoch, first, last, what) in [
            ("c", 1, 6, 6, "moved to another first seq"),
            ("c", 1, 5, 7, "another last seq"),
            ("c", 2, 5, 6, "replayed at another epoch"),
            ("d", 1, 5, 6, "copied to another cluster"),
        ] {
            assert!(
                matches!(
                    open_group(Some(&key), cluster, epoch, first, last, &sealed),
                    Err(HaError::Unauthenticated { .. })
                ),
                "{what}"
            );
        }
        assert!(open_group(None, "c", 1, 5, 6, &sealed).is_err());
        assert!(open_group(None, "c", 1, 5, 6, &[9]).is_err());
    }
}
