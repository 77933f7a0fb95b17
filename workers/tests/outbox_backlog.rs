//! The relay's backlog gauge: it counts the rows after the relay's cursor, and reads only those,
//! however large the outbox has grown.

use seatline_shared::testing;
use seatline_workers::outbox::relay::{self, BACKLOG_SQL};
use sqlx::PgPool;

/// `transactions` transactions of 1,000 events each, as deciders write them.
async fn write_events(pool: &PgPool, transactions: usize) {
    for _ in 0..transactions {
        sqlx::query(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
             SELECT gen_random_uuid(), 'seat', '1/' || g, 'reservation.rejected', '{}'
             FROM generate_series(1, 1000) AS g",
        )
        .execute(pool)
        .await
        .unwrap();
    }
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_backlog_count_reads_only_the_rows_after_the_cursor(pool: PgPool) {
    // A sale's outbox, nearly all published. Statistics lag behind the table, as autovacuum's
    // do: it was last analyzed before the newest rows were written.
    write_events(&pool, 100).await;
    sqlx::query("ANALYZE outbox").execute(&pool).await.unwrap();
    write_events(&pool, 2).await;
    sqlx::query(
        "UPDATE outbox_relay_cursor SET (txid, seq) =
             (SELECT txid, seq FROM outbox ORDER BY txid DESC, seq DESC OFFSET 50 LIMIT 1)",
    )
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(relay::backlog(&pool).await.unwrap(), 50);

    // How the count is planned, with the cursor bound as `backlog` binds it.
    let (txid, seq) = relay::cursor(&pool).await.unwrap();
    let plan = testing::plan(
        &pool,
        sqlx::query_as(&format!("EXPLAIN {BACKLOG_SQL}"))
            .bind(txid)
            .bind(seq),
    )
    .await;
    // An index scan walks only the rows after the cursor. A bitmap scan (what the subquery form
    // planned at this size) or parallel workers (at a million rows) mean the planner expected
    // a large part of the table.
    assert!(
        plan.contains("Scan using outbox_commit_order_idx")
            && !plan.contains("Bitmap")
            && !plan.contains("Gather"),
        "the count should read only the backlog, from the index:\n{plan}"
    );
}
