//! Readiness against the real services, and naming the dependency that is down.

use axum::http::{Method, StatusCode};
use seatline_api::testing::{config_with, TestApp};
use seatline_shared::config::DatabaseConfig;
use seatline_shared::testing;
use sqlx::PgPool;

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn ready_when_database_and_kafka_answer(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["checks"]["database"]["status"], "ok");
    assert_eq!(reply.body["checks"]["kafka"]["status"], "ok");
    let live = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn not_ready_names_kafka_when_the_broker_is_unreachable(pool: PgPool) {
    let mut kafka = testing::kafka_config();
    // Nothing listens on port 1.
    kafka.bootstrap_servers = "127.0.0.1:1".into();
    let app = TestApp::from_parts(config_with(kafka, |_| {}), pool.clone(), pool);

    let started = std::time::Instant::now();
    let reply = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["checks"]["kafka"]["status"], "unavailable");
    assert_eq!(reply.body["checks"]["database"]["status"], "ok");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn not_ready_names_the_database_when_it_is_unreachable(pool: PgPool) {
    let config = config_with(testing::kafka_config(), |_| {});
    let unreachable = seatline_shared::db::pool(&DatabaseConfig {
        acquire_timeout_ms: 1000,
        ..DatabaseConfig::new("postgres://seatline:seatline@127.0.0.1:1/seatline")
    })
    .unwrap();
    let app = TestApp::from_parts(config, unreachable, pool);

    let reply = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["checks"]["database"]["status"], "unavailable");
    assert_eq!(reply.body["checks"]["kafka"]["status"], "ok");
}
