//! The statistics refresher: a plan cached while a growing table was tiny is replaced once the
//! table has grown.

use seatline_shared::testing;
use seatline_workers::statistics;
use sqlx::{PgConnection, PgPool};

async fn add_inbox_rows(pool: &PgPool, n: i64) {
    sqlx::query(
        "INSERT INTO processed_requests
             (request_id, kind, user_id, outcome, source_topic, source_partition, source_offset)
         SELECT gen_random_uuid(), 'RESERVATION', gen_random_uuid(), 'HELD', 't', 0, g
         FROM generate_series(1, $1) AS g",
    )
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// The plan the connection would run the prepared inbox lookup with.
async fn inbox_lookup_plan(conn: &mut PgConnection) -> String {
    testing::plan(
        conn,
        sqlx::query_as("EXPLAIN EXECUTE inbox('{00000000-0000-0000-0000-000000000001}')"),
    )
    .await
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_plan_cached_on_a_tiny_table_is_replanned_once_the_table_has_grown(pool: PgPool) {
    add_inbox_rows(&pool, 100).await;
    // The deciders' inbox lookup, prepared and cached as a generic plan while the table is tiny.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "PREPARE inbox(uuid[]) AS
         SELECT request_id FROM processed_requests WHERE request_id = ANY($1)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let tiny = inbox_lookup_plan(&mut conn).await;
    assert!(tiny.contains("Seq Scan"), "{tiny}");
    assert!(
        statistics::refresh_once(&pool).await.unwrap().is_empty(),
        "a tiny table is left alone"
    );

    // The table grows; the cached plan stays as it was.
    add_inbox_rows(&pool, 20_000).await;
    let stale = inbox_lookup_plan(&mut conn).await;
    assert!(stale.contains("Seq Scan"), "{stale}");

    let analyzed = statistics::refresh_once(&pool).await.unwrap();
    assert!(
        analyzed.contains(&"processed_requests".to_owned()),
        "{analyzed:?}"
    );
    let fresh = inbox_lookup_plan(&mut conn).await;
    assert!(
        fresh.contains("processed_requests_pkey") && !fresh.contains("Seq Scan"),
        "{fresh}"
    );
    // Until it doubles again, the table is not analyzed again.
    assert!(statistics::refresh_once(&pool).await.unwrap().is_empty());

    // The refresher samples less than a default ANALYZE: a histogram of 11 bounds, not 101.
    let (bounds,): (i32,) = sqlx::query_as(
        "SELECT cardinality(histogram_bounds::text::text[]) FROM pg_stats
         WHERE tablename = 'processed_requests' AND attname = 'source_offset'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(bounds, 11);
}

/// JSON payloads are never filtered on, so ANALYZE skips them (they were most of its cost).
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn analyze_skips_the_payload_columns(pool: PgPool) {
    sqlx::query(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent)
         SELECT gen_random_uuid(), 'reservation', g::text, 'seatline.test',
                json_build_object('n', g), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
         FROM generate_series(1, 1000) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE outbox").execute(&pool).await.unwrap();
    let mut columns: Vec<(String,)> =
        sqlx::query_as("SELECT attname::text FROM pg_stats WHERE tablename = 'outbox'")
            .fetch_all(&pool)
            .await
            .unwrap();
    columns.sort();
    let columns: Vec<String> = columns.into_iter().map(|(c,)| c).collect();
    assert!(columns.contains(&"seq".to_owned()), "{columns:?}");
    assert!(!columns.contains(&"payload".to_owned()), "{columns:?}");
    assert!(!columns.contains(&"traceparent".to_owned()), "{columns:?}");

    let (requests_payload,): (i32,) = sqlx::query_as(
        "SELECT attstattarget::int FROM pg_attribute
         WHERE attrelid = 'requests'::regclass AND attname = 'payload'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(requests_payload, 0);
}

/// The inbox and the outbox gain a row per decision, so autovacuum analyzes them often: a plain
/// `ANALYZE`, as autovacuum runs it, samples them lightly too (a histogram of 11 bounds, not 101),
/// and the inbox lookup still plans on its index.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn autovacuum_samples_the_inbox_and_the_outbox_lightly(pool: PgPool) {
    add_inbox_rows(&pool, 20_000).await;
    sqlx::query(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
         SELECT gen_random_uuid(), 'seat', g::text, 'seatline.test', json_build_object('n', g)
         FROM generate_series(1, 20000) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE processed_requests, outbox")
        .execute(&pool)
        .await
        .unwrap();

    let histograms: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT tablename::text, attname::text,
                cardinality(histogram_bounds::text::text[])
         FROM pg_stats
         WHERE tablename IN ('processed_requests', 'outbox') AND histogram_bounds IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in ["processed_requests", "outbox"] {
        assert!(
            histograms.iter().any(|(t, _, _)| t == table),
            "{table} has histograms: {histograms:?}"
        );
    }
    assert!(
        histograms.iter().all(|(_, _, bounds)| *bounds <= 11),
        "{histograms:?}"
    );

    let plan = testing::plan(
        &pool,
        sqlx::query_as(
            "EXPLAIN SELECT request_id FROM processed_requests
             WHERE request_id = '00000000-0000-0000-0000-000000000001'",
        ),
    )
    .await;
    assert!(plan.contains("processed_requests_pkey"), "{plan}");
}
