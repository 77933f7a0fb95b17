//! Published outbox rows are kept for the retention period, then pruned; unpublished rows never.

use std::time::Duration;

use seatline_workers::outbox::{self, prune, NewEvent};
use sqlx::PgPool;

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn only_published_rows_written_before_the_retention_are_pruned(pool: PgPool) {
    let events: Vec<NewEvent> = (0..3)
        .map(|i| {
            NewEvent::new(
                "seat",
                format!("1:{i}"),
                "reservation.held",
                &serde_json::json!({"n": i}),
                None,
            )
        })
        .collect();
    let mut conn = pool.acquire().await.unwrap();
    outbox::write(&mut conn, &events).await.unwrap();
    // 0: written 8 days ago, published; 1: written an hour ago, published; 2: written 8 days
    // ago, not published yet. The three share a transaction, so `seq` orders them.
    for (event, age) in events.iter().zip(["8 days", "1 hour", "8 days"]) {
        sqlx::query("UPDATE outbox SET created_at = now() - $2::interval WHERE id = $1")
            .bind(event.id)
            .bind(age)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query(
        "UPDATE outbox_relay_cursor SET (txid, seq) = (SELECT txid, seq FROM outbox WHERE id = $1)",
    )
    .bind(events[1].id)
    .execute(&pool)
    .await
    .unwrap();
    let deleted = prune::prune_once(&pool, Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let (left,): (Vec<uuid::Uuid>,) =
        sqlx::query_as("SELECT array_agg(id ORDER BY seq) FROM outbox")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, vec![events[1].id, events[2].id]);
}
