//! Group commit of request records.
//!
//! Every accepted submission is recorded in `requests` before it is published, so its 202 is
//! durable. One transaction per submission made the commit (a WAL flush and a round trip) the
//! most frequent thing the database did under load. Concurrent submissions are therefore
//! gathered into one multi-row insert: a submission waits for its batch's commit, exactly as it
//! waited for its own, and nothing is answered before the record is durable.
//!
//! Batches form on their own: while [`MAX_BATCHES_IN_FLIGHT`] inserts are running, new
//! submissions queue, and the next insert takes all of them. An idle system inserts one at a
//! time with no added delay.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::submit::NewRequest;

/// Most records in one insert; bounds the statement's size.
const MAX_BATCH: usize = 256;
/// Inserts running at once. More than one keeps a slow commit from stalling every submission;
/// few keep batches large.
const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Submissions waiting for a batch; beyond this, submitters wait to enqueue.
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

/// What the insert did with one request: inserted (with its `submitted_at`), or not, because a
/// request with the same id or idempotency key exists.
pub type Inserted = Option<DateTime<Utc>>;

struct Pending {
    request: NewRequest,
    reply: oneshot::Sender<sqlx::Result<Inserted>>,
}

/// Handle to the batching task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Clone)]
pub struct RequestRecorder {
    sender: mpsc::Sender<Pending>,
    db: PgPool,
}

impl RequestRecorder {
    /// Starts the batching task on the current runtime.
    pub fn spawn(db: PgPool) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(db.clone(), receiver));
        Self { sender, db }
    }

    /// Inserts the request unless one with its id or idempotency key exists, and returns once
    /// the outcome is committed.
    pub async fn insert(&self, request: NewRequest) -> sqlx::Result<Inserted> {
        let (reply, outcome) = oneshot::channel();
        match self.sender.send(Pending { request, reply }).await {
            Ok(()) => match outcome.await {
                Ok(result) => result,
                // The task ended mid-batch (runtime shutting down); the insert may or may not
                // have committed, which a retry of the submission resolves.
                Err(_) => Err(sqlx::Error::PoolClosed),
            },
            // The task is gone: insert directly rather than refuse.
            Err(mpsc::error::SendError(pending)) => insert_one(&self.db, &pending.request).await,
        }
    }
}

async fn run(db: PgPool, mut receiver: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    loop {
        // Waiting for a free slot before taking work is what lets the queue, and so the next
        // batch, grow while the database is busy.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            record_batch(&db, batch).await;
            drop(slot);
        });
    }
}

async fn record_batch(db: &PgPool, batch: Vec<Pending>) {
    metrics::histogram!("request_record_batch_size").record(batch.len() as f64);
    if batch.len() == 1 {
        let pending = batch.into_iter().next().expect("one");
        let result = insert_one(db, &pending.request).await;
        let _ = pending.reply.send(result);
        return;
    }
    match insert_many(db, &batch).await {
        Ok(mut inserted) => {
            for pending in batch {
                let outcome = inserted.remove(&pending.request.id);
                let _ = pending.reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            // One bad row fails the whole statement; give each request its own answer.
            tracing::warn!(error = %err, size = batch.len(), "batched request insert failed; inserting one by one");
            for pending in batch {
                let result = insert_one(db, &pending.request).await;
                let _ = pending.reply.send(result);
            }
        }
    }
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
async fn insert_many(db: &PgPool, batch: &[Pending]) -> sqlx::Result<HashMap<Uuid, DateTime<Utc>>> {
    let ids: Vec<Uuid> = batch.iter().map(|p| p.request.id).collect();
    let kinds: Vec<&str> = batch.iter().map(|p| p.request.kind.as_str()).collect();
    let users: Vec<Uuid> = batch.iter().map(|p| p.request.user_id).collect();
    let keys: Vec<Option<&str>> = batch
        .iter()
        .map(|p| p.request.idempotency_key.as_deref())
        .collect();
    let payloads: Vec<&serde_json::Value> = batch.iter().map(|p| &p.request.payload).collect();
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
