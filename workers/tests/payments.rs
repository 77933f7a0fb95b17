//! Payment end to end, against real PostgreSQL and Kafka: money is conserved, moves once per
//! payment id, and paying completes the queue token.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{active_users, Pipeline, DEADLINE};
use rand::{Rng, SeedableRng};
use rdkafka::producer::FutureRecord;
use seatline_shared::config::QueueConfig;
use seatline_shared::kafka::{self, Topic};
use seatline_shared::messages::PaymentRequested;
use seatline_shared::queue::AdmitReport;
use seatline_shared::testing;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn charge(pipeline: &Pipeline, user: Uuid, token: &str, amount: i64) {
    let reply = pipeline
        .app
        .call(
            Method::PATCH,
            &format!("/user/{user}/charge"),
            Some(token),
            Some(json!({"amount": amount})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// Reserves a seat and returns the reservation id once HELD.
async fn hold(pipeline: &Pipeline, token: &str, date: i64, seat: i32) -> Uuid {
    let id = pipeline.reserve_ok(token, date, seat).await;
    let reply = pipeline.status(token, id, 20).await;
    assert_eq!(reply.body["status"], "HELD", "{}", reply.body);
    reply.body["reservationId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn balance(pool: &PgPool, user: Uuid) -> i64 {
    let (b,): (i64,) = sqlx::query_as("SELECT balance FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
    b
}

/// The money invariants over the whole database.
async fn assert_money_conserved(pool: &PgPool) {
    let (balances, paid, charges): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(balance), 0)::bigint FROM users),
                (SELECT coalesce(sum(amount), 0)::bigint FROM payments WHERE status = 'PAID'),
                (SELECT coalesce(sum(amount), 0)::bigint FROM point_ledger WHERE kind = 'CHARGE')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        balances + paid,
        charges,
        "balances {balances} + paid {paid} != charges {charges}"
    );
    let (mismatched,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM users u
         WHERE u.balance <> (SELECT coalesce(sum(amount), 0) FROM point_ledger l WHERE l.user_id = u.id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(mismatched, 0, "a balance differs from its ledger");
    let (ledger_payments, paid_count): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM point_ledger WHERE kind = 'PAYMENT'),
                (SELECT count(*) FROM payments WHERE status = 'PAID' AND amount > 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        ledger_payments, paid_count,
        "one ledger row per paid payment"
    );
    // Every sold seat has exactly one PAID payment, and no seat is sold twice.
    let (bad_sold,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM reservations r
         WHERE r.status = 'CONFIRMED'
           AND (SELECT count(*) FROM payments p WHERE p.reservation_id = r.id AND p.status = 'PAID') <> 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(bad_sold, 0);
    let (double_sold,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT 1 FROM reservations WHERE status = 'CONFIRMED'
                               GROUP BY concert_date_id, seat_no HAVING count(*) > 1) d",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(double_sold, 0);
    let (paid_unconfirmed,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
         WHERE p.status = 'PAID' AND r.status <> 'CONFIRMED'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(paid_unconfirmed, 0);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn two_hundred_users_race_to_reserve_and_pay_and_money_is_conserved(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(1000).await;
    let users = active_users(&pipeline.app, 200).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut tasks = tokio::task::JoinSet::new();
    for (user, token) in users.clone() {
        let app = pipeline.app.clone();
        let (amount, seat) = (rng.gen_range(1..=2500i64), rng.gen_range(1..=50i32));
        let extra_charge = rng.gen_range(1..=50i64);
        tasks.spawn(async move {
            // A charge answers 200, or 401 once a payment has completed the token.
            let charge = |amount: i64| {
                let app = app.clone();
                let token = token.clone();
                async move {
                    let r = app
                        .call(
                            Method::PATCH,
                            &format!("/user/{user}/charge"),
                            Some(&token),
                            Some(json!({"amount": amount})),
                        )
                        .await;
                    assert!(
                        matches!(r.status, StatusCode::OK | StatusCode::UNAUTHORIZED),
                        "{}",
                        r.body
                    );
                    r.status
                }
            };
            assert_eq!(charge(amount).await, StatusCode::OK);
            let r = app.reserve(&token, date, seat).await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
            let id = r.body["requestId"].as_str().unwrap().to_owned();
            let status = app
                .call(
                    Method::GET,
                    &format!("/reservation/{id}?wait=30"),
                    Some(&token),
                    None,
                )
                .await;
            if status.body["status"] != "HELD" {
                return None;
            }
            let reservation = status.body["reservationId"].as_str().unwrap().to_owned();
            let payment_id = Uuid::new_v4();
            // A charge racing the payment on the same balance.
            let pay_path = format!("/payment/{payment_id}");
            let (paid, _) = tokio::join!(
                app.call(
                    Method::POST,
                    &pay_path,
                    Some(&token),
                    Some(json!({"reservationId": reservation}))
                ),
                charge(extra_charge),
            );
            assert_eq!(paid.status, StatusCode::ACCEPTED, "{}", paid.body);
            Some((user, token, payment_id))
        });
    }
    let mut payments = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Some(p) = result.unwrap() {
            payments.push(p);
        }
    }
    assert_eq!(payments.len(), 50, "one holder per seat, 50 seats");
    let mut outcomes = (0, 0);
    for (_, token, payment_id) in &payments {
        let body = pipeline.payment_status(token, *payment_id).await;
        match body["status"].as_str().unwrap() {
            "PAID" => {
                outcomes.0 += 1;
                assert_eq!(body["amount"], 1000);
                for field in [
                    "balanceAfter",
                    "reservationId",
                    "concertDateId",
                    "seatNo",
                    "paidAt",
                ] {
                    assert!(body.get(field).is_some(), "PAID lacks {field}");
                }
            }
            "FAILED" => {
                outcomes.1 += 1;
                assert_eq!(body["reason"], "INSUFFICIENT_BALANCE");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        outcomes.0 > 0 && outcomes.1 > 0,
        "both outcomes exercised: {outcomes:?}"
    );
    assert_money_conserved(&pipeline.pool).await;
    let (sold,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reservations WHERE status = 'CONFIRMED'")
            .fetch_one(&pipeline.pool)
            .await
            .unwrap();
    assert_eq!(sold, outcomes.0);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn paying_after_expiry_or_without_funds_fails_and_moves_nothing(pool: PgPool) {
    let mut pipeline = Pipeline::without_workers(pool).await;
    pipeline.add_worker(|c| c.reservation.hold_ttl = Duration::from_secs(1));
    let date = pipeline.date(700).await;
    let (user, token) = pipeline.app.active_user().await;
    charge(&pipeline, user, &token, 1000).await;

    let expiring = hold(&pipeline, &token, date, 1).await;
    let pool = pipeline.pool.clone();
    testing::eventually(
        "the hold to pass its expiry",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let (passed,): (bool,) =
                    sqlx::query_as("SELECT expires_at <= now() FROM reservations WHERE id = $1")
                        .bind(expiring)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                passed.then_some(())
            }
        },
    )
    .await;
    let late = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&token, late, expiring).await.status,
        StatusCode::ACCEPTED
    );
    let body = pipeline.payment_status(&token, late).await;
    assert_eq!(
        (body["status"].as_str(), body["reason"].as_str()),
        (Some("FAILED"), Some("HOLD_EXPIRED"))
    );
    assert_eq!(balance(&pipeline.pool, user).await, 1000);

    // 1000 points pay for one seat of 700.
    pipeline.stop_workers().await;
    pipeline.add_worker(|_| {});
    let first = hold(&pipeline, &token, date, 2).await;
    let ok = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&token, ok, first).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(pipeline.payment_status(&token, ok).await["status"], "PAID");
    assert_eq!(balance(&pipeline.pool, user).await, 300);
    // Paying completed that token; another user with 100 points cannot pay 700.
    let (user2, token2) = pipeline.app.active_user().await;
    charge(&pipeline, user2, &token2, 100).await;
    let theirs = hold(&pipeline, &token2, date, 4).await;
    let short = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&token2, short, theirs).await.status,
        StatusCode::ACCEPTED
    );
    let body = pipeline.payment_status(&token2, short).await;
    assert_eq!(
        (body["status"].as_str(), body["reason"].as_str()),
        (Some("FAILED"), Some("INSUFFICIENT_BALANCE"))
    );
    assert_eq!(balance(&pipeline.pool, user2).await, 100);
    assert_money_conserved(&pipeline.pool).await;
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_same_payment_id_five_times_at_once_moves_money_once(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(400).await;
    let (user, token) = pipeline.app.active_user().await;
    charge(&pipeline, user, &token, 1000).await;
    let reservation = hold(&pipeline, &token, date, 10).await;
    let payment_id = Uuid::new_v4();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (app, token) = (pipeline.app.clone(), token.clone());
        tasks.spawn(async move {
            app.call(
                Method::POST,
                &format!("/payment/{payment_id}"),
                Some(&token),
                Some(json!({"reservationId": reservation})),
            )
            .await
        });
    }
    let mut accepted = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        // The token may already be completed by the payment when a late duplicate arrives.
        match reply.status {
            StatusCode::ACCEPTED => {
                accepted += 1;
                assert_eq!(reply.body["paymentId"], payment_id.to_string());
            }
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(accepted >= 1);
    assert_eq!(
        pipeline.payment_status(&token, payment_id).await["status"],
        "PAID"
    );
    let topic = pipeline.kafka.topic(Topic::PaymentRequests);
    common::wait_group_caught_up(&pipeline.kafka, &pipeline.kafka.worker_group, &topic).await;
    assert_eq!(balance(&pipeline.pool, user).await, 600);
    let (payments, ledger): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM payments), (SELECT count(*) FROM point_ledger WHERE kind = 'PAYMENT')",
    )
    .fetch_one(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!((payments, ledger), (1, 1));

    // A new payment id for the paid reservation fails ALREADY_PAID. (Paying completed the
    // token; make it ACTIVE again to submit.)
    sqlx::query("UPDATE queue_tokens SET status = 'ACTIVE', expires_at = now() + interval '10 minutes', ended_at = NULL WHERE user_id = $1")
        .bind(user)
        .execute(&pipeline.pool)
        .await
        .unwrap();
    let second = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&token, second, reservation).await.status,
        StatusCode::ACCEPTED
    );
    let body = pipeline.payment_status(&token, second).await;
    assert_eq!(
        (body["status"].as_str(), body["reason"].as_str()),
        (Some("FAILED"), Some("ALREADY_PAID"))
    );
    assert_eq!(balance(&pipeline.pool, user).await, 600);
    assert_money_conserved(&pipeline.pool).await;
}

