//! Bench data through the public API: dates with 50 seats each (admin API), and users holding
//! tokens, admitted, with points.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use serde::Serialize;
use uuid::Uuid;

use crate::client::Api;
use crate::resources::{CpuSplit, Processes};
use crate::stats::{Recorder, Summary};

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// Creates a concert and `n` dates of 50 seats; returns the date ids.
pub async fn create_dates(
    api: &Api,
    label: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<i64>> {
    let concert = api
        .create_concert(&format!(
            "Bench {label} {}",
            &Uuid::new_v4().simple().to_string()[..8]
        ))
        .await?;
    let dates: Vec<anyhow::Result<i64>> = stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.create_date(concert, i as i64, 1000).await }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    dates.into_iter().collect()
}

/// Vacuums and analyzes the catalog just created, as autovacuum would have long before a real
/// sale (concerts go on sale days after they are created). Without it, autovacuum processes a
/// freshly inserted million seats during the rush that follows.
pub async fn settle_catalog(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    // VACUUM cannot run in a transaction block, so it goes through the simple protocol.
    sqlx::raw_sql("VACUUM (ANALYZE) concert_dates, seats")
        .execute(pool)
        .await?;
    Ok(())
}

/// Token issuing as measured while creating the users.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Issued {
    pub issued: u64,
    pub issues_per_sec: f64,
    pub latency: Summary,
    pub cpu: Option<CpuSplit>,
}

/// Issues a token to each of `n` new users, `concurrency` at a time.
pub async fn users(
    api: &Api,
    n: usize,
    concurrency: usize,
    processes: &Processes,
) -> anyhow::Result<(Vec<User>, Issued)> {
    let cpu_before = processes.snapshot();
    let started = Instant::now();
    let results: Vec<anyhow::Result<(User, Duration)>> = stream::iter(0..n)
        .map(|_| {
            let api = api.clone();
            async move {
                let id = Uuid::new_v4();
                let t0 = Instant::now();
                let answer = api.issue_token(id).await?;
                anyhow::ensure!(
                    answer.status == 201,
                    "issuing a token: {} {}",
                    answer.status,
                    answer.body
                );
                let token = answer.body["token"].as_str().unwrap_or_default().to_owned();
                Ok((User { id, token }, t0.elapsed()))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = processes.split_since(cpu_before);
    let mut recorder = Recorder::default();
    let mut users = Vec::with_capacity(n);
    for r in results {
        let (user, latency) = r?;
        recorder.record(latency);
        users.push(user);
    }
    Ok((
        users,
        Issued {
            issued: n as u64,
            issues_per_sec: n as f64 / elapsed,
            latency: recorder.summary(),
            cpu,
        },
    ))
}

/// Waits until every user's token is ACTIVE.
pub async fn wait_active(
    api: &Api,
    users: &[User],
    concurrency: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<User> = users.to_vec();
    while !pending.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} users not admitted after {timeout:?}",
            pending.len()
        );
        let states: Vec<(User, bool)> = stream::iter(pending)
            .map(|u| {
                let api = api.clone();
                async move {
                    let active = api
                        .token_status(&u.token)
                        .await
                        .map(|a| a.body["status"] == "ACTIVE")
                        .unwrap_or(false);
                    (u, active)
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        pending = states
            .into_iter()
            .filter(|(_, active)| !active)
            .map(|(u, _)| u)
            .collect();
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Charges every user `amount` points.
pub async fn charge(
    api: &Api,
    users: &[User],
    amount: i64,
    concurrency: usize,
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = stream::iter(users.iter().cloned())
        .map(|u| {
            let api = api.clone();
            async move {
                let a = api.charge(u.id, &u.token, amount).await?;
                anyhow::ensure!(a.status == 200, "charging: {} {}", a.status, a.body);
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}
