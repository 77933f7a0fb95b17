//! Reservation rules and the reservation API's edges, end to end.

mod common;

use axum::http::{Method, StatusCode};
use common::Pipeline;
use seatline_api::testing::TestApp;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_same_idempotency_key_gives_the_same_request_processed_once(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let (_, token) = pipeline.app.active_user().await;
    let submit = |key: &'static str, seat: i32| pipeline.reserve_with_key(&token, date, seat, key);
    let first = submit("k-1", 4).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let id = first.body["requestId"].clone();
    for _ in 0..3 {
        let again = submit("k-1", 4).await;
        assert_eq!(again.status, StatusCode::ACCEPTED);
        assert_eq!(again.body["requestId"], id);
    }
    submit("k-1", 5)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let id: Uuid = id.as_str().unwrap().parse().unwrap();
    assert_eq!(pipeline.status(&token, id, 20).await.body["status"], "HELD");
    // Count only once the workers have consumed every repeated publish.
    let topic = pipeline
        .kafka
        .topic(seatline_shared::kafka::Topic::ReservationRequests);
    assert_eq!(
        pipeline
            .read_topic(seatline_shared::kafka::Topic::ReservationRequests)
            .len(),
        4
    );
    common::wait_group_caught_up(&pipeline.kafka, &pipeline.kafka.worker_group, &topic).await;
    let (decided, holds): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM processed_requests), (SELECT count(*) FROM reservations)",
    )
    .fetch_one(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!((decided, holds), (1, 1));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn status_is_private_durable_and_bounded(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let (_, alice) = pipeline.app.active_user().await;
    let (_, bob) = pipeline.app.active_user().await;
    let id = pipeline.reserve_ok(&alice, date, 1).await;
    let held = pipeline.status(&alice, id, 20).await;
    assert_eq!(held.body["status"], "HELD");
    for field in [
        "requestId",
        "reservationId",
        "concertDateId",
        "seatNo",
        "price",
        "expiresAt",
    ] {
        assert!(
            held.body.get(field).is_some(),
            "HELD lacks {field}: {}",
            held.body
        );
    }

    pipeline
        .status(&bob, id, 0)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    pipeline
        .status(&alice, Uuid::new_v4(), 0)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    pipeline
        .app
        .call(
            Method::GET,
            &format!("/reservation/{id}?wait=31"),
            Some(&alice),
            None,
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    pipeline
        .app
        .call(Method::GET, "/reservation/not-a-uuid", Some(&alice), None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    pipeline
        .app
        .call(Method::GET, &format!("/reservation/{id}"), None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);

    // Another API instance (fresh state, nothing in memory) answers the same.
    let other = TestApp::with_kafka(pipeline.pool.clone(), pipeline.kafka.clone());
    let reply = other
        .call(
            Method::GET,
            &format!("/reservation/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(reply.body, held.body);
}

/// A submission without an idempotency key writes nothing before the workers decide it, yet
/// its status is PENDING on any API instance, for its submitter only; a keyed one is PENDING
/// from its record. Once a worker runs, both are decided.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_pending_request_is_known_without_a_record_and_only_to_its_user(pool: PgPool) {
    let mut pipeline = Pipeline::without_workers(pool).await;
    let date = pipeline.date(100).await;
    let (_, alice) = pipeline.app.active_user().await;
    let (_, bob) = pipeline.app.active_user().await;
    let unkeyed = pipeline.reserve_ok(&alice, date, 1).await;
    let keyed = pipeline.reserve_with_key(&alice, date, 2, "k-1").await;
    assert_eq!(keyed.status, StatusCode::ACCEPTED, "{}", keyed.body);
    let keyed: Uuid = keyed.body["requestId"].as_str().unwrap().parse().unwrap();
    let recorded: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM requests")
        .fetch_all(&pipeline.pool)
        .await
        .unwrap();
    assert_eq!(
        recorded,
        vec![(keyed,)],
        "only the keyed submission is recorded"
    );

    let mut forged = *unkeyed.as_bytes();
    forged[15] ^= 1;
    let forged = Uuid::from_bytes(forged);
    let other = TestApp::with_kafka(pipeline.pool.clone(), pipeline.kafka.clone());
    for app in [&pipeline.app, &other] {
        for id in [unkeyed, keyed] {
            let path = format!("/reservation/{id}");
            let reply = app.call(Method::GET, &path, Some(&alice), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            assert_eq!(reply.body, json!({"requestId": id, "status": "PENDING"}));
            app.call(Method::GET, &path, Some(&bob), None)
                .await
                .assert_problem(StatusCode::NOT_FOUND);
        }
        app.call(
            Method::GET,
            &format!("/reservation/{forged}"),
            Some(&alice),
            None,
        )
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    }

    pipeline.add_worker(|_| {});
    for id in [unkeyed, keyed] {
        assert_eq!(pipeline.status(&alice, id, 20).await.body["status"], "HELD");
        pipeline
            .status(&bob, id, 0)
            .await
            .assert_problem(StatusCode::NOT_FOUND);
    }
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn bad_submissions_are_refused_and_write_nothing(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let (_, token) = pipeline.app.active_user().await;
    let (_, waiting) = pipeline.app.new_user().await;
    let post = |token: &str, body: serde_json::Value| {
        let token = token.to_owned();
        let app = pipeline.app.clone();
        async move {
            app.call(Method::POST, "/reservation", Some(&token), Some(body))
                .await
        }
    };
    post(&token, json!({"concertDateId": date}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    post(&token, json!({"concertDateId": "x", "seatNo": 1}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    post(&token, json!({"concertDateId": date, "seatNo": 1.5}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    post(&token, json!({"concertDateId": date, "seatNo": 51}))
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    post(&token, json!({"concertDateId": 999_999, "seatNo": 1}))
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    // Again, now that the date's seats are cached.
    for seat_no in [51, 0, -1] {
        post(&token, json!({"concertDateId": date, "seatNo": seat_no}))
            .await
            .assert_problem(StatusCode::NOT_FOUND);
    }
    let reply = post(&waiting, json!({"concertDateId": date, "seatNo": 1})).await;
    reply.assert_problem(StatusCode::FORBIDDEN);
    assert!(reply.body["position"].is_i64());
    pipeline
        .app
        .call(
            Method::POST,
            "/reservation",
            None,
            Some(json!({"concertDateId": date, "seatNo": 1})),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    let (requests,): (i64,) = sqlx::query_as("SELECT count(*) FROM requests")
        .fetch_one(&pipeline.pool)
        .await
        .unwrap();
    assert_eq!(requests, 0);
    assert!(pipeline
        .read_topic(seatline_shared::kafka::Topic::ReservationRequests)
        .is_empty());
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_user_holds_at_most_the_limit_and_closed_sales_are_refused(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let (_, token) = pipeline.app.active_user().await;
    let mut ids = Vec::new();
    for seat in 1..=5 {
        ids.push(pipeline.reserve_ok(&token, date, seat).await);
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let reply = pipeline.status(&token, *id, 20).await;
        statuses.push((reply.body["status"].clone(), reply.body["reason"].clone()));
    }
    // Seats live in different partitions, decided in parallel: which one hits the limit varies.
    let held = statuses.iter().filter(|(s, _)| s == "HELD").count();
    let limited = statuses
        .iter()
        .filter(|s| **s == (json!("REJECTED"), json!("HOLD_LIMIT")))
        .count();
    assert_eq!((held, limited), (4, 1), "{statuses:?}");

    // A date whose sales have closed (since the seat check passed, the worker decides it).
    sqlx::query("UPDATE concert_dates SET sales_open_at = now() - interval '2 days', sales_close_at = now() - interval '1 day' WHERE id = $1")
        .bind(date)
        .execute(&pipeline.pool)
        .await
        .unwrap();
    let (_, other) = pipeline.app.active_user().await;
    let id = pipeline.reserve_ok(&other, date, 20).await;
    let reply = pipeline.status(&other, id, 20).await;
    assert_eq!(
        (reply.body["status"].clone(), reply.body["reason"].clone()),
        (json!("REJECTED"), json!("SALES_CLOSED"))
    );
}
