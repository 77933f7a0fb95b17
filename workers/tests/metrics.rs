//! `/metrics` on the API, and on the workers' own port, after a small workload.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Pipeline, DEADLINE};
use rdkafka::producer::FutureRecord;
use seatline_shared::kafka::{self, Topic};
use seatline_shared::testing;
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The value of the first sample of `series` whose line contains every label fragment.
fn sample(text: &str, series: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|f| l.contains(f)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn metrics_expose_the_named_series_after_a_workload(pool: PgPool) {
    let mut pipeline = Pipeline::without_workers(pool).await;
    pipeline.add_worker(|c| c.admit_interval = Duration::from_millis(100));
    let date = pipeline.date(10).await;
    // One waiter for the admitter to admit, one user who reserves and pays.
    let (_, waiter) = pipeline.app.new_user().await;
    let (user, token) = pipeline.app.active_user().await;
    pipeline
        .app
        .call(
            Method::PATCH,
            &format!("/user/{user}/charge"),
            Some(&token),
            Some(json!({"amount": 100})),
        )
        .await;
    let request = pipeline.reserve_ok(&token, date, 1).await;
    let held = pipeline.status(&token, request, 20).await;
    let payment = Uuid::new_v4();
    let reservation: Uuid = held.body["reservationId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    pipeline.pay(&token, payment, reservation).await;
    let paid = pipeline.payment_status(&token, payment).await;
    assert_eq!(paid["status"], "PAID");
    // A poison message for the dead-letter counter.
    let producer = kafka::producer(&pipeline.kafka).unwrap();
    let topic = pipeline.kafka.topic(Topic::ReservationRequests);
    producer
        .send_result(FutureRecord::to(&topic).key("x").payload("garbage"))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    testing::eventually("the waiter admitted", DEADLINE, || {
        let app = pipeline.app.clone();
        let waiter = waiter.clone();
        async move {
            let r = app
                .call(Method::GET, "/client/token", Some(&waiter), None)
                .await;
            (r.body["status"] == "ACTIVE").then_some(())
        }
    })
    .await;

    // consumer_lag comes with librdkafka's statistics, every 5 s.
    let text = testing::eventually("every series", DEADLINE, || {
        let app = pipeline.app.clone();
        async move {
            let reply = app.call(Method::GET, "/metrics", None, None).await;
            assert_eq!(reply.status, StatusCode::OK);
            let text = reply.body.as_str().unwrap().to_owned();
            let ready = sample(&text, "consumer_lag", &[]).is_some()
                && sample(&text, "dead_letters_total", &[]).is_some_and(|v| v > 0.0)
                && sample(&text, "queue_admissions_total", &[]).is_some_and(|v| v > 0.0);
            ready.then_some(text)
        }
    })
    .await;

    let positive = [
        (
            "http_requests_total",
            vec!["route=\"/reservation\"", "status=\"202\""],
        ),
        (
            "http_request_duration_seconds_count",
            vec!["route=\"/reservation\""],
        ),
        (
            "kafka_produce_duration_seconds_count",
            vec!["topic=\"reservation-requests\""],
        ),
        (
            "kafka_produce_duration_seconds_count",
            vec!["topic=\"payment-requests\""],
        ),
        ("worker_batch_size_count", vec![]),
        (
            "decisions_total",
            vec!["kind=\"reservation\"", "outcome=\"HELD\""],
        ),
        (
            "decisions_total",
            vec!["kind=\"payment\"", "outcome=\"PAID\""],
        ),
        (
            "decision_latency_seconds_count",
            vec!["kind=\"reservation\""],
        ),
        ("outbox_published_total", vec![]),
        ("outbox_publish_duration_seconds_count", vec![]),
        ("outbox_event_age_seconds_count", vec![]),
        ("dead_letters_total", vec![]),
        ("queue_admissions_total", vec![]),
    ];
    for (series, labels) in positive {
        let value = sample(&text, series, &labels);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{series} {labels:?} = {value:?}\n{text}"
        );
    }
    for series in [
        "consumer_lag",
        "outbox_backlog",
        "queue_active",
        "queue_waiting",
        "queue_admit_rate",
    ] {
        assert!(sample(&text, series, &[]).is_some(), "{series} missing");
    }
    assert!(sample(&text, "queue_active", &[]).unwrap() >= 1.0);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_workers_serve_metrics_on_their_own_port(pool: PgPool) {
    let pipeline = Pipeline::without_workers(pool).await;
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = pipeline.spawn_worker_process(&[
        ("WORKERS_METRICS_ADDR", &addr),
        ("QUEUE_ADMIT_INTERVAL", "100ms"),
    ]);
    let body = testing::eventually("the workers' metrics endpoint", DEADLINE, || {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .await
                .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await.ok()?;
            (response.starts_with("HTTP/1.") && response.contains("queue_active"))
                .then_some(response)
        }
    })
    .await;
    assert!(body.contains(" 200 "), "{body}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
