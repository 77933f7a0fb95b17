//! Seatline's workers.
//!
//! # Layout
//! - [`config`]: settings and the command line; [`cli`] runs it.
//! - [`ops`]: operator commands (replay, dead letters).
//! - [`consumer`]: the ordered, batching Kafka consumer (and the dead-letter topic).
//! - [`requests`]: the batch handler that routes request batches to their decider.
//! - [`decision`]: what deciders share: lock order, the inbox, the transaction clock.
//! - [`reservations`]: where a reservation is decided; the hold sweeper.
//! - [`payments`]: where a payment is decided.
//! - [`outbox`]: writing events transactionally, and the relay that publishes them.
//! - [`queue`]: the waiting queue's admitter.
//! - [`statistics`]: fresh planner statistics for the tables a sale grows.
//! - [`seed`]: demo data.
//!
//! [`Workers::start`] starts every long-running worker; [`Workers::stop`] stops them all.

pub mod cli;
pub mod config;
pub mod consumer;
pub mod decision;
pub mod ops;
pub mod outbox;
pub mod payments;
pub mod queue;
pub mod requests;
pub mod reservations;
pub mod seed;
pub mod statistics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use config::WorkersConfig;
use seatline_shared::kafka::Topic;

/// How often the hold sweeper looks for expired holds.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the tables a sale grows are checked for stale planner statistics.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(2);
/// Most outbox rows one relay round publishes.
const RELAY_BATCH: i64 = 1000;

/// Runs `step` at once and then every `interval` until `shutdown`. A step that overruns
/// delays the next tick instead of bunching ticks up behind it; a step in hand finishes before
/// shutdown is seen.
pub async fn every<F, Fut>(interval: Duration, shutdown: &CancellationToken, step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    every_from(tokio::time::Instant::now(), interval, shutdown, step).await;
}

/// As [`every`], but the first step comes one `interval` after the start, not at once.
pub async fn every_after_an_interval<F, Fut>(
    interval: Duration,
    shutdown: &CancellationToken,
    step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    every_from(
        tokio::time::Instant::now() + interval,
        interval,
        shutdown,
        step,
    )
    .await;
}

async fn every_from<F, Fut>(
    first: tokio::time::Instant,
    interval: Duration,
    shutdown: &CancellationToken,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        step().await;
    }
}

/// Applies migrations; the workers own the schema.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    seatline_shared::MIGRATOR
        .run(pool)
        .await
        .context("applying migrations")?;
    Ok(())
}

/// The running workers of one process.
pub struct Workers {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Workers {
    /// Starts the request consumer, the outbox relay, the hold sweeper, the statistics
    /// refresher and the admitter on `pool`. Topics must exist.
    pub fn start(config: &WorkersConfig, pool: PgPool) -> anyhow::Result<Self> {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let producer = seatline_shared::kafka::producer(&config.kafka).context("kafka producer")?;

        let handler = Arc::new(requests::MergingHandler::spawn(requests::RequestHandler {
            pool: pool.clone(),
            producer: producer.clone(),
            kafka: config.kafka.clone(),
            reservation: config.reservation.clone(),
        }));
        let settings = consumer::ConsumerSettings {
            group_id: config.kafka.worker_group.clone(),
            topics: vec![
                config.kafka.topic(Topic::ReservationRequests),
                config.kafka.topic(Topic::PaymentRequests),
            ],
            batch_size: config.batch_size,
        };
        let (kafka, stop) = (config.kafka.clone(), cancel.clone());
        tasks.spawn(async move {
            if let Err(err) = consumer::run(kafka, settings, handler, stop.clone()).await {
                tracing::error!(error = format!("{err:#}"), "request consumer failed");
                stop.cancel();
            }
        });

        let relay = outbox::relay::Relay {
            pool: pool.clone(),
            producer,
            kafka: config.kafka.clone(),
            batch_size: RELAY_BATCH,
        };
        tasks.spawn(relay.run(cancel.clone()));
        tasks.spawn(reservations::sweeper::run(
            pool.clone(),
            SWEEP_INTERVAL,
            cancel.clone(),
        ));
        tasks.spawn(statistics::run(
            pool.clone(),
            STATISTICS_INTERVAL,
            cancel.clone(),
        ));
        tasks.spawn(queue::admitter::run(
            pool,
            config.queue.clone(),
            config.admit_interval,
            cancel.clone(),
        ));
        Ok(Self { cancel, tasks })
    }

    /// Completes when any worker stopped on its own (a fatal error) or `stop` was called.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await;
    }

    /// Stops every worker and waits for each to finish its current step.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(err) = result {
                tracing::error!(error = %err, "a worker task panicked");
            }
        }
    }
}

/// Runs every worker until `shutdown` completes, then stops them and waits for each.
pub async fn run(
    config: WorkersConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    seatline_shared::metrics::install_with_listener(config.metrics_addr)
        .context("metrics listener")?;
    let pool = seatline_shared::db::pool(&config.database)?;
    migrate(&pool).await?;
    seatline_shared::kafka::ensure_topics(&config.kafka, Duration::from_secs(30))
        .await
        .context("creating topics")?;
    let workers = Workers::start(&config, pool.clone())?;
    tracing::info!("seatline-workers running");
    tokio::select! {
        () = shutdown => {}
        () = workers.stopped() => tracing::error!("a worker stopped unexpectedly; shutting down"),
    }
    workers.stop().await;
    pool.close().await;
    tracing::info!("seatline-workers stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::{every, every_after_an_interval};

    const INTERVAL: Duration = Duration::from_secs(3600);

    /// Steps taken after `elapsed` of paused time, by `every` or, if `delayed`,
    /// `every_after_an_interval`.
    async fn steps_after(delayed: bool, elapsed: Duration) -> u32 {
        let steps = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let (counted, stopped) = (steps.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let step = || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            };
            if delayed {
                every_after_an_interval(INTERVAL, &stopped, step).await;
            } else {
                every(INTERVAL, &stopped, step).await;
            }
        });
        tokio::time::sleep(elapsed).await;
        let taken = steps.load(Ordering::SeqCst);
        stop.cancel();
        task.await.unwrap();
        taken
    }

    #[tokio::test(start_paused = true)]
    async fn every_steps_at_once_and_then_each_interval() {
        assert_eq!(steps_after(false, Duration::from_secs(1)).await, 1);
        assert_eq!(
            steps_after(false, INTERVAL + Duration::from_secs(1)).await,
            2
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_after_an_interval_waits_one_before_its_first_step() {
        assert_eq!(
            steps_after(true, INTERVAL - Duration::from_secs(1)).await,
            0
        );
        assert_eq!(
            steps_after(true, INTERVAL + Duration::from_secs(1)).await,
            1
        );
        assert_eq!(
            steps_after(true, INTERVAL * 2 + Duration::from_secs(1)).await,
            2
        );
    }
}
