//! The operator commands, run as an operator would: the `seatline-workers` binary against the
//! real services.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use axum::http::Method;
use common::{header, Pipeline};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use seatline_shared::kafka::{self, Topic};
use seatline_shared::messages::ReservationRequested;
use seatline_shared::testing;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// Runs `seatline-workers ARGS` on the test's database and topics; returns (success, stdout, stderr).
async fn cli(pipeline: &Pipeline, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_seatline-workers"))
        .args(args)
        .envs(pipeline.child_env())
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A few reservations (held and rejected) and payments (paid and failed).
async fn workload(pipeline: &Pipeline) {
    let date = pipeline.date(100).await;
    for i in 0..6 {
        let (user, token) = pipeline.app.active_user().await;
        if i % 2 == 0 {
            pipeline
                .app
                .call(
                    Method::PATCH,
                    &format!("/user/{user}/charge"),
                    Some(&token),
                    Some(json!({"amount": 100})),
                )
                .await;
        }
        let id = pipeline.reserve_ok(&token, date, i / 2 + 1).await;
        let status = pipeline.status(&token, id, 20).await;
        if status.body["status"] == "HELD" {
            let payment = Uuid::new_v4();
            let reservation: Uuid = status.body["reservationId"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            pipeline.pay(&token, payment, reservation).await;
            pipeline.payment_status(&token, payment).await;
        }
    }
    pipeline.wait_outbox_drained().await;
}

async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for query in [
        "SELECT string_agg(request_id::text || outcome || coalesce(reason, ''), ',' ORDER BY request_id) FROM processed_requests",
        "SELECT string_agg(id::text || status, ',' ORDER BY id) FROM reservations",
        "SELECT string_agg(id::text || status || amount, ',' ORDER BY id) FROM payments",
        "SELECT string_agg(id::text || ':' || balance, ',' ORDER BY id) FROM users",
        "SELECT count(*)::text FROM outbox",
    ] {
        let (v,): (Option<String>,) = sqlx::query_as(query).fetch_one(pool).await.unwrap();
        out.push(v.unwrap_or_default());
    }
    out
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn replay_requests_over_both_topics_from_the_beginning_changes_no_row(pool: PgPool) {
    let mut pipeline = Pipeline::start(pool).await;
    workload(&pipeline).await;
    let total = pipeline.read_topic(Topic::ReservationRequests).len()
        + pipeline.read_topic(Topic::PaymentRequests).len();
    assert!(total >= 9, "{total} request messages");

    // While the workers run, their group cannot be reset.
    let (ok, _, stderr) = cli(
        &pipeline,
        &["replay", "requests", "--topic", "all", "--from-beginning"],
    )
    .await;
    assert!(!ok, "resetting an active group must fail");
    assert!(stderr.contains("--fresh-group"), "{stderr}");

    pipeline.stop_workers().await;
    let before = snapshot(&pipeline.pool).await;
    let (ok, stdout, stderr) = cli(
        &pipeline,
        &["replay", "requests", "--topic", "all", "--from-beginning"],
    )
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("reprocessed {total} messages")),
        "{stdout}"
    );
    assert!(stdout.contains("changed: nothing"), "{stdout}");
    assert_eq!(snapshot(&pipeline.pool).await, before);

    // A fresh group, from a point in time, while workers run again.
    pipeline.add_worker(|_| {});
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (ok, stdout, _) = cli(
        &pipeline,
        &["replay", "requests", "--fresh-group", "--from-time", &since],
    )
    .await;
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains(&format!("reprocessed {total} messages"))
            && stdout.contains("changed: nothing"),
        "{stdout}"
    );
    let (ok, stdout, _) = cli(
        &pipeline,
        &[
            "replay",
            "requests",
            "--fresh-group",
            "--from-offset",
            "0",
            "--dry-run",
        ],
    )
    .await;
    assert!(ok && stdout.contains("dry run"), "{stdout}");
    assert_eq!(snapshot(&pipeline.pool).await, before);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn replay_events_re_emits_exactly_the_selected_events_with_their_ids(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    workload(&pipeline).await;
    let before: HashSet<(i32, i64)> = pipeline
        .read_topic(Topic::ReservationEvents)
        .iter()
        .chain(pipeline.read_topic(Topic::PaymentEvents).iter())
        .map(|m| (m.partition(), m.offset()))
        .collect();
    let new_events = |pipeline: &Pipeline, before: &HashSet<(i32, i64)>| -> Vec<Uuid> {
        let mut all = pipeline.read_topic(Topic::ReservationEvents);
        all.extend(pipeline.read_topic(Topic::PaymentEvents));
        all.iter()
            .filter(|m| !before.contains(&(m.partition(), m.offset())))
            .map(|m| header(m, "ce_id").unwrap().parse().unwrap())
            .collect()
    };
    let (selected,): (Vec<Uuid>,) =
        sqlx::query_as("SELECT coalesce(array_agg(id ORDER BY seq), '{}') FROM outbox WHERE type = 'reservation.rejected'")
            .fetch_one(&pipeline.pool)
            .await
            .unwrap();
    assert!(!selected.is_empty());
    let (ok, stdout, stderr) = cli(
        &pipeline,
        &[
            "replay",
            "events",
            "--type",
            "seatline.reservation.rejected",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "re-published {} of {} selected events",
            selected.len(),
            selected.len()
        )),
        "{stdout}"
    );
    let wanted = selected.len();
    let again = testing::eventually("the replayed events", Duration::from_secs(20), || {
        let found = new_events(&pipeline, &before);
        async move { (found.len() >= wanted).then_some(found) }
    })
    .await;
    // Exactly the selected events with their original ids (order holds per key only, and these
    // are different seats).
    assert_eq!(again.len(), selected.len(), "no extra events");
    let again: HashSet<Uuid> = again.into_iter().collect();
    assert_eq!(again, selected.iter().copied().collect::<HashSet<_>>());

    // By aggregate: one payment's events.
    let (payment_id,): (String,) =
        sqlx::query_as("SELECT aggregateid FROM outbox WHERE aggregatetype = 'payment' LIMIT 1")
            .fetch_one(&pipeline.pool)
            .await
            .unwrap();
    let (ok, stdout, _) = cli(
        &pipeline,
        &["replay", "events", "--aggregate", &payment_id, "--dry-run"],
    )
    .await;
    assert!(
        ok && stdout.contains("would re-publish 1 events"),
        "{stdout}"
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_fixed_dead_letter_is_redriven_and_decided(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let producer = kafka::producer(&pipeline.kafka).unwrap();
    let topic = pipeline.kafka.topic(Topic::ReservationRequests);
    // A request from a user the database does not know yet, and a malformed one.
    let user = Uuid::new_v4();
    let request = ReservationRequested {
        request_id: Uuid::now_v7(),
        user_id: user,
        concert_date_id: date,
        seat_no: 7,
        submitted_at: chrono::Utc::now(),
    };
    let key = kafka::seat_key(date, 7);
    let body = serde_json::to_vec(&request).unwrap();
    producer
        .send_result(FutureRecord::to(&topic).key(&key).payload(&body))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let key8 = kafka::seat_key(date, 8);
    producer
        .send_result(
            FutureRecord::to(&topic)
                .key(&key8)
                .payload(&b"{\"requestId\": oops"[..]),
        )
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let listing = testing::eventually("two dead letters listed", Duration::from_secs(30), || {
        let pipeline = &pipeline;
        async move {
            let (ok, stdout, _) = cli(pipeline, &["dlq", "list"]).await;
            (ok && stdout.starts_with("2 dead-lettered messages")).then_some(stdout)
        }
    })
    .await;
    let line_of = |needle: &str| -> String {
        let line = listing
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {listing}"));
        line.split('\t').next().unwrap().to_owned()
    };
    let unknown_user = line_of("unknown user");
    let malformed = line_of("unparseable");
    assert!(listing.contains(&topic), "origin topic listed: {listing}");

    // Fix the cause (the user now exists) and redrive as is.
    sqlx::query("INSERT INTO users (id) VALUES ($1)")
        .bind(user)
        .execute(&pipeline.pool)
        .await
        .unwrap();
    let (ok, stdout, stderr) =
        cli(&pipeline, &["dlq", "redrive", "--message", &unknown_user]).await;
    assert!(ok && stdout.contains("redrove 1 of 1"), "{stdout}{stderr}");
    // Fix the malformed message's value and redrive it.
    let fixed = ReservationRequested {
        request_id: Uuid::now_v7(),
        seat_no: 8,
        ..request.clone()
    };
    let file = std::env::temp_dir().join(format!("fixed-{}.json", Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(&fixed).unwrap()).unwrap();
    let (ok, stdout, _) = cli(
        &pipeline,
        &[
            "dlq",
            "redrive",
            "--message",
            &malformed,
            "--value-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok && stdout.contains("redrove 1 of 1"), "{stdout}");
    std::fs::remove_file(&file).ok();

    let pool = pipeline.pool.clone();
    let outcomes: Vec<(Uuid, String)> =
        testing::eventually("both decided", Duration::from_secs(30), || {
            let pool = pool.clone();
            async move {
                let rows: Vec<(Uuid, String)> = sqlx::query_as(
                    "SELECT request_id, outcome FROM processed_requests WHERE request_id = ANY($1)",
                )
                .bind(vec![request.request_id, fixed.request_id])
                .fetch_all(&pool)
                .await
                .unwrap();
                (rows.len() == 2).then_some(rows)
            }
        })
        .await;
    assert!(outcomes.iter().all(|(_, o)| o == "HELD"), "{outcomes:?}");
}

#[tokio::test]
async fn every_operator_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["replay", "events", "--help"],
        vec!["replay", "requests", "--help"],
        vec!["dlq", "list", "--help"],
        vec!["dlq", "redrive", "--help"],
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_seatline-workers"))
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
}
