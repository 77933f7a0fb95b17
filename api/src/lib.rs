//! Seatline's HTTP API.
//!
//! A thin Axum service: synchronous endpoints for the waiting queue, the catalog and the point
//! balance; reservation and payment requests are published to Kafka and answered 202, and
//! their outcomes are read back by polling.
//!
//! # Layout
//! - [`config`]: the API's settings.
//! - [`connection_limit`]: open connections beyond a cap are refused with 503 at once.
//! - [`state`]: what handlers share (pool, producer, config, token signer).
//! - [`tokens`]: signing and verifying queue tokens.
//! - [`hot_cache`]: admitted tokens and seat prices kept in memory, with bounded staleness;
//!   [`token_refresher`] reads the tokens in use again in bulk before their bound runs out.
//! - [`http`]: routes, handlers, extractors and the error mapping.
//! - [`submit`]: publishing asynchronous requests, recording those that carry their own key.
//! - [`request_ids`]: ids of unrecorded submissions, which prove the API issued them.
//! - [`request_recorder`], [`token_issuer`]: request records and places in line, written in
//!   group commits ([`seatline_shared::group_commit`]).
//! - [`event_listener`], [`waiters`]: completion events wake long polls.

pub mod config;
pub mod connection_limit;
pub mod event_listener;
pub mod hot_cache;
pub mod http;
pub mod request_ids;
pub mod request_recorder;
pub mod state;
pub mod submit;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token_issuer;
pub mod token_reader;
pub mod token_refresher;
pub mod tokens;
pub mod waiters;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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

/// Serves on an already-bound listener until `shutdown` completes, then stops accepting and
/// waits for every open connection to finish the request it is serving; idle keep-alive
/// connections are closed at once.
///
/// Connections are served by hyper's HTTP/1.1 connection directly rather than through
/// `axum::serve`, whose protocol-detecting connection (hyper-util's `auto`) held more memory
/// per open connection: 1,000 keep-alive connections, one request each, took the API 27.6 KiB
/// each that way and 15.8 KiB each this way. The API speaks HTTP/1.1 either way.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Serving a `Router` directly rebuilds its route table for every connection (axum calls
    // `with_state` per connection), about 10 KiB each. Built once here, a connection's copy
    // is a reference count.
    let max_connections = state.config.max_client_connections as usize;
    let app = http::router(state).with_state(());
    let mut listener = connection_limit::CappedListener::new(listener, max_connections);
    let http1 = hyper::server::conn::http1::Builder::new();
    let open_connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = http1.serve_connection(TokioIo::new(stream), service);
        let connection = open_connections.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is its own affair, not the server's.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    open_connections.shutdown().await;
    Ok(())
}

/// Starts the event listener that wakes long polls; it stops when `stop` is cancelled.
pub fn spawn_event_listener(
    state: &AppState,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(event_listener::run(
        state.config.kafka.clone(),
        state.waiters.clone(),
        state.cache.clone(),
        stop,
    ))
}

/// Starts the refresher of cached tokens in use; it stops when `stop` is cancelled.
pub fn spawn_token_refresher(
    state: &AppState,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(token_refresher::run(
        state.cache.clone(),
        state.db.clone(),
        state.config.queue.clone(),
        state.config.token_cache_ttl,
        stop,
    ))
}

/// Runs the API: binds `HTTP_ADDR` and serves until `shutdown`.
pub async fn run(
    config: ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = config.http_addr;
    let state = build_state(config).await?;
    let stop = CancellationToken::new();
    let listener_task = spawn_event_listener(&state, stop.clone());
    let refresher_task = spawn_token_refresher(&state, stop.clone());
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "seatline-api listening");
    let result = serve(listener, state, shutdown).await;
    stop.cancel();
    let _ = listener_task.await;
    let _ = refresher_task.await;
    result
}
