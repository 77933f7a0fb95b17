//! Test support (feature `testing`): connections to the real local services from the
//! environment, random topic and group names per test, and polling with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::KafkaConfig;

/// Kafka settings for one test: the broker from `KAFKA_BOOTSTRAP_SERVERS` and a random topic
/// prefix, so tests never share topics.
pub fn kafka_config() -> KafkaConfig {
    let bootstrap =
        std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut config = KafkaConfig::new(
        bootstrap,
        format!("test-{}.", uuid::Uuid::new_v4().simple()),
    );
    config.partitions = 4;
    config.worker_group = random_group();
    config
}

/// A fresh consumer group name.
pub fn random_group() -> String {
    format!("test-group-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it yields `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
