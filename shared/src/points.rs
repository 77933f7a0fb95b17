//! Point balances and their append-only ledger. Every change of a balance is one atomic
//! `UPDATE ... RETURNING` guarded by the schema's `CHECK (balance >= 0)`, written in the same
//! transaction as its ledger row, so concurrent charges and payments never lose an update and a
//! balance always equals the sum of its ledger.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error("user not found")]
    UserNotFound,
    #[error("the balance would exceed {0}")]
    BalanceLimit(i64),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The result of a charge: the balance right after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    pub balance: i64,
    /// False when an earlier charge with the same Idempotency-Key is being returned.
    pub applied: bool,
}

pub async fn balance(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|(b,)| b))
}

/// Adds `amount` (already validated > 0) to a user's balance, capped at `balance_max`.
/// With an idempotency key, a retry returns the first result and charges once.
pub async fn charge(
    pool: &PgPool,
    user_id: Uuid,
    amount: i64,
    balance_max: i64,
    idempotency_key: Option<&str>,
) -> Result<Charged, ChargeError> {
    let fingerprint = format!("amount={amount}");
    // Two attempts: a concurrent retry with the same key may win the unique index; the second
    // attempt then finds its row and returns that result.
    for _ in 0..2 {
        if let Some(key) = idempotency_key {
            if let Some(done) = find_keyed_charge(pool, user_id, key, &fingerprint).await? {
                return Ok(done);
            }
        }
        match apply_charge(
            pool,
            user_id,
            amount,
            balance_max,
            idempotency_key,
            &fingerprint,
        )
        .await
        {
            Err(ChargeError::Database(err))
                if crate::db::is_unique_violation(&err, "point_ledger_idempotency_uq") =>
            {
                continue
            }
            other => return other,
        }
    }
    Err(ChargeError::IdempotencyKeyReused)
}

async fn find_keyed_charge(
    pool: &PgPool,
    user_id: Uuid,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Charged>, ChargeError> {
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT balance_after, request_hash FROM point_ledger
         WHERE user_id = $1 AND idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some((balance, Some(hash))) if hash == fingerprint => Ok(Some(Charged {
            balance,
            applied: false,
        })),
        Some(_) => Err(ChargeError::IdempotencyKeyReused),
    }
}

async fn apply_charge(
    pool: &PgPool,
    user_id: Uuid,
    amount: i64,
    balance_max: i64,
    idempotency_key: Option<&str>,
    fingerprint: &str,
) -> Result<Charged, ChargeError> {
    let mut tx = pool.begin().await?;
    let updated: Option<(i64,)> = sqlx::query_as(
        "UPDATE users SET balance = balance + $2
         WHERE id = $1 AND balance <= $3 - $2
         RETURNING balance",
    )
    .bind(user_id)
    .bind(amount)
    .bind(balance_max)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((balance,)) = updated else {
        let exists: Option<(i64,)> = sqlx::query_as("SELECT balance FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match exists {
            None => ChargeError::UserNotFound,
            Some(_) => ChargeError::BalanceLimit(balance_max),
        });
    };
    sqlx::query(
        "INSERT INTO point_ledger (user_id, kind, amount, balance_after, idempotency_key, request_hash)
         VALUES ($1, 'CHARGE', $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(amount)
    .bind(balance)
    .bind(idempotency_key)
    .bind(idempotency_key.map(|_| fingerprint))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Charged {
        balance,
        applied: true,
    })
}

/// Takes `amount` from a user for a payment, inside the caller's transaction. `None` when the
/// balance is short; nothing changes then.
pub async fn deduct_for_payment(
    conn: &mut PgConnection,
    user_id: Uuid,
    amount: i64,
    payment_id: Uuid,
) -> sqlx::Result<Option<i64>> {
    let updated: Option<(i64,)> = sqlx::query_as(
        "UPDATE users SET balance = balance - $2 WHERE id = $1 AND balance >= $2 RETURNING balance",
    )
    .bind(user_id)
    .bind(amount)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((balance,)) = updated else {
        return Ok(None);
    };
    if amount > 0 {
        sqlx::query(
            "INSERT INTO point_ledger (user_id, kind, amount, balance_after, payment_id)
             VALUES ($1, 'PAYMENT', $2, $3, $4)",
        )
        .bind(user_id)
        .bind(-amount)
        .bind(balance)
        .bind(payment_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(balance))
}

/// One ledger row as clients see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub id: i64,
    /// CHARGE or PAYMENT.
    pub kind: String,
    /// Positive for a charge, negative for a payment.
    pub amount: i64,
    pub balance_after: i64,
    pub payment_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}
