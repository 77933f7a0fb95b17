//! Seat reservation end to end, against real PostgreSQL and Kafka: API → request topic →
//! ordered workers → database + outbox → events → status.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{active_users, header, Pipeline, DEADLINE};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use seatline_shared::kafka::{self, Topic};
use seatline_shared::messages::ReservationRequested;
use seatline_shared::testing;
use sqlx::PgPool;
use uuid::Uuid;

/// (outcome, reason) of every decided request.
async fn outcomes(pool: &PgPool) -> HashMap<Uuid, (String, Option<String>)> {
    let rows: Vec<(Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT request_id, outcome, reason FROM processed_requests")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().map(|(id, o, r)| (id, (o, r))).collect()
}

/// Live reservations per seat: must never exceed one.
async fn assert_one_holder_per_seat(pool: &PgPool) -> i64 {
    let rows: Vec<(i64, i32, i64)> = sqlx::query_as(
        "SELECT concert_date_id, seat_no, count(*) FROM reservations
         WHERE status IN ('HELD', 'CONFIRMED') GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (date, seat, holders) in &rows {
        assert_eq!(
            *holders, 1,
            "seat {date}:{seat} has {holders} live reservations"
        );
    }
    rows.len() as i64
}

async fn race(pipeline: &Pipeline) {
    let date = pipeline.date(1000).await;
    let users = active_users(&pipeline.app, 500).await;
    let mut submitted = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (_, token)) in users.iter().enumerate() {
        let (app, token) = (pipeline.app.clone(), token.clone());
        let seat = (i % 50) as i32 + 1;
        tasks.spawn(async move {
            let reply = app.reserve(&token, date, seat).await;
            assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
            let id = reply.body["requestId"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap();
            (id, token)
        });
    }
    // Who submitted what, to read each outcome with its submitter's token.
    let mut submitter: HashMap<Uuid, String> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, token) = joined.unwrap();
        submitted.push(id);
        submitter.insert(id, token);
    }
    pipeline.wait_processed(500).await;

    let decided = outcomes(&pipeline.pool).await;
    assert_eq!(decided.len(), 500);
    let held = decided.values().filter(|(o, _)| o == "HELD").count();
    let taken = decided
        .values()
        .filter(|(o, r)| o == "REJECTED" && r.as_deref() == Some("SEAT_TAKEN"))
        .count();
    assert_eq!((held, taken), (50, 450));
    assert_eq!(
        assert_one_holder_per_seat(&pipeline.pool).await,
        50,
        "50 distinct seats held"
    );

    // Clients see the same through the API.
    let mut api_held = 0;
    for id in &submitted {
        let reply = pipeline.status(&submitter[id], *id, 0).await;
        assert_eq!(reply.status, StatusCode::OK);
        if reply.body["status"] == "HELD" {
            api_held += 1;
            assert!(reply.body["reservationId"].is_string());
            assert_eq!(reply.body["price"], 1000);
        } else {
            assert_eq!(reply.body["status"], "REJECTED");
            assert_eq!(reply.body["reason"], "SEAT_TAKEN");
        }
    }
    assert_eq!(api_held, 50);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn five_hundred_users_race_for_fifty_seats(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    race(&pipeline).await;
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_race_with_two_worker_instances_in_one_group(pool: PgPool) {
    let mut pipeline = Pipeline::start(pool).await;
    pipeline.add_worker(|_| {});
    race(&pipeline).await;
}

/// Table contents that a replay must leave unchanged.
async fn snapshot(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for query in [
        "SELECT string_agg(request_id::text || outcome || coalesce(reason, '') || coalesce(reservation_id::text, ''), ',' ORDER BY request_id) FROM processed_requests",
        "SELECT string_agg(id::text || status || seat_no || expires_at::text, ',' ORDER BY id) FROM reservations",
        "SELECT count(*)::text FROM outbox",
        "SELECT string_agg(id::text || balance, ',' ORDER BY id) FROM users",
    ] {
        let (v,): (Option<String>,) = sqlx::query_as(query).fetch_one(pool).await.unwrap();
        out.push(v.unwrap_or_default());
    }
    out
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn replaying_the_request_topic_from_zero_changes_nothing(pool: PgPool) {
    let mut pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(1000).await;
    let users = active_users(&pipeline.app, 60).await;
    for (i, (_, token)) in users.iter().enumerate() {
        pipeline.reserve_ok(token, date, (i % 50) as i32 + 1).await;
    }
    pipeline.wait_processed(60).await;
    pipeline.wait_outbox_drained().await;
    pipeline.stop_workers().await;
    let before = snapshot(&pipeline.pool).await;

    // A fresh group reads the whole topic again from offset 0.
    let replay_group = testing::random_group();
    let group = replay_group.clone();
    pipeline.add_worker(|c| c.kafka.worker_group = group);
    common::wait_group_caught_up(
        &pipeline.kafka,
        &replay_group,
        &pipeline.kafka.topic(Topic::ReservationRequests),
    )
    .await;
    pipeline.stop_workers().await;
    assert_eq!(
        snapshot(&pipeline.pool).await,
        before,
        "a replay changed rows or outcomes"
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_worker_killed_mid_batch_loses_nothing_and_double_books_nothing(pool: PgPool) {
    let pipeline = Pipeline::without_workers(pool).await;
    let mut dates = Vec::new();
    for _ in 0..20 {
        dates.push(pipeline.date(100).await);
    }
    let users: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    for u in &users {
        sqlx::query("INSERT INTO users (id) VALUES ($1)")
            .bind(u)
            .execute(&pipeline.pool)
            .await
            .unwrap();
    }
    // 3,000 requests for 1,000 seats, straight onto the topic.
    let producer = kafka::producer(&pipeline.kafka).unwrap();
    let topic = pipeline.kafka.topic(Topic::ReservationRequests);
    let mut wanted_seats = HashSet::new();
    let mut deliveries = Vec::new();
    for i in 0..3000usize {
        let (date, seat) = (dates[(i * 7) % 20], ((i * 13) % 50) as i32 + 1);
        wanted_seats.insert((date, seat));
        let msg = ReservationRequested {
            request_id: Uuid::now_v7(),
            user_id: users[i % 200],
            concert_date_id: date,
            seat_no: seat,
            submitted_at: chrono::Utc::now(),
        };
        let body = serde_json::to_vec(&msg).unwrap();
        let key = kafka::seat_key(date, seat);
        deliveries.push(
            producer
                .send_result(FutureRecord::to(&topic).key(&key).payload(&body))
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }

    let count = |pool: PgPool| async move {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM processed_requests")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    let extra = [("MAX_HOLDS_PER_USER", "1000"), ("WORKER_BATCH_SIZE", "64")];
    // Kill -9 twice while batches are in flight, then let a third run finish.
    for threshold in [300, 1500] {
        let mut child = pipeline.spawn_worker_process(&extra);
        let pool = pipeline.pool.clone();
        testing::eventually("progress before the kill", DEADLINE, || {
            let pool = pool.clone();
            async move { (count(pool).await >= threshold).then_some(()) }
        })
        .await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        let at_kill = count(pipeline.pool.clone()).await;
        assert!(
            at_kill < 3000,
            "the kill should land before the end (decided {at_kill})"
        );
    }
    let mut child = pipeline.spawn_worker_process(&extra);
    pipeline.wait_processed(3000).await;
    pipeline.wait_outbox_drained().await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let decided = outcomes(&pipeline.pool).await;
    assert_eq!(decided.len(), 3000, "every request decided exactly once");
    let held = decided.values().filter(|(o, _)| o == "HELD").count();
    assert_eq!(held, wanted_seats.len(), "one hold per requested seat");
    assert_eq!(
        assert_one_holder_per_seat(&pipeline.pool).await as usize,
        wanted_seats.len()
    );
    let (orphans,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM processed_requests p LEFT JOIN reservations r ON r.request_id = p.request_id
         WHERE p.outcome = 'HELD' AND r.id IS NULL",
    )
    .fetch_one(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    // Every outbox event reached the topic at least once, and nothing else did.
    let (outbox_ids,): (Vec<Uuid>,) = sqlx::query_as("SELECT array_agg(id) FROM outbox")
        .fetch_one(&pipeline.pool)
        .await
        .unwrap();
    let published: HashSet<Uuid> = pipeline
        .read_topic(Topic::ReservationEvents)
        .iter()
        .map(|m| header(m, "ce_id").unwrap().parse().unwrap())
        .collect();
    let outbox_ids: HashSet<Uuid> = outbox_ids.into_iter().collect();
    assert_eq!(published, outbox_ids);
    assert_eq!(outbox_ids.len(), 3000);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_relay_killed_between_publish_and_cursor_move_republishes_with_the_same_ids(
    pool: PgPool,
) {
    use seatline_workers::outbox::{self, relay, NewEvent};
    let pipeline = Pipeline::without_workers(pool).await;
    let events: Vec<NewEvent> = (0..30)
        .map(|i| {
            NewEvent::new(
                "seat",
                format!("1:{}", i % 5 + 1),
                "reservation.rejected",
                &serde_json::json!({"requestId": Uuid::new_v4(), "n": i}),
                None,
            )
        })
        .collect();
    let mut conn = pipeline.pool.acquire().await.unwrap();
    outbox::write(&mut conn, &events).await.unwrap();
    drop(conn);

    let producer = kafka::producer(&pipeline.kafka).unwrap();
    // The "killed" round: claims 10 rows, publishes them, dies before moving the cursor.
    {
        let mut tx = pipeline.pool.begin().await.unwrap();
        let rows = relay::claim(&mut tx, 10).await.unwrap();
        relay::publish(&producer, &pipeline.kafka, &rows)
            .await
            .unwrap();
        drop(tx);
    }
    let relay = relay::Relay {
        pool: pipeline.pool.clone(),
        producer,
        kafka: pipeline.kafka.clone(),
        batch_size: 7,
    };
    assert_eq!(relay.drain().await.unwrap(), 30);

    let messages = pipeline.read_topic(Topic::ReservationEvents);
    let ids: Vec<Uuid> = messages
        .iter()
        .map(|m| header(m, "ce_id").unwrap().parse().unwrap())
        .collect();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for id in &ids {
        *seen.entry(*id).or_default() += 1;
    }
    assert_eq!(seen.len(), 30, "no event lost");
    for (i, e) in events.iter().enumerate() {
        let expected = if i < 10 { 2 } else { 1 };
        assert_eq!(seen[&e.id], expected, "event {i}");
    }
    // The body carries the same id, and per key the first deliveries keep the outbox order.
    for m in &messages {
        let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
        assert_eq!(
            body["eventId"].as_str().unwrap(),
            header(m, "ce_id").unwrap()
        );
    }
    let mut first_seen_order: HashMap<String, Vec<Uuid>> = HashMap::new();
    let mut by_partition: Vec<_> = messages.iter().collect();
    by_partition.sort_by_key(|m| (m.partition(), m.offset()));
    let mut dedup = HashSet::new();
    for m in by_partition {
        let id: Uuid = header(m, "ce_id").unwrap().parse().unwrap();
        if dedup.insert(id) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            first_seen_order.entry(key).or_default().push(id);
        }
    }
    for (key, ids) in first_seen_order {
        let expected: Vec<Uuid> = events
            .iter()
            .filter(|e| e.aggregate_id == key)
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, expected, "order of key {key}");
    }
}

/// The relay publishes by a cursor. A transaction that wrote its event first (lower `seq`) but
/// commits last must not find the cursor already past it, or its event would never leave.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn an_event_committed_after_a_later_one_is_still_published(pool: PgPool) {
    use seatline_workers::outbox::{self, relay, NewEvent};
    let pipeline = Pipeline::without_workers(pool).await;
    let event = |n: i32| {
        NewEvent::new(
            "seat",
            format!("1:{n}"),
            "reservation.rejected",
            &serde_json::json!({"requestId": Uuid::new_v4(), "n": n}),
            None,
        )
    };
    let (early, late) = (event(1), event(2));
    let relay = relay::Relay {
        pool: pipeline.pool.clone(),
        producer: kafka::producer(&pipeline.kafka).unwrap(),
        kafka: pipeline.kafka.clone(),
        batch_size: 10,
    };
    let mut conn = pipeline.pool.acquire().await.unwrap();
    // The slow transaction holds back every relay on the server, other tests' too, so it is
    // kept to a few statements.
    let mut slow = pipeline.pool.begin().await.unwrap();
    outbox::write(&mut slow, std::slice::from_ref(&early))
        .await
        .unwrap();
    outbox::write(&mut conn, std::slice::from_ref(&late))
        .await
        .unwrap();
    // While the slow transaction runs, the committed later event waits behind it.
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert_eq!(relay::backlog(&pipeline.pool).await.unwrap(), 1);

    slow.commit().await.unwrap();
    drop(conn);
    // Other transactions on the server (other tests) may hold the relay back a moment longer.
    let published = std::cell::Cell::new(0);
    testing::eventually("both events published", DEADLINE, || async {
        published.set(published.get() + relay.drain().await.unwrap());
        (published.get() == 2).then_some(())
    })
    .await;
    assert_eq!(relay::backlog(&pipeline.pool).await.unwrap(), 0);
    let ids: Vec<Uuid> = pipeline
        .read_topic(Topic::ReservationEvents)
        .iter()
        .map(|m| header(m, "ce_id").unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids.into_iter().collect::<HashSet<_>>(),
        HashSet::from([early.id, late.id])
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn an_expired_hold_frees_the_seat_and_is_swept(pool: PgPool) {
    let mut pipeline = Pipeline::without_workers(pool).await;
    pipeline.add_worker(|c| c.reservation.hold_ttl = Duration::from_secs(1));
    let date = pipeline.date(500).await;
    let (_, alice) = pipeline.app.active_user().await;
    let (_, bob) = pipeline.app.active_user().await;
    let first = pipeline.reserve_ok(&alice, date, 9).await;
    assert_eq!(
        pipeline.status(&alice, first, 10).await.body["status"],
        "HELD"
    );
    let early = pipeline.reserve_ok(&bob, date, 9).await;
    assert_eq!(
        pipeline.status(&bob, early, 10).await.body["reason"],
        "SEAT_TAKEN"
    );

    // After the TTL the seat is reservable again, and listed AVAILABLE meanwhile.
    let pool = pipeline.pool.clone();
    let (concert,): (i64,) = sqlx::query_as("SELECT concert_id FROM concert_dates WHERE id = $1")
        .bind(date)
        .fetch_one(&pool)
        .await
        .unwrap();
    let app = &pipeline.app;
    testing::eventually(
        "the hold to pass its expiry",
        Duration::from_secs(10),
        || async {
            let seats = app
                .call(
                    Method::GET,
                    &format!("/concerts/{concert}/dates/{date}/seats"),
                    Some(&bob),
                    None,
                )
                .await;
            (seats.body["seats"][8]["status"] == "AVAILABLE").then_some(())
        },
    )
    .await;
    let again = pipeline.reserve_ok(&bob, date, 9).await;
    assert_eq!(
        pipeline.status(&bob, again, 10).await.body["status"],
        "HELD"
    );

    // The first hold is EXPIRED (by the decider or the sweeper) and its event was written.
    let (status, expired_events): (String, i64) = sqlx::query_as(
        "SELECT r.status, (SELECT count(*) FROM outbox WHERE type = 'reservation.expired' AND payload->>'reservationId' = r.id::text)
         FROM reservations r JOIN processed_requests p ON p.reservation_id = r.id WHERE p.request_id = $1",
    )
    .bind(first)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), expired_events), ("EXPIRED", 1));

    // With nobody asking, the sweeper expires Bob's hold within a few seconds.
    let second_reservation: Uuid = pipeline.status(&bob, again, 0).await.body["reservationId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    testing::eventually("the sweeper", Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            let (status,): (String,) =
                sqlx::query_as("SELECT status FROM reservations WHERE id = $1")
                    .bind(second_reservation)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (status == "EXPIRED").then_some(())
        }
    })
    .await;
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_long_poll_returns_within_200ms_of_the_decision(pool: PgPool) {
    let mut pipeline = Pipeline::without_workers(pool).await;
    let date = pipeline.date(100).await;
    let (_, token) = pipeline.app.active_user().await;
    // Submitted before any worker runs, so the poll is waiting when the decision lands.
    let id = pipeline.reserve_ok(&token, date, 1).await;
    let poll = {
        let (app, token) = (pipeline.app.clone(), token.clone());
        tokio::spawn(async move {
            let reply = app
                .call(
                    Method::GET,
                    &format!("/reservation/{id}?wait=30"),
                    Some(&token),
                    None,
                )
                .await;
            (chrono::Utc::now(), reply.body)
        })
    };
    let waiting_since = Instant::now();
    pipeline.add_worker(|_| {});
    let (answered_at, body) = poll.await.unwrap();
    assert_eq!(body["status"], "HELD");
    let (decided_at,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT processed_at FROM processed_requests WHERE request_id = $1")
            .bind(id)
            .fetch_one(&pipeline.pool)
            .await
            .unwrap();
    let lag = (answered_at - decided_at).num_milliseconds();
    assert!(lag < 200, "answered {lag} ms after the decision");
    assert!(
        waiting_since.elapsed() < Duration::from_secs(30),
        "woken, not timed out"
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_malformed_message_is_dead_lettered_and_the_next_is_decided(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(100).await;
    let (user, token) = pipeline.app.active_user().await;
    let producer = kafka::producer(&pipeline.kafka).unwrap();
    let topic = pipeline.kafka.topic(Topic::ReservationRequests);
    let key = kafka::seat_key(date, 3);
    // Same key, so the same partition, right before a valid request.
    let garbage = FutureRecord::to(&topic)
        .key(&key)
        .payload(&b"{not json"[..])
        .headers(kafka::make_headers([(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]));
    producer
        .send_result(garbage)
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let unknown_user = ReservationRequested {
        request_id: Uuid::now_v7(),
        user_id: Uuid::new_v4(),
        concert_date_id: date,
        seat_no: 3,
        submitted_at: chrono::Utc::now(),
    };
    let body = serde_json::to_vec(&unknown_user).unwrap();
    producer
        .send_result(FutureRecord::to(&topic).key(&key).payload(&body))
        .unwrap()
        .await
        .unwrap()
        .unwrap();

    let id = pipeline.reserve_ok(&token, date, 3).await;
    let reply = pipeline.status(&token, id, 20).await;
    assert_eq!(reply.body["status"], "HELD", "{}", reply.body);

    let dead = testing::eventually("two dead letters", DEADLINE, || {
        let messages = pipeline.read_topic(Topic::DeadLetter);
        async move { (messages.len() >= 2).then_some(messages) }
    })
    .await;
    assert_eq!(dead.len(), 2);
    let garbage = &dead[0];
    assert_eq!(garbage.payload(), Some(&b"{not json"[..]));
    assert_eq!(garbage.key(), Some(key.as_bytes()));
    assert!(header(garbage, "seatline-dlq-error")
        .unwrap()
        .contains("unparseable"));
    assert_eq!(header(garbage, "seatline-dlq-topic").unwrap(), topic);
    assert!(header(garbage, "seatline-dlq-offset").is_some());
    assert!(
        header(garbage, "traceparent").is_some(),
        "original headers are kept"
    );
    assert_eq!(
        header(&dead[1], "seatline-dlq-error").unwrap(),
        "unknown user"
    );
    let (holder,): (Uuid,) = sqlx::query_as(
        "SELECT user_id FROM reservations WHERE concert_date_id = $1 AND seat_no = 3",
    )
    .bind(date)
    .fetch_one(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!(holder, user);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn while_kafka_is_unreachable_submit_answers_503_promptly(pool: PgPool) {
    let mut kafka = testing::kafka_config();
    kafka.bootstrap_servers = "127.0.0.1:1".into();
    let app = seatline_api::testing::TestApp::with_kafka(pool.clone(), kafka);
    let date = {
        let c = seatline_shared::catalog::create_concert(&pool, "C", "V")
            .await
            .unwrap();
        let new = seatline_shared::catalog::NewConcertDate {
            starts_at: chrono::Utc::now() + chrono::Duration::days(1),
            default_price: 1,
            seat_prices: Default::default(),
            sales_open_at: None,
            sales_close_at: None,
        };
        seatline_shared::catalog::create_concert_date(&pool, c.id, &new)
            .await
            .unwrap()
            .id
    };
    let (_, token) = app.active_user().await;
    let started = Instant::now();
    let reply = app.reserve(&token, date, 1).await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.headers.get("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        !detail.contains("127.0.0.1") && !detail.to_lowercase().contains("kafka error"),
        "{detail}"
    );
}
