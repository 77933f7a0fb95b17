//! Topic creation against the real local broker, with random topic names per test.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use seatline_shared::kafka::{self, Topic};
use seatline_shared::testing;

/// The topic's partition count once the broker's metadata lists it (creation propagates
/// asynchronously, so this polls with a deadline).
async fn partitions_of(config: &seatline_shared::config::KafkaConfig, topic: &str) -> usize {
    let consumer: BaseConsumer = kafka::client_config(config).create().unwrap();
    testing::eventually("topic metadata", Duration::from_secs(20), || {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let found = metadata.ok().and_then(|m| {
            m.topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len())
        });
        async move { found }
    })
    .await
}

#[tokio::test]
async fn topics_are_created_with_the_configured_partitions() {
    let mut config = testing::kafka_config();
    config.partitions = 12;
    kafka::ensure_topics(&config, Duration::from_secs(30))
        .await
        .unwrap();
    for topic in Topic::ALL {
        let name = config.topic(topic);
        assert!(name.starts_with(&config.topic_prefix));
        assert_eq!(partitions_of(&config, &name).await, 12, "{name}");
    }
    // Creating again is a no-op, not an error.
    kafka::ensure_topics(&config, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test]
async fn partition_count_follows_configuration() {
    let mut config = testing::kafka_config();
    config.partitions = 3;
    kafka::ensure_topics(&config, Duration::from_secs(30))
        .await
        .unwrap();
    let name = config.topic(Topic::ReservationRequests);
    assert_eq!(partitions_of(&config, &name).await, 3);
}
