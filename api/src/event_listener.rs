//! Reads the event topics and wakes long-poll waiters of the requests they answer.
//!
//! Every API instance reads all partitions from the end, without a consumer group: it only
//! needs events that arrive while its clients wait, and has no offsets to keep. A waiter that
//! misses an event (the listener was reconnecting) still reads the database when its wait ends.

use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use tokio_util::sync::CancellationToken;

use seatline_shared::config::KafkaConfig;
use seatline_shared::events::{Outcome, OutcomeKind};
use seatline_shared::kafka::{self, Topic};

use crate::hot_cache::HotCache;
use crate::waiters::Waiters;

/// Builds the listener consumer, assigned to every partition of both event topics at their
/// current end. Returns once the assignment is in place, so events produced afterwards are seen.
pub async fn connect(config: &KafkaConfig) -> anyhow::Result<StreamConsumer> {
    let topics = [
        config.topic(Topic::ReservationEvents),
        config.topic(Topic::PaymentEvents),
    ];
    kafka::consumer_at_end(config, &topics).await
}

/// Wakes waiters from `consumer` until `shutdown`. librdkafka reconnects by itself, so a
/// broker outage only pauses it.
pub async fn listen(
    consumer: &StreamConsumer,
    waiters: &Waiters,
    cache: &HotCache,
    shutdown: &CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = consumer.recv() => r,
        };
        match received {
            Ok(message) => {
                let Some(outcome) = Outcome::decode(&message) else {
                    continue;
                };
                // A payment ended the payer's token: stop serving it from memory before anyone
                // who waited for this payment can use the token again.
                if outcome.kind == OutcomeKind::PaymentSucceeded {
                    cache.forget_user(outcome.user_id);
                }
                waiters.wake(outcome.request_id);
            }
            Err(err) => {
                tracing::debug!(error = %err, "event listener error");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Runs until `shutdown`, retrying the connection with a pause while Kafka is unavailable.
pub async fn run(
    config: KafkaConfig,
    waiters: Waiters,
    cache: HotCache,
    shutdown: CancellationToken,
) {
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = connect(&config) => c,
        };
        match connected {
            Ok(consumer) => {
                tracing::info!("event listener assigned");
                listen(&consumer, &waiters, &cache, &shutdown).await;
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