/// Balances, payments and seats: what a replay must not change.
async fn money_snapshot(pool: &PgPool) -> Vec<String> {
    let mut out = Vec::new();
    for query in [
        "SELECT string_agg(id::text || ':' || balance, ',' ORDER BY id) FROM users",
        "SELECT string_agg(id::text || status || coalesce(reason, '') || amount, ',' ORDER BY id) FROM payments",
        "SELECT string_agg(id::text || status, ',' ORDER BY id) FROM reservations",
        "SELECT count(*)::text FROM point_ledger",
        "SELECT count(*)::text FROM processed_requests",
    ] {
        let (v,): (Option<String>,) = sqlx::query_as(query).fetch_one(pool).await.unwrap();
        out.push(v.unwrap_or_default());
    }
    out
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn replaying_both_request_topics_from_zero_changes_no_money_or_seat(pool: PgPool) {
    let mut pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(300).await;
    let users = active_users(&pipeline.app, 20).await;
    for (i, (user, token)) in users.iter().enumerate() {
        charge(&pipeline, *user, token, if i % 3 == 0 { 100 } else { 1000 }).await;
        let reservation = hold(&pipeline, token, date, i as i32 + 1).await;
        let payment = Uuid::new_v4();
        assert_eq!(
            pipeline.pay(token, payment, reservation).await.status,
            StatusCode::ACCEPTED
        );
        pipeline.payment_status(token, payment).await;
    }
    pipeline.wait_outbox_drained().await;
    pipeline.stop_workers().await;
    let before = money_snapshot(&pipeline.pool).await;

    let group = testing::random_group();
    let replay_group = group.clone();
    pipeline.add_worker(|c| c.kafka.worker_group = replay_group);
    for topic in [Topic::ReservationRequests, Topic::PaymentRequests] {
        common::wait_group_caught_up(&pipeline.kafka, &group, &pipeline.kafka.topic(topic)).await;
    }
    pipeline.stop_workers().await;
    assert_eq!(
        money_snapshot(&pipeline.pool).await,
        before,
        "a replay changed balances, payments or seats"
    );
    assert_money_conserved(&pipeline.pool).await;
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_worker_killed_mid_batch_loses_no_payment_and_double_charges_nobody(pool: PgPool) {
    let pipeline = Pipeline::without_workers(pool).await;
    let mut dates = Vec::new();
    for _ in 0..10 {
        dates.push(pipeline.date(10).await);
    }
    // 400 users, each holding one seat and funded for exactly one payment and a half.
    let mut holds = Vec::new();
    for (i, date) in dates.iter().cycle().take(400).enumerate() {
        let user = Uuid::new_v4();
        let seat = (i / 10) as i32 % 50 + 1;
        sqlx::query("INSERT INTO users (id, balance) VALUES ($1, 15)")
            .bind(user)
            .execute(&pipeline.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO point_ledger (user_id, kind, amount, balance_after) VALUES ($1, 'CHARGE', 15, 15)")
            .bind(user)
            .execute(&pipeline.pool)
            .await
            .unwrap();
        let reservation = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, expires_at)
             VALUES ($1, $2, $3, $4, $5, 10, 'HELD', now() + interval '1 hour')",
        )
        .bind(reservation)
        .bind(Uuid::new_v4())
        .bind(user)
        .bind(*date)
        .bind(seat)
        .execute(&pipeline.pool)
        .await
        .unwrap();
        holds.push((user, reservation, *date, seat));
    }
    // Each payment is sent three times (client retries), plus a second payment id per user.
    let producer = kafka::producer(&pipeline.kafka).unwrap();
    let topic = pipeline.kafka.topic(Topic::PaymentRequests);
    let mut deliveries = Vec::new();
    let mut payment_ids = HashSet::new();
    for round in 0..3 {
        for (i, (user, reservation, date, seat)) in holds.iter().enumerate() {
            let payment_id = Uuid::from_u128(((i as u128) << 8) | if round == 2 { 2 } else { 1 });
            payment_ids.insert(payment_id);
            let msg = PaymentRequested {
                payment_id,
                user_id: *user,
                reservation_id: *reservation,
                concert_date_id: *date,
                seat_no: *seat,
                submitted_at: chrono::Utc::now(),
            };
            let body = serde_json::to_vec(&msg).unwrap();
            let key = kafka::seat_key(*date, *seat);
            deliveries.push(
                producer
                    .send_result(FutureRecord::to(&topic).key(&key).payload(&body))
                    .unwrap(),
            );
        }
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }
    let decided = |pool: PgPool| async move {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM payments")
            .fetch_one(&pool)
            .await
            .unwrap();
        n
    };
    let extra = [("WORKER_BATCH_SIZE", "32")];
    for threshold in [100, 400] {
        let mut child = pipeline.spawn_worker_process(&extra);
        let pool = pipeline.pool.clone();
        testing::eventually("progress before the kill", DEADLINE, || {
            let pool = pool.clone();
            async move { (decided(pool).await >= threshold).then_some(()) }
        })
        .await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        assert!(
            decided(pipeline.pool.clone()).await < 800,
            "the kill should land before the end"
        );
    }
    let mut child = pipeline.spawn_worker_process(&extra);
    let pool = pipeline.pool.clone();
    testing::eventually("all payments decided", DEADLINE, || {
        let pool = pool.clone();
        async move { (decided(pool).await >= 800).then_some(()) }
    })
    .await;
    common::wait_group_caught_up(&pipeline.kafka, &pipeline.kafka.worker_group, &topic).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let (paid, failed, balances): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM payments WHERE status = 'PAID'),
                (SELECT count(*) FROM payments WHERE status = 'FAILED' AND reason = 'ALREADY_PAID'),
                (SELECT sum(balance)::bigint FROM users)",
    )
    .fetch_one(&pipeline.pool)
    .await
    .unwrap();
    assert_eq!(
        (paid, failed),
        (400, 400),
        "every payment decided once: one PAID and one ALREADY_PAID per user"
    );
    assert_eq!(balances, 400 * 5, "each user charged exactly once");
    assert_money_conserved(&pipeline.pool).await;
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn after_payment_the_token_is_done_and_the_next_waiter_is_admitted(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(50).await;
    let config = QueueConfig {
        max_active: 1,
        ..QueueConfig::default()
    };
    let (user, token) = pipeline.app.new_user().await;
    let (_, next_token) = pipeline.app.new_user().await;
    admit_round(&pipeline, &config).await;
    let next = pipeline
        .app
        .call(Method::GET, "/client/token", Some(&next_token), None)
        .await;
    assert_eq!(
        (next.body["status"].as_str(), next.body["position"].as_i64()),
        (Some("WAITING"), Some(1))
    );

    charge(&pipeline, user, &token, 100).await;
    let reservation = hold(&pipeline, &token, date, 5).await;
    let payment = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&token, payment, reservation).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        pipeline.payment_status(&token, payment).await["status"],
        "PAID"
    );

    pipeline
        .reserve(&token, date, 6)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    pipeline
        .app
        .call(Method::GET, "/concerts", Some(&token), None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    // The freed slot goes to the next in line.
    let round = admit_round(&pipeline, &config).await;
    assert_eq!(round.admitted.len(), 1);
    let next = pipeline
        .app
        .call(Method::GET, "/client/token", Some(&next_token), None)
        .await;
    assert_eq!(next.body["status"], "ACTIVE");

    // History: the reservation CONFIRMED, the ledger with the charge and the payment.
    let reservations = pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{user}/reservations"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reservations.status, StatusCode::OK, "{}", reservations.body);
    assert_eq!(reservations.body["items"][0]["status"], "CONFIRMED");
    assert_eq!(reservations.body["items"][0]["seatNo"], 5);
    assert_eq!(reservations.body["items"][0]["price"], 50);
    let ledger = pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{user}/ledger"),
            Some(&token),
            None,
        )
        .await;
    let items = ledger.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["amount"].as_i64()),
        (Some("PAYMENT"), Some(-50))
    );
    assert_eq!(
        (items[1]["kind"].as_str(), items[1]["amount"].as_i64()),
        (Some("CHARGE"), Some(100))
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn payment_submissions_are_validated(pool: PgPool) {
    let pipeline = Pipeline::start(pool).await;
    let date = pipeline.date(50).await;
    let (_, alice) = pipeline.app.active_user().await;
    let (_, bob) = pipeline.app.active_user().await;
    let reservation = hold(&pipeline, &alice, date, 1).await;
    pipeline
        .pay(&alice, Uuid::new_v4(), Uuid::new_v4())
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    pipeline
        .pay(&bob, Uuid::new_v4(), reservation)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    pipeline
        .app
        .call(
            Method::POST,
            &format!("/payment/{}", Uuid::new_v4()),
            Some(&alice),
            Some(json!({"reservationId": "nope"})),
        )
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    pipeline
        .app
        .call(
            Method::POST,
            "/payment/not-a-uuid",
            Some(&alice),
            Some(json!({"reservationId": reservation})),
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    // A payment id is bound to its first request.
    let id = Uuid::new_v4();
    assert_eq!(
        pipeline.pay(&alice, id, reservation).await.status,
        StatusCode::ACCEPTED
    );
    let other = hold(&pipeline, &alice, date, 2).await;
    pipeline
        .pay(&alice, id, other)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    pipeline
        .app
        .call(Method::GET, &format!("/payment/{id}"), Some(&bob), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    // History is private and paginated.
    let (alice_id,): (Uuid,) = sqlx::query_as("SELECT user_id FROM reservations WHERE id = $1")
        .bind(reservation)
        .fetch_one(&pipeline.pool)
        .await
        .unwrap();
    pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{alice_id}/reservations"),
            Some(&bob),
            None,
        )
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let page = pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{alice_id}/reservations?limit=1"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        page.body["items"][0]["reservationId"],
        other.to_string(),
        "newest first"
    );
    let cursor = page.body["nextCursor"].as_str().unwrap();
    let page2 = pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{alice_id}/reservations?limit=1&cursor={cursor}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        page2.body["items"][0]["reservationId"],
        reservation.to_string()
    );
    assert!(page2.body.get("nextCursor").is_none());
    pipeline
        .app
        .call(
            Method::GET,
            &format!("/client/{alice_id}/ledger?limit=0"),
            Some(&alice),
            None,
        )
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
}

/// One admission round with `config`. The pipeline's own admitter runs a round when it starts,
/// and a round that finds the admitter lock held does nothing, so this retries until a round
/// has run.
async fn admit_round(pipeline: &Pipeline, config: &QueueConfig) -> AdmitReport {
    testing::eventually("an admission round that ran", DEADLINE, || async {
        let round = seatline_shared::queue::admit_round(&pipeline.pool, config)
            .await
            .unwrap();
        round.ran.then_some(round)
    })
    .await
}
