//! Every event type the system emits, produced by a real workload, checked against the
//! contract in `docs/`: CloudEvents binary-mode headers, the key, and the JSON Schema of its data.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use axum::http::Method;
use common::{header, Pipeline, DEADLINE};
use rdkafka::message::{Message, OwnedMessage};
use seatline_shared::kafka::Topic;
use seatline_shared::testing;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const ALL_TYPES: [&str; 6] = [
    "reservation.held",
    "reservation.rejected",
    "reservation.expired",
    "reservation.confirmed",
    "payment.succeeded",
    "payment.failed",
];

fn docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn schema(event_type: &str) -> jsonschema::Validator {
    let path = docs().join(format!("events/{event_type}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn check_event(m: &OwnedMessage) -> String {
    let ce_type = header(m, "ce_type").expect("ce_type");
    let event_type = ce_type
        .strip_prefix("seatline.")
        .expect("seatline. prefix")
        .to_owned();
    assert_eq!(header(m, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(
        header(m, "ce_source").as_deref(),
        Some("urn:seatline:workers")
    );
    assert_eq!(
        header(m, "content-type").as_deref(),
        Some("application/json")
    );
    let id: Uuid = header(m, "ce_id")
        .unwrap()
        .parse()
        .expect("ce_id is a UUID");
    chrono::DateTime::parse_from_rfc3339(&header(m, "ce_time").unwrap())
        .expect("ce_time is RFC 3339");
    let data: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
    let validator = schema(&event_type);
    let errors: Vec<String> = validator
        .iter_errors(&data)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{event_type} data {data} violates its schema: {errors:?}"
    );
    assert_eq!(data["eventId"], id.to_string(), "ce_id and eventId agree");
    let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
    let subject = header(m, "ce_subject").unwrap();
    if event_type.starts_with("payment.") {
        assert_eq!(key, data["paymentId"].as_str().unwrap());
        assert_eq!(subject, format!("payment/{key}"));
    } else {
        assert_eq!(key, format!("{}:{}", data["concertDateId"], data["seatNo"]));
        assert_eq!(subject, format!("seat/{key}"));
    }
    event_type
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn every_emitted_event_type_matches_its_schema(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(60).await;
    let app = &pipeline.app;
    let (alice, alice_token) = app.active_user().await;
    let (bob, bob_token) = app.active_user().await;
    app.call(
        Method::PATCH,
        &format!("/user/{alice}/charge"),
        Some(&alice_token),
        Some(json!({"amount": 100})),
    )
    .await;

    // held, then payment.succeeded and reservation.confirmed
    let held = pipeline.reserve_ok(&alice_token, date, 1).await;
    let reservation = pipeline.status(&alice_token, held, 20).await.body["reservationId"].clone();
    let paid = Uuid::new_v4();
    app.call(
        Method::POST,
        &format!("/payment/{paid}"),
        Some(&alice_token),
        Some(json!({"reservationId": reservation})),
    )
    .await;
    // rejected
    let taken = pipeline.reserve_ok(&bob_token, date, 1).await;
    // payment.failed (Bob has no points)
    let bobs = pipeline.reserve_ok(&bob_token, date, 2).await;
    let bobs_reservation =
        pipeline.status(&bob_token, bobs, 20).await.body["reservationId"].clone();
    let failed = Uuid::new_v4();
    app.call(
        Method::POST,
        &format!("/payment/{failed}"),
        Some(&bob_token),
        Some(json!({"reservationId": bobs_reservation})),
    )
    .await;
    // expired, by the sweeper
    sqlx::query(
        "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, expires_at)
         VALUES ($1, $2, $3, $4, 3, 60, 'HELD', now() - interval '1 second')",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::new_v4())
    .bind(bob)
    .bind(date)
    .execute(&pipeline.pool)
    .await
    .unwrap();
    for (token, path) in [
        (&alice_token, format!("/payment/{paid}?wait=20")),
        (&bob_token, format!("/payment/{failed}?wait=20")),
        (&bob_token, format!("/reservation/{taken}?wait=20")),
    ] {
        let reply = app.call(Method::GET, &path, Some(token), None).await;
        assert_ne!(reply.body["status"], "PENDING", "{path}");
    }

    let seen = testing::eventually("all six event types", DEADLINE, || {
        let mut messages = pipeline.read_topic(Topic::ReservationEvents);
        messages.extend(pipeline.read_topic(Topic::PaymentEvents));
        let types: HashSet<String> = messages
            .iter()
            .filter_map(|m| header(m, "ce_type"))
            .collect();
        let done = ALL_TYPES
            .iter()
            .all(|t| types.contains(&format!("seatline.{t}")));
        async move { done.then_some(messages) }
    })
    .await;
    let mut checked = HashSet::new();
    for m in &seen {
        checked.insert(check_event(m));
    }
    assert_eq!(checked.len(), ALL_TYPES.len(), "checked {checked:?}");
}

#[test]
fn every_event_type_has_a_schema_and_is_in_the_asyncapi_document() {
    let asyncapi = std::fs::read_to_string(docs().join("asyncapi.yaml")).unwrap();
    assert!(asyncapi.starts_with("asyncapi: 3."));
    for t in ALL_TYPES {
        let _ = schema(t);
        assert!(
            asyncapi.contains(&format!("events/{t}.schema.json")),
            "{t} payload not referenced"
        );
        assert!(asyncapi.contains(&format!("seatline.{t}")), "{t} not named");
    }
}
