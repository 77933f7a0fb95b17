//! The whole pipeline for one test: a fresh database, fresh topics on the real broker, the API
//! router with its event listener, and the workers, in process or as a real child process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use seatline_api::testing::{Reply, TestApp};
use seatline_shared::config::{DatabaseConfig, KafkaConfig};
use seatline_shared::kafka::{self, Topic};
use seatline_shared::testing;
use seatline_workers::config::WorkersConfig;
use seatline_workers::outbox::relay;
use seatline_workers::Workers;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Pipeline {
    pub pool: PgPool,
    pub kafka: KafkaConfig,
    pub app: TestApp,
    pub workers: Vec<Workers>,
    listener_stop: CancellationToken,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.listener_stop.cancel();
    }
}

/// The URL of the test's own database, for a child process.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let name = pool
        .connect_options()
        .get_database()
        .expect("test database name")
        .to_owned();
    let (prefix, _) = base.rsplit_once('/').expect("database URL with a path");
    format!("{prefix}/{name}")
}

impl Pipeline {
    /// Topics, API and event listener; no workers yet.
    pub async fn without_workers(pool: PgPool) -> Self {
        let kafka = testing::kafka_config();
        kafka::ensure_topics(&kafka, Duration::from_secs(30))
            .await
            .unwrap();
        let app = TestApp::with_kafka(pool.clone(), kafka.clone());
        let listener_stop = CancellationToken::new();
        let consumer = seatline_api::event_listener::connect(&kafka).await.unwrap();
        let (waiters, cache, stop) = (
            app.state.waiters.clone(),
            app.state.cache.clone(),
            listener_stop.clone(),
        );
        tokio::spawn(async move {
            seatline_api::event_listener::listen(&consumer, &waiters, &cache, &stop).await
        });
        Self {
            pool,
            kafka,
            app,
            workers: Vec::new(),
            listener_stop,
        }
    }

    /// Everything, with one in-process worker instance.
    pub async fn start(pool: PgPool) -> Self {
        let mut pipeline = Self::without_workers(pool).await;
        pipeline.add_worker(|_| {});
        pipeline
    }

    pub fn workers_config(&self) -> WorkersConfig {
        let mut config = WorkersConfig::for_services(
            DatabaseConfig::new(database_url(&self.pool)),
            self.kafka.clone(),
        );
        config.admit_interval = Duration::from_secs(3600);
        config
    }

    /// Starts one more in-process worker instance (same group unless `tweak` changes it).
    pub fn add_worker(&mut self, tweak: impl FnOnce(&mut WorkersConfig)) {
        let mut config = self.workers_config();
        tweak(&mut config);
        self.workers
            .push(Workers::start(&config, self.pool.clone()).unwrap());
    }

    pub async fn stop_workers(&mut self) {
        for w in self.workers.drain(..) {
            w.stop().await;
        }
    }

