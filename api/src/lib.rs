//! Seatline's HTTP API.
//!
//! A thin Axum service: synchronous endpoints for the waiting queue, the catalog and the point
//! balance; reservation and payment requests are published to Kafka and answered 202, and
//! their outcomes are read back by polling.
//!
//! # Layout
//! - [`config`]: the API's settings.
//! - [`state`]: what handlers share (pool, producer, config, token signer).
//! - [`tokens`]: signing and verifying queue tokens.
//! - [`http`]: routes, handlers, extractors and the error mapping.

pub mod config;
pub mod http;
pub mod state;
pub mod tokens;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use config::ApiConfig;
use state::AppState;

/// Builds the state from configuration: the pool (lazy) and the producer. Topics are created
/// if missing; a broker that is down is reported by readiness, not fatal at start.
pub async fn build_state(config: ApiConfig) -> anyhow::Result<AppState> {
    let db = seatline_shared::db::pool(&config.database).context("database settings")?;
    let producer = seatline_shared::kafka::producer(&config.kafka).context("kafka producer")?;
    if let Err(err) =
        seatline_shared::kafka::ensure_topics(&config.kafka, Duration::from_secs(10)).await
    {
        tracing::warn!(error = %err, "could not ensure topics at start-up; readiness will tell");
    }
    Ok(AppState::new(config, db, producer))
}

/// Serves on an already-bound listener until `shutdown` completes, then drains in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = http::router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Runs the API: binds `HTTP_ADDR` and serves until `shutdown`.
pub async fn run(
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.http_addr;
    let state = build_state(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "seatline-api listening");
    serve(listener, state, shutdown).await
}
