//! Point balance: read it and charge it. Only the token's own user may (WAITING is fine).

use axum::extract::State;
use axum::http::HeaderMap;
use seatline_shared::points::{self, ChargeError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::QueueToken;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path};
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BalanceResponse {
    pub user_id: Uuid,
    pub balance: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargeRequest {
    /// Points to add: an integer from 1 to CHARGE_MAX.
    pub amount: i64,
}

fn same_user(token_user: Uuid, path_user: Uuid) -> Result<(), ApiError> {
    if token_user != path_user {
        return Err(ApiError::Forbidden(
            "the token belongs to another user".into(),
        ));
    }
    Ok(())
}

/// Reads an optional `Idempotency-Key`: 1 to 200 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

/// The user's point balance.
#[utoipa::path(get, path = "/client/{clientId}/balance", tag = "points", security(("queueToken" = [])),
    params(("clientId" = Uuid, Path)),
    responses(
        (status = 200, body = BalanceResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "another user's token", body = Problem, content_type = "application/problem+json"),
))]
pub async fn balance(
    State(state): State<AppState>,
    QueueToken(token): QueueToken,
    Path(client_id): Path<Uuid>,
) -> Result<Json<BalanceResponse>, ApiError> {
    same_user(token.user_id, client_id)?;
    let balance = points::balance(&state.db, client_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("user not found".into()))?;
    Ok(Json(BalanceResponse {
        user_id: client_id,
        balance,
    }))
}

/// Charge points. With `Idempotency-Key`, a retry returns the first result and charges once.
#[utoipa::path(patch, path = "/user/{userId}/charge", tag = "points", security(("queueToken" = [])),
    params(("userId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ChargeRequest,
    responses(
        (status = 200, body = BalanceResponse),
        (status = 403, description = "another user's token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "amount out of range, balance limit, or a reused key", body = Problem, content_type = "application/problem+json"),
))]
pub async fn charge(
    State(state): State<AppState>,
    QueueToken(token): QueueToken,
    Path(user_id): Path<Uuid>,
    headers: HeaderMap,
    Json(request): Json<ChargeRequest>,
) -> Result<Json<BalanceResponse>, ApiError> {
    same_user(token.user_id, user_id)?;
    let key = idempotency_key(&headers)?;
    let max = state.config.charge_max;
    if request.amount < 1 || request.amount > max {
        return Err(ApiError::Unprocessable(format!(
            "amount must be an integer from 1 to {max}"
        )));
    }
    let charged = points::charge(
        &state.db,
        user_id,
        request.amount,
        state.config.balance_max,
        key.as_deref(),
    )
    .await
    .map_err(|err| match err {
        ChargeError::UserNotFound => ApiError::NotFound("user not found".into()),
        ChargeError::BalanceLimit(_) | ChargeError::IdempotencyKeyReused => {
            ApiError::Unprocessable(err.to_string())
        }
        ChargeError::Database(err) => ApiError::Database(err),
    })?;
    if charged.applied {
        tracing::info!(%user_id, amount = request.amount, balance = charged.balance, "charged");
    }
    Ok(Json(BalanceResponse {
        user_id,
        balance: charged.balance,
    }))
}
