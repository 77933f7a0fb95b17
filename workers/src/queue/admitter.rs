//! The admitter loop: every `QUEUE_ADMIT_INTERVAL` it runs one admission round (expire ACTIVE
//! tokens, drop idle waiters, admit the next waiters within both limits). Several worker
//! instances may run it; an advisory lock lets one round run at a time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the ACTIVE gauge is refreshed when no round has counted: rounds count ACTIVE
/// tokens only when their upper bound leaves too little room for those waiting, and a count
/// reads one index entry per token.
const ACTIVE_GAUGE_INTERVAL: Duration = Duration::from_secs(5);

pub async fn run(
    pool: PgPool,
    config: QueueConfig,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let active_counted: Mutex<Option<Instant>> = Mutex::new(None);
    // The first round waits an interval too, so that an admitter set to a long interval (as
    // the tests set it, to admit only by hand) admits nobody at start-up, racing the tokens
    // issued meanwhile; at the default 200 ms nobody notices the wait.
    crate::every_after_an_interval(interval, &shutdown, || async {
        let round = queue::admit_round(&pool, &config).await;
        if let Ok(report) = &round {
            if report.ran {
                refresh_active_gauge(&pool, report.active_after, &active_counted).await;
                metrics::gauge!("queue_waiting").set(report.waiting_after as f64);
                metrics::gauge!("queue_admit_rate").set(report.admit_rate);
                metrics::counter!("queue_admissions_total").increment(report.admitted.len() as u64);
            }
        }
        match round {
            Ok(report)
                if !report.admitted.is_empty()
                    || report.abandoned_waiting > 0
                    || report.expired_active > 0 =>
            {
                tracing::info!(
                    admitted = report.admitted.len(),
                    abandoned = report.abandoned_waiting,
                    expired = report.expired_active,
                    active = ?report.active_after,
                    "admission round"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "admission round failed; retrying next tick"),
        }
    })
    .await;
    tracing::info!("admitter stopped");
}

/// Sets `queue_active` from the round's count, or counts anew when the last count is older
/// than [`ACTIVE_GAUGE_INTERVAL`].
async fn refresh_active_gauge(
    pool: &PgPool,
    counted_by_round: Option<i64>,
    last_counted: &Mutex<Option<Instant>>,
) {
    let due = last_counted
        .lock()
        .expect("not poisoned")
        .is_none_or(|at| at.elapsed() >= ACTIVE_GAUGE_INTERVAL);
    let active = match counted_by_round {
        Some(active) => Some(active),
        None if due => queue::count_active(pool, i64::MAX).await.ok(),
        None => None,
    };
    if let Some(active) = active {
        metrics::gauge!("queue_active").set(active as f64);
        *last_counted.lock().expect("not poisoned") = Some(Instant::now());
    }
}
