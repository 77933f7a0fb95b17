//! Seatline's workers.
//!
//! # Layout
//! - [`config`]: settings and the command line.
//! - [`queue`]: the waiting queue's admitter.
//! - [`seed`]: demo data.
//!
//! [`run`] starts every long-running worker and stops them all on shutdown.

pub mod config;
pub mod queue;
pub mod seed;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use config::WorkersConfig;

/// Applies migrations; the workers own the schema.
pub async fn migrate(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    seatline_shared::MIGRATOR
        .run(pool)
        .await
        .context("applying migrations")?;
    Ok(())
}

/// Runs every worker until `shutdown` completes, then stops them and waits for each.
pub async fn run(
    config: WorkersConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = seatline_shared::db::pool(&config.database)?;
    migrate(&pool).await?;
    seatline_shared::kafka::ensure_topics(&config.kafka, Duration::from_secs(30))
        .await
        .context("creating topics")?;

    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(queue::admitter::run(
        pool.clone(),
        config.queue.clone(),
        config.admit_interval,
        cancel.clone(),
    ));
    tracing::info!("seatline-workers running");

    shutdown.await;
    cancel.cancel();
    while let Some(result) = tasks.join_next().await {
        if let Err(err) = result {
            tracing::error!(error = %err, "a worker task failed");
        }
    }
    pool.close().await;
    tracing::info!("seatline-workers stopped");
    Ok(())
}
