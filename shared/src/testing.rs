//! Test support (feature `testing`): connections to the real local services from the
//! environment, random topic and group names per test, polling with a deadline, and the rows
//! most tests start from.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::catalog::{self, NewConcertDate};
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

/// A new concert with one date 30 days ahead, on sale now: its 50 seats at `default_price`,
/// except those in `seat_prices`. Returns the date's id.
pub async fn concert_date(
    pool: &PgPool,
    default_price: i64,
    seat_prices: BTreeMap<i32, i64>,
) -> i64 {
    let concert = catalog::create_concert(pool, "Test concert", "Test hall")
        .await
        .unwrap();
    let new = NewConcertDate {
        starts_at: chrono::Utc::now() + chrono::Duration::days(30),
        default_price,
        seat_prices,
        sales_open_at: None,
        sales_close_at: None,
    };
    catalog::create_concert_date(pool, concert.id, &new)
        .await
        .unwrap()
        .id
}

/// A new user with a zero balance.
pub async fn user(pool: &PgPool) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO users (id) VALUES ($1)")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    id
}
