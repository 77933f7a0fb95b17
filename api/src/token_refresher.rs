//! Reads the admitted tokens that requests keep using again, in bulk and off the request path,
//! before their cache entries run out ([`crate::hot_cache`]).
//!
//! Every quarter of `TOKEN_CACHE_TTL`, the entries read at least half of it ago and used since
//! are read again, a thousand tokens a statement, and replaced with the new read (or dropped,
//! when the token is no longer ACTIVE and live). So a token in use is refreshed when it is half
//! to three quarters of the bound old, and no request waits for the database to learn what the
//! cache already knew. The staleness bound is unchanged: every entry served was read at most
//! `TOKEN_CACHE_TTL` ago, since the cache expires entries by when they were last written.
//!
//! When the database cannot be read, the round gives up until the next one; entries then
//! expire as they would without a refresher, and requests read their tokens themselves.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use seatline_shared::config::QueueConfig;
use seatline_shared::domain::TokenStatus;
use seatline_shared::queue::{self, TokenView};

use crate::hot_cache::HotCache;

/// Tokens read per statement.
const CHUNK: usize = 1_000;

/// Refreshes, every quarter of `bound`, the used entries at least half of `bound` old, until
/// `stop`. Returns at once when the token cache is off (`bound` zero).
pub async fn run(
    cache: HotCache,
    db: PgPool,
    queue: QueueConfig,
    bound: Duration,
    stop: CancellationToken,
) {
    if bound.is_zero() {
        return;
    }
    let mut rounds = tokio::time::interval(bound / 4);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = rounds.tick() => {}
        }
        match refresh_once(&cache, &db, &queue, bound / 2).await {
            Ok(refreshed) => {
                metrics::counter!("token_cache_refreshed_total").increment(refreshed as u64);
            }
            Err(err) => {
                metrics::counter!("token_cache_refresh_failures_total").increment(1);
                tracing::warn!(error = %err, "refreshing cached tokens failed; they expire instead");
            }
        }
    }
}

/// One round: reads again every cached token at least `age` old that a request used since it
/// was read. Returns how many were read.
pub async fn refresh_once(
    cache: &HotCache,
    db: &PgPool,
    queue: &QueueConfig,
    age: Duration,
) -> sqlx::Result<usize> {
    // Off the runtime's workers: a scan of a full cache (200,000 entries) takes 100-140 ms,
    // which the requests queued on a worker would wait out.
    let scanned = cache.clone();
    let due = match tokio::task::spawn_blocking(move || scanned.tokens_to_refresh(age)).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(error = %err, "scanning the token cache failed");
            return Ok(0);
        }
    };
    for chunk in due.chunks(CHUNK) {
        let ids: Vec<Uuid> = chunk.iter().map(|(_, token)| *token).collect();
        let found: HashMap<Uuid, TokenView> = queue::token_views(db, &ids)
            .await?
            .into_iter()
            .map(|view| (view.id, view))
            .collect();
        for (user, token) in chunk {
            let still_active = found.get(token).filter(|view| {
                view.user_id == *user
                    && view.status() == Some(TokenStatus::Active)
                    && view.is_live(queue)
            });
            cache.refresh_token(*user, *token, still_active.cloned());
        }
    }
    Ok(due.len())
}