    /// Environment for a `seatline-workers` child process on this test's database and topics.
    pub fn child_env(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", database_url(&self.pool)),
            (
                "KAFKA_BOOTSTRAP_SERVERS",
                self.kafka.bootstrap_servers.clone(),
            ),
            ("KAFKA_TOPIC_PREFIX", self.kafka.topic_prefix.clone()),
            ("KAFKA_PARTITIONS", self.kafka.partitions.to_string()),
            ("KAFKA_WORKER_GROUP", self.kafka.worker_group.clone()),
            ("WORKERS_METRICS_ADDR", "127.0.0.1:0".into()),
            ("QUEUE_ADMIT_INTERVAL", "3600s".into()),
            ("RUST_LOG", "warn".into()),
        ])
    }

    pub fn spawn_worker_process(&self, extra: &[(&str, &str)]) -> tokio::process::Child {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_seatline-workers"));
        command
            .arg("run")
            .envs(self.child_env())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra {
            command.env(k, v);
        }
        command.spawn().expect("spawn seatline-workers")
    }

    /// A concert date on sale now, with 50 seats at `price`.
    pub async fn date(&self, price: i64) -> i64 {
        testing::concert_date(&self.pool, price, Default::default()).await
    }

    pub async fn reserve(&self, token: &str, date: i64, seat: i32) -> Reply {
        self.app.reserve(token, date, seat).await
    }

    /// Submits with an `Idempotency-Key`.
    pub async fn reserve_with_key(&self, token: &str, date: i64, seat: i32, key: &str) -> Reply {
        let request = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/reservation")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(axum::body::Body::from(
                json!({"concertDateId": date, "seatNo": seat}).to_string(),
            ))
            .unwrap();
        self.app.send(request).await
    }

    /// Submits and returns the request id, asserting 202.
    pub async fn reserve_ok(&self, token: &str, date: i64, seat: i32) -> Uuid {
        let reply = self.reserve(token, date, seat).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        reply.body["requestId"].as_str().unwrap().parse().unwrap()
    }

    pub async fn status(&self, token: &str, request_id: Uuid, wait: u64) -> Reply {
        self.app
            .call(
                Method::GET,
                &format!("/reservation/{request_id}?wait={wait}"),
                Some(token),
                None,
            )
            .await
    }

    /// Submits a payment of a reservation.
    pub async fn pay(&self, token: &str, payment_id: Uuid, reservation_id: Uuid) -> Reply {
        self.app
            .call(
                Method::POST,
                &format!("/payment/{payment_id}"),
                Some(token),
                Some(json!({"reservationId": reservation_id})),
            )
            .await
    }

    /// The payment's status once decided (long poll up to 20 s), asserting 200.
    pub async fn payment_status(&self, token: &str, payment_id: Uuid) -> serde_json::Value {
        let reply = self
            .app
            .call(
                Method::GET,
                &format!("/payment/{payment_id}?wait=20"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    /// Waits until the inbox holds `n` decided requests.
    pub async fn wait_processed(&self, n: i64) {
        let pool = self.pool.clone();
        testing::eventually(&format!("{n} decided requests"), DEADLINE, || {
            let pool = pool.clone();
            async move {
                let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM processed_requests")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                (count >= n).then_some(())
            }
        })
        .await;
    }

    /// Waits until the outbox has nothing left to publish.
    pub async fn wait_outbox_drained(&self) {
        let pool = self.pool.clone();
        testing::eventually("outbox drained", DEADLINE, || {
            let pool = pool.clone();
            async move {
                let left = relay::backlog(&pool).await.unwrap();
                (left == 0).then_some(())
            }
        })
        .await;
    }

    /// Every message of a topic, from the beginning to the current end.
    pub fn read_topic(&self, topic: Topic) -> Vec<OwnedMessage> {
        read_all(&self.kafka, &self.kafka.topic(topic))
    }
}

/// Reads a topic from offset 0 to its high watermarks, without a group.
pub fn read_all(kafka: &KafkaConfig, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = kafka::client_config(kafka)
        .set("group.id", testing::random_group())
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut ends = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .unwrap();
        remaining += high - low;
        ends.insert(p, high);
    }
    consumer.assign(&tpl).unwrap();
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while remaining > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let m = result.unwrap();
            if m.offset() < ends[&m.partition()] {
                remaining -= 1;
                messages.push(m.detach());
            }
        }
    }
    messages
}

/// The value of a header as text.
pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Creates `n` users with ACTIVE tokens; returns (user, token) pairs.
pub async fn active_users(app: &TestApp, n: usize) -> Vec<(Uuid, String)> {
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        users.push(app.active_user().await);
    }
    users
}

/// Waits until `group` has committed offsets at the end of every partition of `topic`.
pub async fn wait_group_caught_up(
    kafka: &seatline_shared::config::KafkaConfig,
    group: &str,
    topic: &str,
) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = kafka::client_config(kafka)
        .set("group.id", group)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    testing::eventually("the replay group to reach the end", DEADLINE, || {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(5)).ok();
        let done = committed.is_some_and(|c| {
            (0..partitions).all(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    .unwrap();
                match c.find_partition(topic, p).map(|e| e.offset()) {
                    Some(rdkafka::Offset::Offset(o)) => o >= high,
                    _ => high == 0,
                }
            })
        });
        async move { done.then_some(()) }
    })
    .await;
}
