//! The waiting queue: `POST /client/token` issues a token with a place in line,
//! `GET /client/token` reports the place (and keeps it: a poll counts as presence).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seatline_shared::domain::TokenStatus;
use seatline_shared::queue::{self, TokenView};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::QueueToken;
use super::error::{ApiError, Problem};
use super::extract::Json;
use crate::state::AppState;
use crate::tokens::TokenClaims;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueTokenRequest {
    pub user_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user_id: Uuid,
    #[schema(value_type = TokenStatus)]
    pub status: String,
    /// Place in line, 1 for the next to be admitted; 0 once ACTIVE.
    pub position: i64,
    pub estimated_wait_seconds: i64,
    /// When the token stops being valid: for ACTIVE, its expiry; for WAITING, the moment it
    /// would be dropped if it stops polling.
    pub expires_at: Option<DateTime<Utc>>,
}

fn token_response(state: &AppState, view: &TokenView) -> TokenResponse {
    TokenResponse {
        token: state.tokens.sign(TokenClaims {
            token_id: view.id,
            user_id: view.user_id,
        }),
        user_id: view.user_id,
        status: view.status.clone(),
        position: view.position,
        estimated_wait_seconds: view.estimated_wait_seconds(&state.config.queue),
        expires_at: view.valid_until(&state.config.queue),
    }
}

/// Take a place in line. The first token creates the user (balance 0). A user whose token is
/// still live gets the same token and place back (200).
#[utoipa::path(post, path = "/client/token", tag = "queue", request_body = IssueTokenRequest, responses(
    (status = 201, description = "new token", body = TokenResponse),
    (status = 200, description = "the user's live token", body = TokenResponse),
    (status = 422, description = "invalid body", body = Problem, content_type = "application/problem+json"),
))]
pub async fn issue(
    State(state): State<AppState>,
    Json(request): Json<IssueTokenRequest>,
) -> Result<Response, ApiError> {
    if request.user_id.is_nil() {
        return Err(ApiError::Unprocessable(
            "userId must not be the nil UUID".into(),
        ));
    }
    let issued = state.token_issuer.issue(request.user_id).await?;
    let status = if issued.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(token_response(&state, &issued.token))).into_response())
}

/// The token's status and place in line. Polling keeps a waiter in line.
#[utoipa::path(get, path = "/client/token", tag = "queue", security(("queueToken" = [])), responses(
    (status = 200, description = "token status", body = TokenResponse),
    (status = 401, description = "missing, invalid or expired token", body = Problem, content_type = "application/problem+json"),
))]
pub async fn status(
    State(state): State<AppState>,
    QueueToken(view): QueueToken,
) -> Result<Json<TokenResponse>, ApiError> {
    let view = queue::poll_token(&state.db, view, &state.config.queue)
        .await?
        .ok_or(ApiError::Unauthorized("invalid token"))?;
    Ok(Json(token_response(&state, &view)))
}
