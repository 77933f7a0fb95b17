//! The dead-letter topic: request messages that cannot be decided (unparseable, or naming a
//! user that does not exist) go there with the error and their origin, so the partition moves
//! on. Operators list and redrive them.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use seatline_shared::config::KafkaConfig;
use seatline_shared::kafka::{headers, Topic};

/// A message to dead-letter and why.
#[derive(Debug)]
pub struct Poison<'a> {
    pub message: &'a OwnedMessage,
    pub error: String,
}

/// Publishes the poison messages to the dead-letter topic and waits for the broker's acks.
/// Keeps the original key, value and headers, and adds the error and origin headers.
pub async fn publish(
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    poison: &[Poison<'_>],
) -> anyhow::Result<()> {
    if poison.is_empty() {
        return Ok(());
    }
    let topic = kafka.topic(Topic::DeadLetter);
    let mut deliveries = Vec::with_capacity(poison.len());
    for item in poison {
        let m = item.message;
        tracing::warn!(
            topic = m.topic(), partition = m.partition(), offset = m.offset(), error = %item.error,
            "dead-lettering a request message"
        );
        let mut hdrs = OwnedHeaders::new();
        if let Some(original) = m.headers() {
            for h in original.iter() {
                hdrs = hdrs.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let partition = m.partition().to_string();
        let offset = m.offset().to_string();
        let hdrs = hdrs
            .insert(Header {
                key: headers::DLQ_ERROR,
                value: Some(item.error.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_TOPIC,
                value: Some(m.topic()),
            })
            .insert(Header {
                key: headers::DLQ_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: headers::DLQ_OFFSET,
                value: Some(offset.as_str()),
            });
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(hdrs);
        if let Some(key) = m.key() {
            record = record.key(key);
        }
        if let Some(payload) = m.payload() {
            record = record.payload(payload);
        }
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery
            .await
            .map_err(|_| anyhow::anyhow!("dead-letter delivery cancelled"))?
            .map_err(|(e, _)| e)?;
    }
    for item in poison {
        metrics::counter!("dead_letters_total", "topic" => item.message.topic().to_owned())
            .increment(1);
    }
    Ok(())
}
