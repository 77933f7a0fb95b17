//! Token checks against the database, coalesced ([`seatline_shared::group_commit`]).
//!
//! Every authenticated request whose token is not in the hot cache reads its token row. Under
//! load, concurrent reads share one `= ANY` statement instead of a statement (and a pooled
//! connection) each: the database parses, plans and answers once per batch. Each read still
//! sees the row as committed when its batch ran, so nothing is staler than a read of its own.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use seatline_shared::group_commit::{together_or_each, GroupCommit, Limits};
use seatline_shared::queue::{self, TokenView};

const LIMITS: Limits = Limits {
    max_batch: 256,
    max_in_flight: 4,
};

/// Reads tokens by id. Cheap to clone.
#[derive(Clone)]
pub struct TokenReader {
    batches: GroupCommit<Uuid, sqlx::Result<Option<TokenView>>>,
}

impl TokenReader {
    /// Starts the batching task on the current runtime.
    pub fn spawn(db: PgPool) -> Self {
        let batches = GroupCommit::spawn(LIMITS, move |ids| {
            let db = db.clone();
            async move { read_batch(&db, ids).await }
        });
        Self { batches }
    }

    /// The token with its place in line, if it exists.
    pub async fn read(&self, token_id: Uuid) -> sqlx::Result<Option<TokenView>> {
        self.batches
            .submit(token_id)
            .await
            .unwrap_or(Err(sqlx::Error::PoolClosed))
    }
}

async fn read_batch(db: &PgPool, ids: Vec<Uuid>) -> Vec<sqlx::Result<Option<TokenView>>> {
    metrics::histogram!("token_read_batch_size").record(ids.len() as f64);
    together_or_each(
        ids,
        |ids| async move {
            let found: HashMap<Uuid, TokenView> = queue::token_views(db, &ids)
                .await?
                .into_iter()
                .map(|view| (view.id, view))
                .collect();
            // An id asked twice in one batch gets the row both times.
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        },
        |id| async move {
            let mut found = queue::token_views(db, &[id]).await?;
            Ok(found.pop())
        },
    )
    .await
}
