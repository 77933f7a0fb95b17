//! The admitter loop: every `QUEUE_ADMIT_INTERVAL` it runs one admission round (expire ACTIVE
//! tokens, drop idle waiters, admit the next waiters within both limits). Several worker
//! instances may run it; an advisory lock lets one round run at a time.

use std::time::Duration;

use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub async fn run(
    pool: PgPool,
    config: QueueConfig,
    interval: Duration,
    shutdown: CancellationToken,
) {
    crate::every(interval, &shutdown, || async {
        let round = queue::admit_round(&pool, &config).await;
        if let Ok(report) = &round {
            if report.ran {
                metrics::gauge!("queue_active").set(report.active_after as f64);
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
                    active = report.active_after,
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
