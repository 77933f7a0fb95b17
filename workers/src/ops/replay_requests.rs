//! `replay requests`: reset a consumer group's offsets on the request topics to a start point,
//! then decide every message up to the current end through the same deciders as the workers,
//! committing the group's offsets after each decided batch. Decisions are idempotent (the
//! inbox), so the expected change is nothing; the command reports what actually changed.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;

use seatline_shared::config::{KafkaConfig, ReservationConfig};
use seatline_shared::kafka::{self, Topic};

use super::{Interrupt, Progress};
use crate::config::{ReplayRequestsArgs, RequestTopic};
use crate::consumer::BatchHandler;
use crate::requests::RequestHandler;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One partition's replay range: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub topic: String,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// Row counts that a replay should leave unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Counts {
    pub decided_requests: i64,
    pub reservations: i64,
    pub payments: i64,
    pub ledger_rows: i64,
    pub outbox_events: i64,
    pub balance_total: i64,
}

impl Counts {
    pub async fn read(pool: &PgPool) -> sqlx::Result<Self> {
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM processed_requests) AS decided_requests,
                    (SELECT count(*) FROM reservations) AS reservations,
                    (SELECT count(*) FROM payments) AS payments,
                    (SELECT count(*) FROM point_ledger) AS ledger_rows,
                    (SELECT count(*) FROM outbox) AS outbox_events,
                    (SELECT coalesce(sum(balance), 0)::bigint FROM users) AS balance_total",
        )
        .fetch_one(pool)
        .await
    }

    fn minus(self, before: Self) -> Self {
        Self {
            decided_requests: self.decided_requests - before.decided_requests,
            reservations: self.reservations - before.reservations,
            payments: self.payments - before.payments,
            ledger_rows: self.ledger_rows - before.ledger_rows,
            outbox_events: self.outbox_events - before.outbox_events,
            balance_total: self.balance_total - before.balance_total,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Counts::default() {
            return f.write_str("nothing");
        }
        write!(
            f,
            "decided requests {:+}, reservations {:+}, payments {:+}, ledger rows {:+}, outbox events {:+}, total balance {:+}",
            self.decided_requests, self.reservations, self.payments, self.ledger_rows, self.outbox_events, self.balance_total
        )
    }
}

/// What a replay did.
#[derive(Debug)]
pub struct RequestsReplayed {
    pub group: String,
    pub ranges: Vec<Range>,
    pub reprocessed: u64,
    /// After minus before; `None` when nothing was processed (dry run, reset only).
    pub changes: Option<Counts>,
    pub interrupted: bool,
}

pub struct Replay<'a> {
    pub pool: &'a PgPool,
    pub producer: &'a FutureProducer,
    pub kafka: &'a KafkaConfig,
    pub reservation: &'a ReservationConfig,
    pub batch_size: usize,
}

