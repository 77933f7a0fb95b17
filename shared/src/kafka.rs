//! Kafka plumbing shared by the API and the workers: topic names, topic creation at start-up,
//! producer and consumer settings, and the headers every message carries.
//!
//! Request topics are keyed by seat (`{concertDateId}:{seatNo}`), so every operation on one seat
//! lands in one partition, in order. Event topics are keyed by the event's aggregate.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

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
        .set("linger.ms", "2")
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
        .set("max.poll.interval.ms", "300000");
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

/// The value of a header as UTF-8, if present.
pub fn header_str<H: Headers>(headers: Option<&H>, name: &str) -> Option<String> {
    let headers = headers?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}
