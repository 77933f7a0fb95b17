//! What must hold after every run, whatever the load: no seat held or sold twice, every
//! accepted request decided, money conserved. The bench exits non-zero if any fails.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Invariants {
    pub seats_held_or_sold_twice: i64,
    pub accepted_without_outcome: i64,
    pub balances_plus_payments: i64,
    pub charges: i64,
    pub ok: bool,
}

pub async fn check(pool: &PgPool, accepted: &[Uuid]) -> anyhow::Result<Invariants> {
    let (twice,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT 1 FROM reservations WHERE status IN ('HELD', 'CONFIRMED')
                               GROUP BY concert_date_id, seat_no HAVING count(*) > 1) t",
    )
    .fetch_one(pool)
    .await?;
    // Stragglers get a minute: the requests were acknowledged, so they must be decided.
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = loop {
        let (missing,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM unnest($1::uuid[]) AS a(id)
             LEFT JOIN processed_requests p ON p.request_id = a.id WHERE p.request_id IS NULL",
        )
        .bind(accepted)
        .fetch_one(pool)
        .await?;
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (balances_plus_payments, charges): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(balance), 0) FROM users)::bigint
                + (SELECT coalesce(sum(amount), 0) FROM payments WHERE status = 'PAID')::bigint,
                (SELECT coalesce(sum(amount), 0) FROM point_ledger WHERE kind = 'CHARGE')::bigint",
    )
    .fetch_one(pool)
    .await?;
    Ok(Invariants {
        seats_held_or_sold_twice: twice,
        accepted_without_outcome: missing,
        balances_plus_payments,
        charges,
        ok: twice == 0 && missing == 0 && balances_plus_payments == charges,
    })
}
