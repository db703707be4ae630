//! `authtrail verify`: re-reads the log, recomputes each partition's chain and checks it
//! against the signed checkpoints.
//!
//! Per partition: every checkpoint's signature (with the key its id names), its lists against
//! its signed head, and the chain from genesis through every checkpoint (a break means
//! checkpoints are missing); then each record of the log against the sealed digest at its
//! place. The first record that differs — changed, removed, moved or inserted — is named by
//! its offset; a log that ends before its sealed records is named too. Records after the last
//! checkpoint are reported as unsealed (the window before a seal), not as faults.

use super::chain::{check, digest, genesis, public_key_from_pem, Checkpoint, Fault, Hash, Record};
use crate::config::Config;
use anyhow::Context;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;

/// `authtrail verify`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VerifyArgs {
    /// The topic to read (default: `kafka.topic`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Check it against the checkpoints of this topic (default: the topic itself), e.g. a copy
    /// against the original's seals.
    #[arg(long)]
    pub sealed_as: Option<String>,
    /// Only these partitions (repeat; default: all).
    #[arg(long = "partition")]
    pub partitions: Vec<i32>,
    /// First offset to check, in every partition checked.
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Offset to stop before, in every partition checked.
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// First broker time to check (RFC 3339), by the broker's offsets for times.
    #[arg(long, conflicts_with = "from_offset")]
    pub since: Option<DateTime<Utc>>,
    /// Broker time to stop before (RFC 3339).
    #[arg(long, conflicts_with = "to_offset")]
    pub until: Option<DateTime<Utc>>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One fault found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The record at `offset` is not the one sealed there (`sealed_offset`): a byte changed,
    /// a record removed, moved or inserted. Later records of the partition are not compared.
    RecordDiffers {
        partition: i32,
        offset: i64,
        sealed_offset: i64,
    },
    /// The log ends before the sealed record at `offset` (records removed at the end).
    RecordsMissing { partition: i32, offset: i64 },
    /// A checkpoint whose signature does not verify, whose key is unknown, or whose lists do
    /// not lead to its signed head. Its records are not compared.
    CheckpointForged {
        partition: i32,
        first_offset: i64,
        last_offset: i64,
        reason: String,
    },
    /// `count` records from `offset` on are older than a seal takes (`seal.every_secs` and five
    /// minutes) yet no checkpoint covers them: the sealer stopped, or its newest checkpoints
    /// were removed.
    UnsealedRecords {
        partition: i32,
        offset: i64,
        count: u64,
    },
    /// A checkpoint without a signature. Its records are not compared.
    CheckpointUnsigned {
        partition: i32,
        first_offset: i64,
        last_offset: i64,
    },
    /// The chain breaks: checkpoints after `after_offset` and before `before_offset` are
    /// missing. The records between are not compared.
    CheckpointsMissing {
        partition: i32,
        after_offset: i64,
        before_offset: i64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::RecordDiffers { partition, offset, sealed_offset } if offset == sealed_offset => write!(f, "partition {partition} offset {offset}: the record differs from the sealed one"),
            Problem::RecordDiffers { partition, offset, sealed_offset } => write!(f, "partition {partition} offset {offset}: the record is not the sealed one (expected the record sealed at offset {sealed_offset})"),
            Problem::RecordsMissing { partition, offset } => write!(f, "partition {partition}: the log ends before the sealed record at offset {offset}"),
            Problem::CheckpointForged { partition, first_offset, last_offset, reason } => write!(f, "partition {partition}: checkpoint of offsets {first_offset}..={last_offset} is forged: {reason}"),
            Problem::UnsealedRecords { partition, offset, count } => write!(f, "partition {partition}: {count} records from offset {offset} on are older than a seal takes but not sealed"),
            Problem::CheckpointUnsigned { partition, first_offset, last_offset } => write!(f, "partition {partition}: checkpoint of offsets {first_offset}..={last_offset} is unsigned"),
            Problem::CheckpointsMissing { partition, after_offset, before_offset } => write!(f, "partition {partition}: checkpoints missing between offsets {after_offset} and {before_offset}"),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub problems: Vec<Problem>,
    /// Records that matched their sealed digest.
    pub verified: u64,
    /// Records after the last checkpoint.
    pub unsealed: u64,
    /// Checkpoints whose signature verified.
    pub checkpoints: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the checkpoints say a partition holds.
enum Expect {
    Record(i64, Hash),
    /// Offsets whose records cannot be checked (their checkpoint is bad or missing).
    Hole(i64, i64),
}

/// Checks a partition's checkpoints (sorted by first offset) and lists what its log must hold.
/// `stored_head`: where `seal_heads` says the chain ends, to notice missing last checkpoints.
fn plan(
    sealed_as: &str,
    partition: i32,
    checkpoints: &[Checkpoint],
    stored_head: Option<(i64, Hash)>,
    key: &impl Fn(&str) -> Option<VerifyingKey>,
    report: &mut Report,
) -> (Vec<Expect>, i64) {
    let mut expect = Vec::new();
    let mut prev_head = genesis(sealed_as, partition);
    let mut prev_last = -1i64;
    let mut resync = false;
    for c in checkpoints {
        let fault = if c.topic != sealed_as || c.partition != partition {
            Some(Fault::BadSignature)
        } else {
            check(c, key).err()
        };
        if let Some(fault) = fault {
            report.problems.push(match fault {
                Fault::Unsigned => Problem::CheckpointUnsigned {
                    partition,
                    first_offset: c.first_offset,
                    last_offset: c.last_offset,
                },
                other => Problem::CheckpointForged {
                    partition,
                    first_offset: c.first_offset,
                    last_offset: c.last_offset,
                    reason: match other {
                        Fault::UnknownKey(k) => format!("unknown key id {k:?}"),
                        Fault::BadSignature => "the signature does not verify".into(),
                        _ => "its records do not lead to its signed head".into(),
                    },
                },
            });
            expect.push(Expect::Hole(c.first_offset, c.last_offset));
            prev_last = prev_last.max(c.last_offset);
            resync = true;
            continue;
        }
        report.checkpoints += 1;
        if !resync && (c.prev_head != prev_head || c.first_offset <= prev_last) {
            report.problems.push(Problem::CheckpointsMissing {
                partition,
                after_offset: prev_last,
                before_offset: c.first_offset,
            });
            expect.push(Expect::Hole(prev_last + 1, c.first_offset - 1));
        }
        resync = false;
        expect.extend(
            c.offsets
                .iter()
                .zip(&c.digests)
                .map(|(o, d)| Expect::Record(*o, *d)),
        );
        prev_head = c.head;
        prev_last = c.last_offset;
    }
    if let Some((last, head)) = stored_head {
        if last > prev_last && head != prev_head {
            report.problems.push(Problem::CheckpointsMissing {
                partition,
                after_offset: prev_last,
                before_offset: last + 1,
            });
            expect.push(Expect::Hole(prev_last + 1, last));
            prev_last = last;
        }
    }
    (expect, prev_last)
}

/// One record read: offset, digest, broker timestamp (ms).
type Read = (i64, Hash, i64);

/// Compares the log's records (in order, within the range) with what the checkpoints expect in
/// that range. Stops at the first record that differs. Unsealed records with a timestamp before
/// `stale_before` (ms) are a problem.
fn compare(
    partition: i32,
    expect: &[Expect],
    last_sealed: i64,
    log: &[Read],
    stale_before: i64,
    report: &mut Report,
) {
    let mut i = 0;
    let mut stale: Option<(i64, u64)> = None;
    for &(offset, d, ts) in log {
        while let Some(Expect::Hole(_, b)) = expect.get(i) {
            if offset > *b {
                i += 1;
            } else {
                break;
            }
        }
        match expect.get(i) {
            Some(Expect::Hole(a, _)) if offset >= *a => continue,
            Some(Expect::Hole(a, _)) => {
                report.problems.push(Problem::RecordDiffers {
                    partition,
                    offset,
                    sealed_offset: *a,
                });
                return;
            }
            // The log has no record where one was sealed: removed from the log itself.
            Some(Expect::Record(o, _)) if offset > *o => {
                report.problems.push(Problem::RecordsMissing {
                    partition,
                    offset: *o,
                });
                return;
            }
            Some(Expect::Record(o, h)) => {
                if offset == *o && d == *h {
                    report.verified += 1;
                    i += 1;
                } else {
                    report.problems.push(Problem::RecordDiffers {
                        partition,
                        offset,
                        sealed_offset: *o,
                    });
                    return;
                }
            }
            None if offset > last_sealed => {
                report.unsealed += 1;
                if ts >= 0 && ts < stale_before {
                    let s = stale.get_or_insert((offset, 0));
                    s.1 += 1;
                }
            }
            None => {
                report.problems.push(Problem::RecordDiffers {
                    partition,
                    offset,
                    sealed_offset: last_sealed,
                });
                return;
            }
        }
    }
    if let Some(o) = expect[i.min(expect.len())..].iter().find_map(|e| match e {
        Expect::Record(o, _) => Some(*o),
        Expect::Hole(..) => None,
    }) {
        report.problems.push(Problem::RecordsMissing {
            partition,
            offset: o,
        });
    }
    if let Some((offset, count)) = stale {
        report.problems.push(Problem::UnsealedRecords {
            partition,
            offset,
            count,
        });
    }
}

/// The verifying keys: the signing key's public half and `seal.public_keys`.
fn keys(config: &Config) -> anyhow::Result<BTreeMap<String, VerifyingKey>> {
    let mut keys = BTreeMap::new();
    if config.seal.signing_key.is_some() {
        let k = super::worker::signing_key(config)?;
        keys.insert(k.id.clone(), k.public());
    }
    for (id, path) in &config.seal.public_keys {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("seal.public_keys.{id}: {}", path.display()))?;
        keys.insert(id.clone(), public_key_from_pem(&pem)?);
    }
    Ok(keys)
}

