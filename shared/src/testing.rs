//! Test support (feature `testing`): connections to the real local services from the
//! environment, random topic and group names per test, polling with a deadline, the rows
//! most tests start from, the plan of a query, and reading an HTTP message off a raw socket.

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

/// The plan PostgreSQL would run a query with, for tests of what a query reads: `explain` is an
/// `EXPLAIN` statement with its values bound. One line per plan node.
pub async fn plan<'a>(
    connection: impl sqlx::PgExecutor<'a>,
    explain: sqlx::query::QueryAs<'a, sqlx::Postgres, (String,), sqlx::postgres::PgArguments>,
) -> String {
    let lines = explain.fetch_all(connection).await.unwrap();
    lines
        .into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads one HTTP/1.1 message (a request or a response) with a `content-length` body, or none,
/// from a raw connection, for tests of HTTP over a real socket. Returns the head, lower-cased,
/// and the body.
pub async fn read_http_message(connection: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;

    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = connection.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-message");
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buffer.len() >= end + 4 + length {
            let body = buffer[end + 4..end + 4 + length].to_vec();
            return (head, body);
        }
    }
}
