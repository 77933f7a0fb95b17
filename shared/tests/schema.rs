//! The schema's last-line invariants, against a fresh real PostgreSQL database per test.

use seatline_shared::testing;
use sqlx::PgPool;
use uuid::Uuid;

async fn date_with_seats(pool: &PgPool) -> i64 {
    testing::concert_date(pool, 1000, [(1, 5000)].into()).await
}

async fn insert_reservation(
    pool: &PgPool,
    user: Uuid,
    date: i64,
    seat: i32,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, expires_at)
         VALUES ($1, $2, $3, $4, $5, 1000, $6, now() + interval '5 minutes')",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(date)
    .bind(seat)
    .bind(status)
    .execute(pool)
    .await
    .map(|_| ())
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_date_gets_fifty_priced_seats(pool: PgPool) {
    let date = date_with_seats(&pool).await;
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT seat_no, price FROM seats WHERE concert_date_id = $1 ORDER BY seat_no",
    )
    .bind(date)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows.first(), Some(&(1, 5000)));
    assert_eq!(rows.last(), Some(&(50, 1000)));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_second_live_hold_on_a_seat_is_refused(pool: PgPool) {
    let date = date_with_seats(&pool).await;
    let (a, b) = (testing::user(&pool).await, testing::user(&pool).await);
    insert_reservation(&pool, a, date, 7, "HELD").await.unwrap();

    let err = insert_reservation(&pool, b, date, 7, "HELD")
        .await
        .unwrap_err();
    assert!(
        seatline_shared::db::is_unique_violation(&err, "reservations_live_seat_uq"),
        "{err}"
    );
    let err = insert_reservation(&pool, b, date, 7, "CONFIRMED")
        .await
        .unwrap_err();
    assert!(
        seatline_shared::db::is_unique_violation(&err, "reservations_live_seat_uq"),
        "{err}"
    );

    // An expired reservation does not block, and other seats are independent.
    insert_reservation(&pool, b, date, 8, "HELD").await.unwrap();
    insert_reservation(&pool, b, date, 9, "EXPIRED")
        .await
        .unwrap();
    insert_reservation(&pool, a, date, 9, "HELD").await.unwrap();
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_negative_balance_is_refused(pool: PgPool) {
    let id = testing::user(&pool).await;
    let err = sqlx::query("UPDATE users SET balance = balance - 1 WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap_err();
    let db = err.as_database_error().expect("database error");
    assert_eq!(db.constraint(), Some("users_balance_check"));
    let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(balance, 0);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_reservation_is_paid_at_most_once(pool: PgPool) {
    let id = testing::user(&pool).await;
    let reservation = Uuid::new_v4();
    let pay = |payment: Uuid| {
        sqlx::query(
            "INSERT INTO payments (id, user_id, reservation_id, status, amount, paid_at)
             VALUES ($1, $2, $3, 'PAID', 100, now())",
        )
        .bind(payment)
        .bind(id)
        .bind(reservation)
        .execute(&pool)
    };
    pay(Uuid::new_v4()).await.unwrap();
    let err = pay(Uuid::new_v4()).await.unwrap_err();
    assert!(seatline_shared::db::is_unique_violation(
        &err,
        "payments_paid_reservation_uq"
    ));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_ledger_is_append_only(pool: PgPool) {
    let id = testing::user(&pool).await;
    sqlx::query("INSERT INTO point_ledger (user_id, kind, amount, balance_after) VALUES ($1, 'CHARGE', 5, 5)")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(sqlx::query("UPDATE point_ledger SET amount = 6")
        .execute(&pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM point_ledger")
        .execute(&pool)
        .await
        .is_err());
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn seat_numbers_stay_within_one_to_fifty(pool: PgPool) {
    let date = date_with_seats(&pool).await;
    let err = sqlx::query("INSERT INTO seats (concert_date_id, seat_no, price) VALUES ($1, 51, 1)")
        .bind(date)
        .execute(&pool)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().constraint(),
        Some("seats_seat_no_check")
    );
}