/// Verifies per `args` (see the module documentation).
pub async fn verify(config: &Config, pool: &PgPool, args: &VerifyArgs) -> anyhow::Result<Report> {
    let keys = keys(config)?;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| config.kafka.topic.clone());
    let sealed_as = args.sealed_as.clone().unwrap_or_else(|| topic.clone());
    let kafka = crate::config::KafkaConfig {
        topic: topic.clone(),
        ..config.kafka.clone()
    };
    let count = crate::kafka::topic_partitions(&kafka)
        .await?
        .with_context(|| format!("topic {topic} does not exist"))?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        // Every partition of the topic, and every partition that was sealed (a topic made
        // again with fewer partitions lost the others).
        let sealed: Vec<i32> =
            sqlx::query_scalar("SELECT partition FROM seal_heads WHERE topic = $1")
                .bind(&sealed_as)
                .fetch_all(pool)
                .await?;
        let mut all: Vec<i32> = (0..count).chain(sealed).collect();
        all.sort_unstable();
        all.dedup();
        all
    } else {
        args.partitions.clone()
    };
    let mut report = Report::default();
    let bar = progress_bar();
    let mut plans = Vec::new();
    for &p in &partitions {
        let bodies: Vec<serde_json::Value> = sqlx::query_scalar(
            "SELECT body FROM seal_checkpoints WHERE topic = $1 AND partition = $2
             ORDER BY first_offset",
        )
        .bind(&sealed_as)
        .bind(p)
        .fetch_all(pool)
        .await?;
        let mut checkpoints = Vec::with_capacity(bodies.len());
        for b in bodies {
            checkpoints
                .push(serde_json::from_value::<Checkpoint>(b).context("a stored checkpoint")?);
        }
        let stored: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT last_offset, head FROM seal_heads WHERE topic = $1 AND partition = $2",
        )
        .bind(&sealed_as)
        .bind(p)
        .fetch_optional(pool)
        .await?;
        let stored = stored.and_then(|(l, h)| Some((l, Hash::try_from(h).ok()?)));
        let (expect, last_sealed) = plan(
            &sealed_as,
            p,
            &checkpoints,
            stored,
            &|id: &str| keys.get(id).copied(),
            &mut report,
        );
        plans.push((p, expect, last_sealed));
    }
    let ranges = ranges(&kafka, &partitions, count, args).await?;
    bar.set_length(
        ranges
            .values()
            .map(|r| (r.read_to - r.read_from).max(0) as u64)
            .sum(),
    );
    // Unsealed records older than a seal takes (and a margin) mean missing seals.
    let stale_before =
        chrono::Utc::now().timestamp_millis() - (config.seal.every_secs as i64 + 300) * 1000;
    for (p, expect, last_sealed) in plans {
        let r = ranges[&p];
        let log = read(&kafka, p, r.read_from, r.read_to, &bar).await?;
        // What was asked for, not what the log still holds: sealed records the log lost are
        // found missing.
        let in_range: Vec<Expect> = expect
            .into_iter()
            .filter_map(|e| match e {
                Expect::Record(o, _) if o < r.from || o >= r.to => None,
                Expect::Hole(a, b) if b < r.from || a >= r.to => None,
                other => Some(other),
            })
            .collect();
        compare(p, &in_range, last_sealed, &log, stale_before, &mut report);
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Per partition: the offsets asked for (`[from, to)`, unbounded by default) and the part of
/// them the log holds (`[read_from, read_to)`).
#[derive(Debug, Clone, Copy)]
struct Range {
    from: i64,
    to: i64,
    read_from: i64,
    read_to: i64,
}

async fn ranges(
    kafka: &crate::config::KafkaConfig,
    partitions: &[i32],
    count: i32,
    args: &VerifyArgs,
) -> anyhow::Result<BTreeMap<i32, Range>> {
    let kafka = kafka.clone();
    let partitions = partitions.to_vec();
    let args = args.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = reader_config(&kafka).create()?;
        let existing: Vec<i32> = partitions.iter().copied().filter(|p| *p < count).collect();
        let at = |t: DateTime<Utc>| -> anyhow::Result<BTreeMap<i32, i64>> {
            let mut tpl = TopicPartitionList::new();
            for &p in &existing {
                tpl.add_partition_offset(&kafka.topic, p, Offset::Offset(t.timestamp_millis()))?;
            }
            let found = c.offsets_for_times(tpl, Duration::from_secs(10))?;
            Ok(found
                .elements()
                .iter()
                .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
                .collect())
        };
        let since = args.since.map(at).transpose()?;
        let until = args.until.map(at).transpose()?;
        let mut out = BTreeMap::new();
        for &p in &partitions {
            let (low, high) = if p < count {
                c.fetch_watermarks(&kafka.topic, p, Duration::from_secs(10))?
            } else {
                (0, 0)
            };
            // A time past the end has no offset (-1): the end.
            let pick = |m: &Option<BTreeMap<i32, i64>>| {
                m.as_ref()
                    .and_then(|m| m.get(&p).copied())
                    .map(|o| if o < 0 { high } else { o })
            };
            let from = args.from_offset.or(pick(&since)).unwrap_or(i64::MIN);
            let to = args.to_offset.or(pick(&until)).unwrap_or(i64::MAX);
            out.insert(
                p,
                Range {
                    from,
                    to,
                    read_from: from.max(low),
                    read_to: to.min(high),
                },
            );
        }
        Ok(out)
    })
    .await?
}

