//! Overload: writes beyond `HTTP_MAX_IN_FLIGHT_WRITES` are refused at once with a problem
//! document and write nothing, while reads are still served.

use std::task::Poll;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode};
use futures::SinkExt;
use seatline_api::testing::TestApp;
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
