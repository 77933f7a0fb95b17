//! Several admitters at once (as with several worker instances): nobody is admitted twice and
//! nobody is skipped.

use std::collections::HashSet;

use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn concurrent_admitters_admit_each_waiter_once_in_order(pool: PgPool) {
    let config = QueueConfig {
        max_active: 10_000,
        admit_per_sec: 10_000,
        ..QueueConfig::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    // Waiters arrive while four admitters run rounds concurrently.
    {
        let (pool, config) = (pool.clone(), config.clone());
        tasks.spawn(async move {
            for _ in 0..300 {
                queue::issue_token(&pool, Uuid::new_v4(), &config)
                    .await
                    .unwrap();
            }
            Vec::new()
        });
    }
    for _ in 0..4 {
        let (pool, config) = (pool.clone(), config.clone());
        tasks.spawn(async move {
            let mut admitted = Vec::new();
            for _ in 0..60 {
                admitted.extend(queue::admit_round(&pool, &config).await.unwrap().admitted);
            }
            admitted
        });
    }
    let mut all = Vec::new();
    while let Some(admitted) = tasks.join_next().await {
        all.extend(admitted.unwrap());
    }
    // Whatever is still waiting is admitted by one more round.
    all.extend(queue::admit_round(&pool, &config).await.unwrap().admitted);

    let unique: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "someone was admitted twice");
    assert_eq!(all.len(), 300, "someone was skipped");
    // Activation order follows arrival order.
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT seq FROM queue_tokens ORDER BY activated_at, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let seqs: Vec<i64> = rows.into_iter().map(|(s,)| s).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
}
