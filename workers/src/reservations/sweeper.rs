//! The hold sweeper: marks holds past `expires_at` EXPIRED and writes `reservation.expired`.
//!
//! A seat is reservable again the moment its hold expires (deciders judge by `expires_at`);
//! the sweeper only makes the state and the event visible within a few seconds when nobody asks
//! for the seat. It takes only the seat locks that are free ([`try_lock_seats`]), so it never
//! waits on a decider: a busy seat is swept next round, or expired by the decider itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use seatline_shared::messages::ReservationExpired;

use crate::decision::{try_lock_seats, SeatRef};
use crate::outbox::{self, NewEvent};

const BATCH: i64 = 500;

#[derive(sqlx::FromRow)]
struct Expired {
    id: Uuid,
    user_id: Uuid,
    concert_date_id: i64,
    seat_no: i32,
    expired_at: DateTime<Utc>,
}

/// One sweep of up to `BATCH` expired holds. Returns how many were expired.
pub async fn sweep_once(pool: &PgPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let due: Vec<SeatRef> = sqlx::query_as(
        "SELECT concert_date_id, seat_no FROM reservations
         WHERE status = 'HELD' AND expires_at <= now()
         ORDER BY expires_at
         LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let locked = try_lock_seats(&mut tx, &due).await?;
    let (dates, numbers): (Vec<i64>, Vec<i32>) = locked.into_iter().unzip();
    // Read again under the locks: a decider that held one may have expired or replaced the
    // hold meanwhile, and this statement sees what it committed.
    let expired: Vec<Expired> = sqlx::query_as(
        "UPDATE reservations r SET status = 'EXPIRED', expired_at = now()
         FROM unnest($1::bigint[], $2::int[]) AS k(d, n)
         WHERE r.concert_date_id = k.d AND r.seat_no = k.n
           AND r.status = 'HELD' AND r.expires_at <= now()
         RETURNING r.id, r.user_id, r.concert_date_id, r.seat_no, r.expired_at",
    )
    .bind(&dates)
    .bind(&numbers)
    .fetch_all(&mut *tx)
    .await?;
    let events: Vec<NewEvent> = expired
        .iter()
        .map(|r| {
            super::expired_event(ReservationExpired {
                reservation_id: r.id,
                user_id: r.user_id,
                concert_date_id: r.concert_date_id,
                seat_no: r.seat_no,
                expired_at: r.expired_at,
            })
        })
        .collect();
    outbox::write(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(expired.len())
}

/// Sweeps every `interval` until `shutdown`.
pub async fn run(pool: PgPool, interval: Duration, shutdown: CancellationToken) {
    crate::every(interval, &shutdown, || async {
        loop {
            match sweep_once(&pool).await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(expired = n, "expired holds swept");
                    break;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "hold sweep failed; retrying next tick");
                    break;
                }
            }
        }
    })
    .await;
    tracing::info!("hold sweeper stopped");
}
