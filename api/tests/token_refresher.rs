//! The refresher of cached tokens, against real PostgreSQL: a token that requests keep using
//! stays in memory past the cache's bound, read again in bulk; one no request uses expires;
//! one that a payment completed, or whose expiry passed, is dropped by the next read.

use std::time::{Duration, Instant};

use seatline_api::hot_cache::HotCache;
use seatline_api::token_refresher;
use seatline_shared::config::QueueConfig;
use seatline_shared::queue::{self, TokenView};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Issues tokens to `n` new users and admits them with the admitter's own round; returns the
/// rows as read.
async fn active_tokens(pool: &PgPool, n: usize) -> Vec<TokenView> {
    let users: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let config = QueueConfig::default();
    let issued = queue::issue_tokens(pool, &users, &config).await.unwrap();
    let admitted = queue::admit_round(pool, &config).await.unwrap().admitted;
    assert_eq!(
        admitted.len(),
        n,
        "the default settings admit a handful at once"
    );
    let ids: Vec<Uuid> = issued.iter().map(|i| i.token.id).collect();
    queue::token_views(pool, &ids).await.unwrap()
}

fn served(cache: &HotCache, view: &TokenView) -> bool {
    cache.active_token(view.user_id, view.id).is_some()
}

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn a_round_reads_again_only_tokens_used_and_drops_those_that_ended(pool: PgPool) {
    let tokens = active_tokens(&pool, 4).await;
    let [kept, completed, lapsed, idle] = &tokens[..] else {
        panic!("four tokens");
    };
    let cache = HotCache::new(Duration::from_secs(60));
    tokens.iter().for_each(|t| cache.remember_active_token(t));
    for used in [kept, completed, lapsed] {
        assert!(served(&cache, used));
    }
    // As a successful payment ends it.
    let mut conn = pool.acquire().await.unwrap();
    queue::complete_active_token(&mut conn, completed.user_id)
        .await
        .unwrap();
    drop(conn);
    sqlx::query("UPDATE queue_tokens SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(lapsed.id)
        .execute(&pool)
        .await
        .unwrap();

    let config = QueueConfig::default();
    let read = token_refresher::refresh_once(&cache, &pool, &config, Duration::ZERO)
        .await
        .unwrap();

    assert_eq!(read, 3, "the three used tokens, not the idle one");
    // Looked at without counting as uses.
    assert!(cache.has_token_of(kept.user_id), "still ACTIVE: kept");
    assert!(
        !cache.has_token_of(completed.user_id),
        "completed by a payment: dropped"
    );
    assert!(
        !cache.has_token_of(lapsed.user_id),
        "past its expiry: dropped"
    );
    assert!(
        cache.has_token_of(idle.user_id),
        "an idle token is left to expire"
    );
    assert!(
        cache.tokens_to_refresh(Duration::ZERO).is_empty(),
        "nothing was used since the round"
    );
    assert!(served(&cache, kept));
}

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn tokens_in_use_outlive_the_bound_while_unused_ones_expire(pool: PgPool) {
    let tokens = active_tokens(&pool, 2).await;
    let (in_use, unused) = (&tokens[0], &tokens[1]);
    let bound = Duration::from_secs(2);
    let cache = HotCache::new(bound);
    cache.remember_active_token(in_use);
    cache.remember_active_token(unused);
    let written = Instant::now();
    let stop = CancellationToken::new();
    let refresher = tokio::spawn(token_refresher::run(
        cache.clone(),
        pool.clone(),
        QueueConfig::default(),
        bound,
        stop.clone(),
    ));

    // Used every 50 ms for three bounds: without the refresher it would expire after one.
    let mut unused_gone_at = None;
    while written.elapsed() < bound * 3 {
        assert!(
            served(&cache, in_use),
            "a token in use expired {:?} after it was cached",
            written.elapsed()
        );
        if unused_gone_at.is_none() && !cache.has_token_of(unused.user_id) {
            unused_gone_at = Some(written.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_at = unused_gone_at.expect("the unused token expired");
    assert!(gone_at <= bound + Duration::from_millis(500), "{gone_at:?}");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), refresher)
        .await
        .expect("the refresher stops when asked")
        .unwrap();
}
