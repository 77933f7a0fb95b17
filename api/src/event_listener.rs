//! Reads the event topics and wakes long-poll waiters of the requests they answer.
//!
//! Every API instance reads all partitions from the end, without a consumer group: it only
//! needs events that arrive while its clients wait, and has no offsets to keep. A waiter that
//! misses an event (the listener was reconnecting) still reads the database when its wait ends.

use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use seatline_shared::config::KafkaConfig;
use seatline_shared::events::ReceivedEvent;
use seatline_shared::kafka::{self, Topic};

use crate::waiters::Waiters;

fn assignment(consumer: &StreamConsumer, topics: &[String]) -> anyhow::Result<TopicPartitionList> {
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
            // Start at the current end, resolved now rather than at the first fetch, so
            // everything produced after `connect` returns is seen.
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            tpl.add_partition_offset(topic, p, Offset::Offset(high))?;
        }
    }
    Ok(tpl)
}

/// Builds the listener consumer, assigned to every partition of both event topics. Returns once
/// the assignment is in place, so events produced afterwards are seen.
pub async fn connect(config: &KafkaConfig) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = kafka::client_config(config)
        // A group id is required by librdkafka even when no group is joined.
        .set("group.id", "seatline-api-listener")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "20")
        .create()?;
    let topics = vec![
        config.topic(Topic::ReservationEvents),
        config.topic(Topic::PaymentEvents),
    ];
    let consumer = tokio::task::spawn_blocking(move || -> anyhow::Result<StreamConsumer> {
        // Right after topics are created, offset look-ups may briefly fail (no leader yet).
        let mut attempts = 0;
        let tpl = loop {
            match assignment(&consumer, &topics) {
                Ok(tpl) => break tpl,
                Err(err) if attempts < 25 => {
                    attempts += 1;
                    tracing::debug!(error = %err, "event listener assignment not ready; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        };
        consumer.assign(&tpl)?;
        Ok(consumer)
    })
    .await??;
    Ok(consumer)
}

/// Wakes waiters from `consumer` until `shutdown`. librdkafka reconnects by itself, so a
/// broker outage only pauses it.
pub async fn listen(consumer: &StreamConsumer, waiters: &Waiters, shutdown: &CancellationToken) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = consumer.recv() => r,
        };
        match received {
            Ok(message) => {
                if let Some(id) = ReceivedEvent::decode(&message).and_then(|e| e.request_id()) {
                    waiters.wake(id);
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "event listener error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Runs until `shutdown`, retrying the connection with a pause while Kafka is unavailable.
pub async fn run(config: KafkaConfig, waiters: Waiters, shutdown: CancellationToken) {
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = connect(&config) => c,
        };
        match connected {
            Ok(consumer) => {
                tracing::info!("event listener assigned");
                listen(&consumer, &waiters, &shutdown).await;
                return;
            }
            Err(err) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "event listener cannot connect; retrying"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
}
