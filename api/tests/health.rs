//! Readiness against the real services, and naming the dependency that is down.

use axum::http::{Method, StatusCode};
use seatline_api::testing::{assert_closed_by_server, config_with, TestApp};
use seatline_shared::config::DatabaseConfig;
use seatline_shared::testing;
use seatline_shared::testing::read_http_message;
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

/// The served app over a real socket: routes and problem answers as through the router, one
/// keep-alive connection for several requests, and shutdown that does not wait on an idle
/// keep-alive connection.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_server_answers_over_tcp_and_stops_on_shutdown(pool: PgPool) {
    use tokio::io::AsyncWriteExt;

    let app = TestApp::new(pool).await;
    let mut served = app.serve_on_loopback().await;

    let mut connection = tokio::net::TcpStream::connect(served.addr).await.unwrap();
    for (path, expected) in [
        ("/health/live", "HTTP/1.1 200 OK"),
        ("/no/such/route", "HTTP/1.1 404 Not Found"),
        ("/openapi.json", "HTTP/1.1 200 OK"),
    ] {
        connection
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, _) = read_http_message(&mut connection).await;
        assert!(head.starts_with(&expected.to_lowercase()), "{path}: {head}");
        if expected.contains("404") {
            assert!(
                head.contains("content-type: application/problem+json"),
                "{head}"
            );
        }
    }

    served.begin_shutdown();
    served.assert_returns().await;
    // The idle connection was closed by the server, not left open.
    assert_closed_by_server(&mut connection).await;
}

/// Shutdown lets a request in progress finish: a long poll that is waiting when the server
/// stops accepting is still answered in full, its connection is then closed, and only then
/// does the server return.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn shutdown_answers_a_request_in_progress_before_returning(pool: PgPool) {
    use tokio::io::AsyncWriteExt;

    let app = TestApp::new(pool.clone()).await;
    seatline_shared::kafka::ensure_topics(
        &app.state.config.kafka,
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    let date = testing::concert_date(&pool, 1_000, Default::default()).await;
    let (_, token) = app.active_user().await;
    let submitted = app.reserve(&token, date, 1).await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{}", submitted.body);
    let request_id: uuid::Uuid = submitted.body["requestId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let mut served = app.serve_on_loopback().await;
    let addr = served.addr;
    // No workers run here, so the request stays pending and the poll waits out its 4 s, time
    // enough to stop the server and see that it has not returned.
    let mut connection = tokio::net::TcpStream::connect(addr).await.unwrap();
    connection
        .write_all(
            format!(
                "GET /reservation/{request_id}?wait=4 HTTP/1.1\r\nHost: test\r\n\
                 authorization: Bearer {token}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    testing::eventually(
        "the poll waiting",
        std::time::Duration::from_secs(5),
        || async { app.state.waiters.is_waited_for(request_id).then_some(()) },
    )
    .await;

    served.begin_shutdown();
    // Shutdown is in effect once the listener is gone: new connections are refused.
    testing::eventually(
        "new connections refused",
        std::time::Duration::from_secs(5),
        || async {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(
        !served.has_returned(),
        "the server returned with a request in progress"
    );

    let (head, answer) = read_http_message(&mut connection).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let status: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status["status"], "PENDING", "{status}");
    assert_closed_by_server(&mut connection).await;
    served.assert_returns().await;
}
