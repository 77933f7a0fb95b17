//! The connection pool's settings, against a real PostgreSQL: statements planned once per
//! connection, and a connection that broke while idle replaced before anyone uses it.

use std::time::Duration;

use seatline_shared::db::{pool_with, PING_IF_IDLE_FOR};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn statements_are_planned_once_per_connection(_: PgPoolOptions, connect: PgConnectOptions) {
    let pool = pool_with(connect, 1, Duration::from_secs(3));
    let (mode,): (String,) = sqlx::query_as("SHOW plan_cache_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "force_generic_plan");
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_connection_that_broke_while_idle_is_replaced_before_use(
    admin: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let admin = admin.connect_with(connect.clone()).await.unwrap();
    let pool = pool_with(connect, 1, Duration::from_secs(3));
    let backend = backend_pid(&pool).await.unwrap();
    let (terminated,): (bool,) = sqlx::query_as("SELECT pg_terminate_backend($1, 5000)")
        .bind(backend)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(terminated);

    // The only pooled connection is now dead. Once it has been idle past the bound, the pool
    // checks it before handing it out, finds it broken, and opens another.
    // Being idle is the precondition here, not an outcome to wait for.
    tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(100)).await;
    let replacement = backend_pid(&pool)
        .await
        .expect("the broken connection is replaced, not handed out");
    assert_ne!(replacement, backend);
}

async fn backend_pid(pool: &PgPool) -> sqlx::Result<i32> {
    let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await?;
    Ok(pid)
}