fn reader_config(kafka: &crate::config::KafkaConfig) -> rdkafka::ClientConfig {
    let mut c = crate::kafka::admin_config(kafka);
    c.set(
        "group.id",
        format!("authtrail-verify-{}", uuid::Uuid::new_v4().simple()),
    )
    .set("enable.auto.commit", "false")
    .set("enable.partition.eof", "true")
    .set("isolation.level", "read_committed");
    c
}

/// The digests of partition `p`'s records in `[from, to)`.
async fn read(
    kafka: &crate::config::KafkaConfig,
    p: i32,
    from: i64,
    to: i64,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Read>> {
    if from >= to {
        return Ok(Vec::new());
    }
    let kafka = kafka.clone();
    let bar = bar.clone();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = reader_config(&kafka).create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&kafka.topic, p, Offset::Offset(from))?;
        c.assign(&tpl)?;
        let mut out = Vec::new();
        loop {
            match c.poll(Duration::from_secs(10)) {
                Some(Ok(m)) => {
                    if m.offset() >= to {
                        break;
                    }
                    let timestamp = m.timestamp().to_millis().unwrap_or(-1);
                    out.push((
                        m.offset(),
                        digest(&Record {
                            offset: m.offset(),
                            timestamp,
                            key: m.key(),
                            value: m.payload(),
                        }),
                        timestamp,
                    ));
                    bar.inc(1);
                    if m.offset() + 1 >= to {
                        break;
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(e.into()),
                None => anyhow::bail!("partition {p}: no answer from the broker within 10 s"),
            }
        }
        Ok(out)
    })
    .await?
}

