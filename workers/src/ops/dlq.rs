//! `dlq list` and `dlq redrive`: inspect dead-lettered request messages and send chosen ones
//! back to their original topic, as they were or with a fixed value. Redriving does not remove
//! a message from the dead-letter topic (Kafka topics are append-only); redriven messages carry
//! a `seatline-redriven-from` header, and deciding them twice is harmless.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use seatline_shared::config::KafkaConfig;
use seatline_shared::kafka::{self, header_str, headers, Topic};

use super::{Interrupt, Progress};

const TIMEOUT: Duration = Duration::from_secs(10);
pub const REDRIVEN_FROM: &str = "seatline-redriven-from";

/// A dead-lettered message as operators see it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub partition: i32,
    pub offset: i64,
    pub time: Option<DateTime<Utc>>,
    pub error: String,
    pub origin_topic: String,
    pub origin_partition: String,
    pub origin_offset: String,
    pub key: Option<String>,
    pub message: OwnedMessage,
}

impl DeadLetter {
    fn from_message(message: OwnedMessage) -> Self {
        let h = |name| header_str(message.headers(), name).unwrap_or_default();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            time: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            error: h(headers::DLQ_ERROR),
            origin_topic: h(headers::DLQ_TOPIC),
            origin_partition: h(headers::DLQ_PARTITION),
            origin_offset: h(headers::DLQ_OFFSET),
            key: message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            message,
        }
    }

    /// One line for `dlq list`.
    pub fn line(&self) -> String {
        format!(
            "{}:{}\t{}\t{}/{}@{}\tkey={}\t{}",
            self.partition,
            self.offset,
            self.time
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "-".into()),
            self.origin_topic,
            self.origin_partition,
            self.origin_offset,
            self.key.as_deref().unwrap_or("-"),
            self.error,
        )
    }
}

/// Every message in the dead-letter topic, oldest first per partition.
pub fn read_all(kafka: &KafkaConfig) -> anyhow::Result<Vec<DeadLetter>> {
    let topic = kafka.topic(Topic::DeadLetter);
    let consumer: BaseConsumer = kafka::client_config(kafka)
        .set(
            "group.id",
            format!("seatline-dlq-reader-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = std::collections::HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(&topic, p, TIMEOUT)?;
        if high > low {
            tpl.add_partition_offset(&topic, p, Offset::Offset(low))?;
            remaining += high - low;
        }
        ends.insert(p, high);
    }
    if remaining == 0 {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl)?;
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "reading the dead-letter topic timed out"
        );
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result?.detach();
            if m.offset() < ends[&m.partition()] {
                remaining -= 1;
                letters.push(DeadLetter::from_message(m));
            }
        }
    }
    letters.sort_by_key(|l| (l.time, l.partition, l.offset));
    Ok(letters)
}

/// Sends the chosen dead letters back to their original topics, with their original key and
/// headers (without the dead-letter ones) and, for a fix, a new value. Returns how many.
pub async fn redrive(
    producer: &FutureProducer,
    letters: &[DeadLetter],
    replacement_value: Option<&[u8]>,
    interrupt: &Interrupt,
) -> anyhow::Result<usize> {
    let mut progress = Progress::new("redriving dead letters", letters.len() as u64);
    let mut sent = 0;
    for letter in letters {
        if interrupt.is_set() {
            break;
        }
        anyhow::ensure!(
            !letter.origin_topic.is_empty(),
            "{}:{} has no origin topic header",
            letter.partition,
            letter.offset
        );
        let from = format!("{}:{}", letter.partition, letter.offset);
        let mut hdrs = OwnedHeaders::new();
        if let Some(original) = letter.message.headers() {
            for h in original
                .iter()
                .filter(|h| !h.key.starts_with("seatline-dlq-"))
            {
                hdrs = hdrs.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        hdrs = hdrs.insert(Header {
            key: REDRIVEN_FROM,
            value: Some(from.as_str()),
        });
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&letter.origin_topic).headers(hdrs);
        if let Some(key) = letter.message.key() {
            record = record.key(key);
        }
        if let Some(value) = replacement_value.or(letter.message.payload()) {
            record = record.payload(value);
        }
        producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(e, _)| anyhow::anyhow!("redriving {from}: {e}"))?;
        sent += 1;
        progress.advance(1);
    }
    progress.finish();
    Ok(sent)
}
