//! Token issuing, in group commits ([`seatline_shared::group_commit`]).
//!
//! Every new token takes the next place from one counter row, so one transaction per token
//! serialises arrivals one commit at a time. Concurrent arrivals share a transaction instead,
//! and take their places in arrival order.

use sqlx::PgPool;
use uuid::Uuid;

use seatline_shared::config::QueueConfig;
use seatline_shared::queue::{self, Issued};

use seatline_shared::group_commit::{together_or_each, GroupCommit, Limits};

const LIMITS: Limits = Limits {
    max_batch: 256,
    max_in_flight: 2,
};

/// Issues tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenIssuer {
    batches: GroupCommit<Uuid, sqlx::Result<Issued>>,
}

impl TokenIssuer {
    /// Starts the batching task on the current runtime.
    pub fn spawn(db: PgPool, config: QueueConfig) -> Self {
        let batches = GroupCommit::spawn(LIMITS, move |users| {
            let (db, config) = (db.clone(), config.clone());
            async move { issue_batch(&db, &config, users).await }
        });
        Self { batches }
    }

    /// The user's token: new, or the live one the user already has.
    pub async fn issue(&self, user_id: Uuid) -> sqlx::Result<Issued> {
        self.batches
            .submit(user_id)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

async fn issue_batch(
    db: &PgPool,
    config: &QueueConfig,
    users: Vec<Uuid>,
) -> Vec<sqlx::Result<Issued>> {
    metrics::histogram!("token_issue_batch_size").record(users.len() as f64);
    together_or_each(
        users,
        |users| async move { queue::issue_tokens(db, &users, config).await },
        |user| queue::issue_token(db, user, config),
    )
    .await
}
