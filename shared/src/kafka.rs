//! Kafka plumbing shared by the API and the workers: topic names, topic creation at start-up,
//! producer and consumer settings, and the headers every message carries.
//!
//! Request topics are keyed by seat (`{concertDateId}:{seatNo}`), so every operation on one seat
//! lands in one partition, in order. Event topics are keyed by the event's aggregate.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;

/// Every topic Seatline uses. Names are `{KAFKA_TOPIC_PREFIX}{suffix}`; code never spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Reservation requests from the API, keyed by seat.
    ReservationRequests,
    /// Payment requests from the API, keyed by the reserved seat.
    PaymentRequests,
    /// Reservation events from the outbox (`held`, `rejected`, `expired`, `confirmed`).
    ReservationEvents,
    /// Payment events from the outbox (`succeeded`, `failed`).
    PaymentEvents,
    /// Request messages the workers could not parse, with the error and original headers.
    DeadLetter,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::ReservationRequests,
        Topic::PaymentRequests,
        Topic::ReservationEvents,
        Topic::PaymentEvents,
        Topic::DeadLetter,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Topic::ReservationRequests => "reservation-requests",
            Topic::PaymentRequests => "payment-requests",
            Topic::ReservationEvents => "reservation-events",
            Topic::PaymentEvents => "payment-events",
            Topic::DeadLetter => "dead-letter",
        }
    }
}

/// Header names carried on request and event messages.
pub mod headers {
    /// The request id (API → workers) or the event id (outbox → consumers).
    pub const REQUEST_ID: &str = "seatline-request-id";
    /// W3C trace context of the HTTP request that caused the message.
    pub const TRACEPARENT: &str = "traceparent";
    /// The message type, e.g. `reservation.requested`.
    pub const MESSAGE_TYPE: &str = "seatline-type";
    /// Dead-letter metadata: why, and where the message came from.
    pub const DLQ_ERROR: &str = "seatline-dlq-error";
    pub const DLQ_TOPIC: &str = "seatline-dlq-topic";
    pub const DLQ_PARTITION: &str = "seatline-dlq-partition";
    pub const DLQ_OFFSET: &str = "seatline-dlq-offset";
}

/// Base client settings shared by every client.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &config.bootstrap_servers)
        // A quiet log when the broker is briefly away; readiness reports it.
        .set("log.connection.close", "false");
    cfg
}

/// An idempotent producer (acks=all, no duplicates from retries). Delivery is bounded by
/// `KAFKA_PRODUCE_TIMEOUT`, so a caller learns of an unreachable broker within that bound.
pub fn producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    let timeout_ms = config.produce_timeout.as_millis().max(1).to_string();
    client_config(config)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Up to 5 ms to gather a produce request across partitions. At 3,000/s, against 2 ms
        // (two alternated runs each): the broker 7.1/7.2 -> 6.4/6.1 CPU-s per 15 s, the
        // workers and PostgreSQL less too, and submit latency no worse, since the two cores
        // are less contended.
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", &timeout_ms)
        .set("request.timeout.ms", &timeout_ms)
        .create()
}

/// Consumer settings for at-least-once processing: offsets are stored by the application only
/// after the database transaction that decided the messages has committed, and committed by
/// librdkafka from that store (periodically and on revocation).
pub fn consumer_config(config: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut cfg = client_config(config);
    cfg.set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("max.poll.interval.ms", "300000")
        // The broker answers a fetch once 16 KiB are waiting or after 25 ms. With librdkafka's
        // defaults (answer at the first byte) a request worker fetched a few messages at a time
        // under load: at 3,000 requests/s this saved 1.5 CPU-s of the workers, 1 of the broker
        // and 1.5-2 of PostgreSQL (larger batches) per 15 s. An idle consumer fetches 40 times
        // a second; at 10 ms and 64 KiB, the test suite's many idle consumers overloaded the
        // local broker.
        .set("fetch.wait.max.ms", "25")
        .set("fetch.min.bytes", "16384");
    cfg
}