fn progress_bar() -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(0);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verify [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::chain::{link, SealKey};
    use ed25519_dalek::SigningKey;

    fn rec(o: i64, v: &str) -> Read {
        (
            o,
            digest(&Record {
                offset: o,
                timestamp: 1,
                key: Some(b"k"),
                value: Some(v.as_bytes()),
            }),
            1,
        )
    }

    fn sealed(log: &[Read], every: usize, key: &SealKey) -> Vec<Checkpoint> {
        let mut head = genesis("t", 0);
        log.chunks(every)
            .map(|chunk| {
                let prev = head;
                head = chunk.iter().fold(head, |h, (_, d, _)| link(&h, d));
                let mut c = Checkpoint {
                    topic: "t".into(),
                    partition: 0,
                    first_offset: chunk[0].0,
                    last_offset: chunk[chunk.len() - 1].0,
                    offsets: chunk.iter().map(|r| r.0).collect(),
                    digests: chunk.iter().map(|r| r.1).collect(),
                    prev_head: prev,
                    head,
                    key_id: String::new(),
                    signature: vec![],
                    sealed_at_ms: 0,
                };
                key.sign(&mut c);
                c
            })
            .collect()
    }

    fn run(checkpoints: &[Checkpoint], log: &[Read], key: &SealKey) -> Report {
        let public = key.public();
        let mut r = Report::default();
        let (expect, last) = plan("t", 0, checkpoints, None, &|_: &str| Some(public), &mut r);
        compare(0, &expect, last, log, i64::MIN, &mut r);
        r
    }

    #[test]
    fn each_tampering_is_named_at_its_offset() {
        let key = SealKey::new("k1", SigningKey::from_bytes(&[7; 32]));
        let log: Vec<Read> = (0..50).map(|i| rec(i, &format!("v{i}"))).collect();
        let seals = sealed(&log[..40], 10, &key);
        let clean = run(&seals, &log, &key);
        assert!(clean.ok(), "{:?}", clean.problems);
        assert_eq!(
            (clean.verified, clean.unsealed, clean.checkpoints),
            (40, 10, 4)
        );

        let first = |r: Report| r.problems.first().cloned();
        let differs = |o| {
            Some(Problem::RecordDiffers {
                partition: 0,
                offset: o,
                sealed_offset: o,
            })
        };
        // A changed record.
        let mut changed = log.clone();
        changed[23] = rec(23, "v23!");
        assert_eq!(first(run(&seals, &changed, &key)), differs(23));
        // A removed record: the copy's offsets close up.
        let removed: Vec<_> = (0..49)
            .map(|i| rec(i, &format!("v{}", if i < 17 { i } else { i + 1 })))
            .collect();
        assert_eq!(first(run(&seals, &removed, &key)), differs(17));
        // Two records swapped.
        let swapped: Vec<_> = (0..50)
            .map(|i| {
                rec(
                    i,
                    &format!(
                        "v{}",
                        match i {
                            30 => 31,
                            31 => 30,
                            i => i,
                        }
                    ),
                )
            })
            .collect();
        assert_eq!(first(run(&seals, &swapped, &key)), differs(30));
        // A record injected.
        let injected: Vec<_> = (0..51)
            .map(|i| {
                if i == 5 {
                    rec(5, "evil")
                } else {
                    rec(i, &format!("v{}", if i < 5 { i } else { i - 1 }))
                }
            })
            .collect();
        assert_eq!(first(run(&seals, &injected, &key)), differs(5));
        // The head cut off (the log starts later than the seals).
        assert_eq!(
            first(run(&seals, &log[5..], &key)),
            Some(Problem::RecordsMissing {
                partition: 0,
                offset: 0
            })
        );
        // Unsealed records older than a seal takes.
        let mut r = Report::default();
        let public = key.public();
        let (expect, last) = plan("t", 0, &seals, None, &|_: &str| Some(public), &mut r);
        compare(0, &expect, last, &log, i64::MAX, &mut r);
        assert_eq!(
            r.problems,
            vec![Problem::UnsealedRecords {
                partition: 0,
                offset: 40,
                count: 10
            }]
        );
        // The tail cut off.
        assert_eq!(
            first(run(&seals, &log[..33], &key)),
            Some(Problem::RecordsMissing {
                partition: 0,
                offset: 33
            })
        );
    }

    #[test]
    fn forged_unsigned_and_missing_checkpoints_are_reported() {
        let key = SealKey::new("k1", SigningKey::from_bytes(&[7; 32]));
        let log: Vec<Read> = (0..40).map(|i| rec(i, &format!("v{i}"))).collect();
        let seals = sealed(&log, 10, &key);
        let mut forged = seals.clone();
        forged[1].head[3] ^= 0x40;
        let r = run(&forged, &log, &key);
        assert!(
            matches!(
                r.problems[..],
                [Problem::CheckpointForged {
                    first_offset: 10,
                    ..
                }]
            ),
            "{:?}",
            r.problems
        );
        assert_eq!(r.verified, 30, "the others still verify");
        let mut unsigned = seals.clone();
        unsigned[2].signature.clear();
        assert!(matches!(
            run(&unsigned, &log, &key).problems[..],
            [Problem::CheckpointUnsigned {
                first_offset: 20,
                ..
            }]
        ));
        let mut missing = seals.clone();
        missing.remove(1);
        assert_eq!(
            run(&missing, &log, &key).problems,
            vec![Problem::CheckpointsMissing {
                partition: 0,
                after_offset: 9,
                before_offset: 20
            }]
        );
        // Signed by a key the verifier does not hold.
        let other = SealKey::new("k1", SigningKey::from_bytes(&[8; 32]));
        assert!(matches!(
            run(&seals, &log, &other).problems[0],
            Problem::CheckpointForged { .. }
        ));
    }
}
