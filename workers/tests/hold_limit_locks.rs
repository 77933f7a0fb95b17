//! The deciders' locks. Seats: a batch waits for another batch of the same seat and then sees
//! what it decided, and the sweeper leaves a seat that a batch holds for later. The per-user
//! hold limit across batches decided at the same time (seats of one user live in different
//! partitions): a batch that could give the user a hold waits for another such batch of that
//! user, and a request that cannot take its seat waits for nobody's user lock.

use std::time::Duration;

use chrono::Utc;
use seatline_shared::config::ReservationConfig;
use seatline_shared::domain::RejectReason;
use seatline_shared::messages::ReservationRequested;
use seatline_shared::testing;
use seatline_workers::decision;
use seatline_workers::requests::Incoming;
use seatline_workers::reservations::{self, sweeper, Outcome};
use sqlx::PgPool;
use uuid::Uuid;

fn request(user: Uuid, date: i64, seat: i32) -> Vec<Incoming<ReservationRequested>> {
    vec![Incoming {
        message: ReservationRequested {
            request_id: Uuid::now_v7(),
            user_id: user,
            concert_date_id: date,
            seat_no: seat,
            submitted_at: Utc::now(),
        },
        index: 0,
        topic: "test".into(),
        partition: seat,
        offset: 0,
        traceparent: None,
    }]
}

/// Decides `batch` in its own transaction and commits.
async fn decide_and_commit(
    pool: PgPool,
    batch: Vec<Incoming<ReservationRequested>>,
    config: ReservationConfig,
) -> Vec<Outcome> {
    let mut tx = pool.begin().await.unwrap();
    let outcomes = reservations::decide(&mut tx, &batch, &config)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    outcomes
}

/// Waits until some session of this test's database waits for a lock.
async fn wait_until_a_session_waits_for_a_lock(pool: &PgPool) {
    testing::eventually(
        "a session waiting for a lock",
        Duration::from_secs(10),
        || async {
            let (waiting,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        },
    )
    .await
}

/// Decides `first` in a transaction left open, which must give a hold; starts `second` in a
/// transaction of its own and checks that it waits for a lock; then commits `first` and
/// returns what `second` decided.
async fn second_batch_waits_for_the_first(
    pool: &PgPool,
    first: Vec<Incoming<ReservationRequested>>,
    second: Vec<Incoming<ReservationRequested>>,
    config: &ReservationConfig,
) -> Vec<Outcome> {
    let mut open = pool.begin().await.unwrap();
    let outcomes = reservations::decide(&mut open, &first, config)
        .await
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");

    let second = tokio::spawn(decide_and_commit(pool.clone(), second, config.clone()));
    wait_until_a_session_waits_for_a_lock(pool).await;
    assert!(!second.is_finished(), "the second batch did not wait");

    open.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second batch finished after the first committed")
        .unwrap()
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn concurrent_batches_of_one_user_respect_the_hold_limit(pool: PgPool) {
    let config = ReservationConfig {
        max_holds_per_user: 1,
        ..ReservationConfig::default()
    };
    let date = testing::concert_date(&pool, 1000, Default::default()).await;
    let user = testing::user(&pool).await;

    // The first batch holds the user's lock until it commits; the second, for another seat
    // of the same user (another partition), must wait for it.
    let outcomes = second_batch_waits_for_the_first(
        &pool,
        request(user, date, 1),
        request(user, date, 2),
        &config,
    )
    .await;
    assert_eq!(outcomes, vec![Outcome::Rejected(RejectReason::HoldLimit)]);
    let (live,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reservations WHERE user_id = $1 AND status = 'HELD'")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(live, 1);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_request_for_a_taken_seat_does_not_wait_for_the_users_lock(pool: PgPool) {
    let config = ReservationConfig::default();
    let date = testing::concert_date(&pool, 1000, Default::default()).await;
    let (holder, user) = (testing::user(&pool).await, testing::user(&pool).await);
    let taken = decide_and_commit(pool.clone(), request(holder, date, 7), config.clone()).await;
    assert!(matches!(taken[0], Outcome::Held { .. }), "{taken:?}");

    // The user's lock is held by a batch that gives them seat 1, not yet committed.
    let mut open = pool.begin().await.unwrap();
    let outcomes = reservations::decide(&mut open, &request(user, date, 1), &config)
        .await
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Held { .. }), "{outcomes:?}");

    // The same user asks for seat 7, which is taken: refused at once, without waiting.
    let outcomes = tokio::time::timeout(
        Duration::from_secs(5),
        decide_and_commit(pool.clone(), request(user, date, 7), config.clone()),
    )
    .await
    .expect("a request for a taken seat waited for the user's lock");
    assert_eq!(outcomes, vec![Outcome::Rejected(RejectReason::SeatTaken)]);
    open.commit().await.unwrap();
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_batch_waits_for_another_batch_of_its_seat_and_sees_its_hold(pool: PgPool) {
    let config = ReservationConfig::default();
    let date = testing::concert_date(&pool, 1000, Default::default()).await;
    let (first_user, second_user) = (testing::user(&pool).await, testing::user(&pool).await);

    // The first batch holds seat 3's lock until it commits; another user's batch for the same
    // seat (a redelivery to a new partition owner, say) must wait for it.
    let outcomes = second_batch_waits_for_the_first(
        &pool,
        request(first_user, date, 3),
        request(second_user, date, 3),
        &config,
    )
    .await;
    assert_eq!(outcomes, vec![Outcome::Rejected(RejectReason::SeatTaken)]);
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM reservations WHERE concert_date_id = $1 AND seat_no = 3",
    )
    .bind(date)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 1);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_sweeper_leaves_a_seat_that_a_batch_holds_and_sweeps_it_later(pool: PgPool) {
    let config = ReservationConfig::default();
    let date = testing::concert_date(&pool, 1000, Default::default()).await;
    let user = testing::user(&pool).await;
    let held = decide_and_commit(pool.clone(), request(user, date, 5), config).await;
    assert!(matches!(held[0], Outcome::Held { .. }), "{held:?}");
    sqlx::query("UPDATE reservations SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();

    // A batch of the seat is running: the sweeper must neither wait for it nor expire the hold.
    let mut batch = pool.begin().await.unwrap();
    decision::lock_seats(&mut batch, &[(date, 5)])
        .await
        .unwrap();
    let swept = tokio::time::timeout(Duration::from_secs(5), sweeper::sweep_once(&pool))
        .await
        .expect("the sweeper waited for the batch's seat lock")
        .unwrap();
    assert_eq!(swept, 0);

    batch.rollback().await.unwrap();
    assert_eq!(sweeper::sweep_once(&pool).await.unwrap(), 1);
    let (status,): (String,) = sqlx::query_as(
        "SELECT status FROM reservations WHERE concert_date_id = $1 AND seat_no = 5",
    )
    .bind(date)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "EXPIRED");
}
