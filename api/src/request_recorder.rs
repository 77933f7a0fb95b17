//! Request records, written in group commits ([`seatline_shared::group_commit`]).
//!
//! A submission that names its own identity (an `Idempotency-Key`, or a client-chosen payment
//! id) is recorded in `requests` before it is published, so that the key maps to one request
//! id from any API instance (see [`crate::submit`]). Concurrent submissions share one
//! multi-row insert, and each still learns whether its own row was written.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

use crate::submit::NewRequest;
use seatline_shared::group_commit::{together_or_each, GroupCommit, Limits};

const LIMITS: Limits = Limits {
    max_batch: 256,
    max_in_flight: 4,
};

/// What the insert did with one request: inserted (with its `submitted_at`), or not, because a
/// request with the same id or idempotency key exists.
pub type Inserted = Option<DateTime<Utc>>;

/// Records requests. Cheap to clone.
#[derive(Clone)]
pub struct RequestRecorder {
    batches: GroupCommit<NewRequest, sqlx::Result<Inserted>>,
}

impl RequestRecorder {
    /// Starts the batching task on the current runtime.
    pub fn spawn(db: PgPool) -> Self {
        let batches = GroupCommit::spawn(LIMITS, move |batch| {
            let db = db.clone();
            async move { record_batch(&db, batch).await }
        });
        Self { batches }
    }

    /// Inserts the request unless one with its id or idempotency key exists, and returns once
    /// the outcome is committed.
    pub async fn insert(&self, request: NewRequest) -> sqlx::Result<Inserted> {
        // Stopped only while the runtime shuts down; the insert may or may not have committed,
        // which a retry of the submission resolves.
        self.batches
            .submit(request)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

async fn record_batch(db: &PgPool, batch: Vec<NewRequest>) -> Vec<sqlx::Result<Inserted>> {
    metrics::histogram!("request_record_batch_size").record(batch.len() as f64);
    together_or_each(
        batch,
        |batch| async move {
            let mut inserted = insert_many(db, &batch).await?;
            Ok(batch.iter().map(|r| inserted.remove(&r.id)).collect())
        },
        |request| async move { insert_one(db, &request).await },
    )
    .await
}

async fn insert_one(db: &PgPool, request: &NewRequest) -> sqlx::Result<Inserted> {
    let inserted: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "INSERT INTO requests (id, kind, user_id, idempotency_key, payload)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING
         RETURNING submitted_at",
    )
    .bind(request.id)
    .bind(request.kind.as_str())
    .bind(request.user_id)
    .bind(request.idempotency_key.as_deref())
    .bind(&request.payload)
    .fetch_optional(db)
    .await?;
    Ok(inserted.map(|(at,)| at))
}

/// One statement for the batch. Rows that conflict, with the table or with each other (two
/// retries of one idempotency key in the same batch), are skipped and come back absent.
async fn insert_many(
    db: &PgPool,
    batch: &[NewRequest],
) -> sqlx::Result<HashMap<Uuid, DateTime<Utc>>> {
    let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let kinds: Vec<&str> = batch.iter().map(|r| r.kind.as_str()).collect();
    let users: Vec<Uuid> = batch.iter().map(|r| r.user_id).collect();
    let keys: Vec<Option<&str>> = batch.iter().map(|r| r.idempotency_key.as_deref()).collect();
    let payloads: Vec<&serde_json::Value> = batch.iter().map(|r| &r.payload).collect();
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO requests (id, kind, user_id, idempotency_key, payload)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[])
         ON CONFLICT DO NOTHING
         RETURNING id, submitted_at",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&users)
    .bind(&keys)
    .bind(&payloads)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}