/// Creates every Seatline topic with the configured partitions, if missing. Safe to call from
/// every process at start-up.
pub async fn ensure_topics(config: &KafkaConfig, timeout: Duration) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(config).create()?;
    let names: Vec<String> = Topic::ALL.iter().map(|t| config.topic(*t)).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin.create_topics(&new_topics, &options).await?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = config.partitions, "created topic")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name} failed: {code}"),
        }
    }
    // Creation returns before every partition has a leader; until then produce and offset
    // look-ups fail with transient errors. Wait, within the same bound, for all of them.
    let deadline = std::time::Instant::now() + timeout;
    let probe: std::sync::Arc<BaseConsumer> = std::sync::Arc::new(client_config(config).create()?);
    loop {
        let (probe, names) = (probe.clone(), names.clone());
        // fetch_metadata blocks; keep it off the async workers.
        let ready = tokio::task::spawn_blocking(move || {
            names.iter().all(|name| partitions_led(&probe, name))
        })
        .await
        .unwrap_or(false);
        if ready {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("topics exist but not every partition has a leader after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// True when the topic is listed and every partition has a leader.
fn partitions_led(client: &BaseConsumer, topic: &str) -> bool {
    client
        .fetch_metadata(Some(topic), Duration::from_secs(2))
        .ok()
        .and_then(|m| {
            m.topics().iter().find(|t| t.name() == topic).map(|t| {
                t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0)
            })
        })
        .unwrap_or(false)
}

/// A group-less consumer assigned to every partition of `topics` at their current end, for
/// readers that only need what arrives from now on (long-poll wake-ups, load generators).
/// Returns once the assignment is in place, so everything produced afterwards is seen.
pub async fn consumer_at_end(
    config: &KafkaConfig,
    topics: &[String],
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = client_config(config)
        // librdkafka wants a group id even when no group is joined.
        .set("group.id", "seatline-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // These readers poll every 20 ms anyway; asking for 64 KiB lets the broker answer
        // with a batch under load instead of one message per fetch. The price: a lone event
        // at low load may be seen up to 20 ms later.
        .set("fetch.wait.max.ms", "20")
        .set("fetch.min.bytes", "65536")
        // librdkafka prefetches up to 64 MiB by default; a reader of the live end that falls
        // behind under load would hold that much in memory for messages it reads late anyway.
        .set("queued.max.messages.kbytes", "4096")
        .create()?;
    let topics = topics.to_vec();
    tokio::task::spawn_blocking(move || -> anyhow::Result<StreamConsumer> {
        // Right after topics are created, offset look-ups may briefly fail (no leader yet).
        let mut attempts = 0;
        let tpl = loop {
            match end_offsets(&consumer, &topics) {
                Ok(tpl) => break tpl,
                Err(err) if attempts < 25 => {
                    attempts += 1;
                    tracing::debug!(error = %err, "assignment not ready; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        };
        consumer.assign(&tpl)?;
        Ok(consumer)
    })
    .await?
}

/// Every partition of the topics at its high watermark, resolved now rather than at the first
/// fetch.
fn end_offsets(consumer: &StreamConsumer, topics: &[String]) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow::anyhow!("topic {topic} not found"))?;
        for p in 0..partitions as i32 {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            tpl.add_partition_offset(topic, p, Offset::Offset(high))?;
        }
    }
    Ok(tpl)
}

/// The message key of everything about one seat.
pub fn seat_key(concert_date_id: i64, seat_no: i32) -> String {
    format!("{concert_date_id}:{seat_no}")
}

/// Builds headers from name/value pairs.
pub fn make_headers<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |acc, (key, value)| {
            acc.insert(Header {
                key,
                value: Some(value),
            })
        })
}

/// The value of a header as UTF-8, if present, borrowed from the message.
pub fn header_utf8<'a, H: Headers>(headers: Option<&'a H>, name: &str) -> Option<&'a str> {
    headers?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// The value of a header as UTF-8, if present.
pub fn header_str<H: Headers>(headers: Option<&H>, name: &str) -> Option<String> {
    header_utf8(headers, name).map(str::to_owned)
}
