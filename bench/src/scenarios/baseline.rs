//! `baseline-sync`: the same reservation decisions made the way a synchronous design makes
//! them: one PostgreSQL transaction per request (lock the seat and the user with
//! `SELECT … FOR UPDATE`, read the seat's live reservation and the user's holds, insert the
//! hold and the inbox row), `concurrency` connections in a closed loop, straight against the
//! same database, with no HTTP in front: an upper bound for a synchronous design.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

use super::SeatPicker;
use crate::resources::{CpuSplit, Processes};
use crate::stats::{Recorder, Summary};

#[derive(Debug, Clone, Default, Serialize)]
pub struct BaselineResult {
    pub decisions: u64,
    pub held: u64,
    pub errors: u64,
    pub decisions_per_sec: f64,
    pub latency: Summary,
    /// While the decisions ran. The pool opens most of its connections lazily in that time, so
    /// their start-up is included, as it is in the rate.
    pub cpu: Option<CpuSplit>,
}

/// One synchronous decision. Returns whether the seat was held.
async fn decide(
    pool: &PgPool,
    user: Uuid,
    date: i64,
    seat: i32,
    max_holds: i64,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let on_sale: Option<(i64, bool)> = sqlx::query_as(
        "SELECT s.price, (d.sales_open_at <= now() AND now() < d.sales_close_at)
         FROM seats s JOIN concert_dates d ON d.id = s.concert_date_id
         WHERE s.concert_date_id = $1 AND s.seat_no = $2 FOR UPDATE OF s",
    )
    .bind(date)
    .bind(seat)
    .fetch_optional(&mut *tx)
    .await?;
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    let taken: Option<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM reservations WHERE concert_date_id = $1 AND seat_no = $2
         AND (status = 'CONFIRMED' OR (status = 'HELD' AND expires_at > now()))",
    )
    .bind(date)
    .bind(seat)
    .fetch_optional(&mut *tx)
    .await?;
    let (holds,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reservations WHERE user_id = $1 AND status = 'HELD' AND expires_at > now()")
            .bind(user)
            .fetch_one(&mut *tx)
            .await?;
    let request = Uuid::now_v7();
    let held = matches!(on_sale, Some((_, true))) && taken.is_none() && holds < max_holds;
    let mut reservation = None;
    if held {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'HELD', now() + interval '1 hour')",
        )
        .bind(id)
        .bind(request)
        .bind(user)
        .bind(date)
        .bind(seat)
        .bind(on_sale.map(|(p, _)| p).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        reservation = Some(id);
    }
    sqlx::query(
        "INSERT INTO processed_requests (request_id, kind, user_id, outcome, reservation_id, source_topic, source_partition, source_offset)
         VALUES ($1, 'RESERVATION', $2, $3, $4, 'baseline-sync', 0, 0)",
    )
    .bind(request)
    .bind(user)
    .bind(if held { "HELD" } else { "REJECTED" })
    .bind(reservation)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(held)
}

pub async fn run(
    database_url: &str,
    users: &[Uuid],
    seats: Arc<SeatPicker>,
    concurrency: usize,
    duration: Duration,
    max_holds: i64,
    processes: &Processes,
) -> anyhow::Result<BaselineResult> {
    let pool = PgPoolOptions::new()
        .max_connections(concurrency as u32)
        .connect(database_url)
        .await?;
    let (decisions, held, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let latency = Arc::new(Mutex::new(Recorder::default()));
    let users = Arc::new(users.to_vec());
    let cpu_before = processes.snapshot();
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (pool, seats, users) = (pool.clone(), seats.clone(), users.clone());
        let (decisions, held, errors, latency) = (
            decisions.clone(),
            held.clone(),
            errors.clone(),
            latency.clone(),
        );
        tasks.spawn(async move {
            let mut rng = StdRng::from_entropy();
            while Instant::now() < end {
                let user = users[rng.gen_range(0..users.len())];
                let (date, seat) = seats.pick(&mut rng);
                let t0 = Instant::now();
                match decide(&pool, user, date, seat, max_holds).await {
                    Ok(h) => {
                        decisions.fetch_add(1, Ordering::Relaxed);
                        if h {
                            held.fetch_add(1, Ordering::Relaxed);
                        }
                        latency.lock().expect("lock").record(t0.elapsed());
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = processes.split_since(cpu_before);
    let decisions = decisions.load(Ordering::Relaxed);
    let result = BaselineResult {
        decisions,
        held: held.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        decisions_per_sec: decisions as f64 / elapsed,
        latency: latency.lock().expect("lock").summary(),
        cpu,
    };
    pool.close().await;
    Ok(result)
}
