//! One trace id, from the HTTP request's `traceparent`, visible in the API's log, the worker's
//! log and the completion event's trace context. (Its own test binary: it installs the global
//! log subscriber.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::{Request, StatusCode};
use common::{header, Pipeline, DEADLINE};
use seatline_shared::kafka::Topic;
use seatline_shared::testing;
use sqlx::PgPool;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn one_trace_id_runs_from_the_api_log_to_the_worker_log_and_the_event(pool: PgPool) {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .init();

    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(10).await;
    let (_, token) = pipeline.app.active_user().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let request = Request::builder()
        .method("POST")
        .uri("/reservation")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("traceparent", &traceparent)
        .body(axum::body::Body::from(format!(
            r#"{{"concertDateId":{date},"seatNo":1}}"#
        )))
        .unwrap();
    let reply = pipeline.app.send(request).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let id = reply.body["requestId"].as_str().unwrap().parse().unwrap();
    assert_eq!(pipeline.status(&token, id, 20).await.body["status"], "HELD");

    let lines: Vec<serde_json::Value> = testing::eventually("both log lines", DEADLINE, || {
        let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["trace_id"] == trace_id)
            .collect();
        let both = lines
            .iter()
            .any(|v| v["message"] == "reservation request queued")
            && lines.iter().any(|v| v["message"] == "reservation decided");
        async move { both.then_some(lines) }
    })
    .await;
    let api = lines
        .iter()
        .find(|v| v["message"] == "reservation request queued")
        .unwrap();
    let worker = lines
        .iter()
        .find(|v| v["message"] == "reservation decided")
        .unwrap();
    assert!(api["target"].as_str().unwrap().starts_with("seatline_api"));
    assert!(worker["target"]
        .as_str()
        .unwrap()
        .starts_with("seatline_workers"));
    assert_eq!(api["request_id"], worker["request_id"]);

    // The completion event carries the same trace context.
    pipeline.wait_outbox_drained().await;
    let events = pipeline.read_topic(Topic::ReservationEvents);
    let held = events
        .iter()
        .find(|m| header(m, "ce_type").as_deref() == Some("seatline.reservation.held"))
        .expect("held event");
    assert_eq!(
        header(held, "ce_traceparent").as_deref(),
        Some(traceparent.as_str())
    );
}