impl Replay<'_> {
    pub async fn run(
        &self,
        args: &ReplayRequestsArgs,
        interrupt: &Interrupt,
    ) -> anyhow::Result<RequestsReplayed> {
        let group = if args.fresh_group {
            format!("seatline-replay-{}", uuid::Uuid::new_v4().simple())
        } else {
            args.group
                .clone()
                .unwrap_or_else(|| self.kafka.worker_group.clone())
        };
        let topics: Vec<String> = match args.topic {
            RequestTopic::Reservation => vec![self.kafka.topic(Topic::ReservationRequests)],
            RequestTopic::Payment => vec![self.kafka.topic(Topic::PaymentRequests)],
            RequestTopic::All => vec![
                self.kafka.topic(Topic::ReservationRequests),
                self.kafka.topic(Topic::PaymentRequests),
            ],
        };
        let consumer: BaseConsumer = kafka::consumer_config(self.kafka, &group)
            .set("enable.auto.commit", "false")
            .create()?;
        let (consumer, ranges) = {
            let args_from_offset = args.from_offset;
            let args_from_time = args.from_time.map(|t| t.timestamp_millis());
            tokio::task::spawn_blocking(move || {
                let ranges = ranges(&consumer, &topics, args_from_offset, args_from_time);
                ranges.map(|r| (consumer, r))
            })
            .await??
        };
        let mut result = RequestsReplayed {
            group: group.clone(),
            ranges: ranges.clone(),
            reprocessed: 0,
            changes: None,
            interrupted: false,
        };
        if args.dry_run {
            return Ok(result);
        }
        // The reset. Kafka accepts it only while the group has no active member.
        let mut start = TopicPartitionList::new();
        for r in &ranges {
            start.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.start))?;
        }
        consumer.commit(&start, CommitMode::Sync).map_err(|err| {
            anyhow::anyhow!(
                "cannot reset the offsets of group {group}: {err}. Stop the workers (the group must have no \
                 active member) or use --fresh-group"
            )
        })?;
        if args.reset_only {
            return Ok(result);
        }

        let before = Counts::read(self.pool).await?;
        let handler = RequestHandler {
            pool: self.pool.clone(),
            producer: self.producer.clone(),
            kafka: self.kafka.clone(),
            reservation: self.reservation.clone(),
        };
        let mut pending: u64 = ranges.iter().map(|r| (r.end - r.start) as u64).sum();
        let ends: HashMap<(String, i32), i64> = ranges
            .iter()
            .map(|r| ((r.topic.clone(), r.partition), r.end))
            .collect();
        let mut to_read = TopicPartitionList::new();
        for r in ranges.iter().filter(|r| r.start < r.end) {
            to_read.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.start))?;
        }
        consumer.assign(&to_read)?;
        let mut progress = Progress::new("reprocessing requests", pending);
        let mut buffers: HashMap<(String, i32), Vec<OwnedMessage>> = HashMap::new();
        while pending > 0 && !interrupt.is_set() {
            let polled = consumer.poll(Duration::from_millis(200));
            let idle = polled.is_none();
            if let Some(message) = polled {
                let message = message?.detach();
                let key = (message.topic().to_owned(), message.partition());
                if message.offset() < ends[&key] {
                    buffers.entry(key).or_default().push(message);
                }
            }
            // Decide a partition's buffer when it is full, reached its end, or nothing new came.
            let ready: Vec<(String, i32)> = buffers
                .iter()
                .filter(|(key, batch)| {
                    !batch.is_empty()
                        && (idle
                            || batch.len() >= self.batch_size
                            || batch.last().is_some_and(|m| m.offset() + 1 >= ends[*key]))
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in ready {
                let batch = buffers.remove(&key).unwrap_or_default();
                handler.handle(&batch).await?;
                let next = batch.last().expect("non-empty").offset() + 1;
                let mut done = TopicPartitionList::new();
                done.add_partition_offset(&key.0, key.1, Offset::Offset(next))?;
                consumer.commit(&done, CommitMode::Sync)?;
                pending -= batch.len() as u64;
                result.reprocessed += batch.len() as u64;
                progress.advance(batch.len() as u64);
            }
        }
        progress.finish();
        result.interrupted = pending > 0;
        result.changes = Some(Counts::read(self.pool).await?.minus(before));
        Ok(result)
    }
}

/// Start and end of every partition of the topics.
fn ranges(
    consumer: &BaseConsumer,
    topics: &[String],
    from_offset: Option<i64>,
    from_time_ms: Option<i64>,
) -> anyhow::Result<Vec<Range>> {
    let mut ranges = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len() as i32)
            .unwrap_or(0);
        for partition in 0..partitions {
            let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
            let start = match (from_offset, from_time_ms) {
                (Some(offset), _) => offset.clamp(low, high),
                (None, Some(ms)) => {
                    let mut query = TopicPartitionList::new();
                    query.add_partition_offset(topic, partition, Offset::Offset(ms))?;
                    let found = consumer.offsets_for_times(query, TIMEOUT)?;
                    match found.find_partition(topic, partition).map(|e| e.offset()) {
                        Some(Offset::Offset(o)) => o.clamp(low, high),
                        _ => high,
                    }
                }
                (None, None) => low,
            };
            ranges.push(Range {
                topic: topic.clone(),
                partition,
                start,
                end: high,
            });
        }
    }
    Ok(ranges)
}
