//! Overload: writes beyond `HTTP_MAX_IN_FLIGHT_WRITES` are refused at once with a problem
//! document and write nothing, while reads are still served; connections beyond
//! `HTTP_MAX_CONNECTIONS` are answered 503 at once and closed.

use std::task::Poll;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use futures::SinkExt;
use seatline_api::testing::{assert_closed_by_server, TestApp};
use seatline_shared::testing::read_http_message;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

async fn tokens_of(pool: &PgPool, user: Uuid) -> i64 {
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM queue_tokens WHERE user_id = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
    count
}

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn a_write_beyond_the_limit_is_refused_and_writes_nothing(pool: PgPool) {
    let app = TestApp::with_config(pool.clone(), |c| c.max_in_flight_writes = 1).await;

    // The first write holds the only slot: its body has not finished arriving.
    let (mut sender, receiver) =
        futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let slow_body = Body::from_stream(receiver);
    let first_user = Uuid::new_v4();
    let slow = Request::builder()
        .method(Method::POST)
        .uri("/client/token")
        .header("content-type", "application/json")
        .body(slow_body)
        .unwrap();
    let mut first = Box::pin(app.router.clone().oneshot(slow));
    assert!(matches!(futures::poll!(&mut first), Poll::Pending));

    let refused_user = Uuid::new_v4();
    let refused = app
        .call(
            Method::POST,
            "/client/token",
            None,
            Some(json!({ "userId": refused_user })),
        )
        .await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused
            .headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(tokens_of(&pool, refused_user).await, 0, "nothing written");

    // Reads and probes are not limited.
    let read = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(read.status, StatusCode::OK);

    // The first write completes, and its slot is free again.
    let body = json!({ "userId": first_user }).to_string();
    sender.send(Ok(Bytes::from(body))).await.unwrap();
    drop(sender);
    let response = first.await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let retried = app
        .call(
            Method::POST,
            "/client/token",
            None,
            Some(json!({ "userId": refused_user })),
        )
        .await;
    assert_eq!(retried.status, StatusCode::CREATED);
    assert_eq!(tokens_of(&pool, refused_user).await, 1);
}

/// With the only connection slot taken by an open keep-alive connection, a second connection
/// gets a 503 problem document with Retry-After and is closed; once the first closes, a new
/// connection is served.
#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn a_connection_beyond_the_cap_is_refused_at_once(pool: PgPool) {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    let app = TestApp::with_config(pool, |c| c.max_client_connections = 1).await;
    let mut served = app.serve_on_loopback().await;
    let addr = served.addr;
    let get = b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n";

    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(get).await.unwrap();
    let (head, _) = read_http_message(&mut first).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(get).await.unwrap();
    let (head, body) = read_http_message(&mut second).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("retry-after: 1"), "{head}");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "/problems/unavailable");
    assert_eq!(problem["status"], 503);
    assert_closed_by_server(&mut second).await;

    // The first connection still works, and its slot is reused once it closes.
    first.write_all(get).await.unwrap();
    assert!(read_http_message(&mut first)
        .await
        .0
        .starts_with("http/1.1 200"));
    drop(first);
    seatline_shared::testing::eventually(
        "a new connection served after the first closed",
        std::time::Duration::from_secs(5),
        || async move {
            let mut third = TcpStream::connect(addr).await.ok()?;
            third.write_all(get).await.ok()?;
            let (head, _) = read_http_message(&mut third).await;
            head.starts_with("http/1.1 200").then_some(())
        },
    )
    .await;

    served.begin_shutdown();
    served.assert_returns().await;
}
