//! Authentication extractors.
//!
//! - [`QueueToken`]: any live queue token (WAITING or ACTIVE); 401 when missing, malformed,
//!   tampered, unknown or no longer live.
//! - [`ActiveToken`]: an admitted (ACTIVE) token; a WAITING one gets 403 with its position.
//! - [`Admin`]: the operators' `ADMIN_TOKEN`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use seatline_shared::domain::TokenStatus;
use seatline_shared::queue::TokenView;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::state::AppState;

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized("malformed Authorization header"));
    }
    Ok(token.trim())
}

/// The claims of a validly signed bearer token; 401 otherwise.
fn signed_claims(parts: &Parts, state: &AppState) -> Result<crate::tokens::TokenClaims, ApiError> {
    state
        .tokens
        .verify(bearer(parts)?)
        .ok_or(ApiError::Unauthorized("invalid token"))
}

/// A verified, live queue token.
#[derive(Debug, Clone)]
pub struct QueueToken(pub TokenView);

impl FromRequestParts<AppState> for QueueToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = signed_claims(parts, state)?;
        // The hot path: an admitted token seen within TOKEN_CACHE_TTL skips the database.
        // Only ACTIVE tokens are cached; a WAITING one's place in line changes every moment.
        if let Some(view) = state.cache.active_token(claims.user_id, claims.token_id) {
            if view.is_live(&state.config.queue) {
                return Ok(QueueToken(view));
            }
        }
        let view = state
            .token_reader
            .read(claims.token_id)
            .await?
            .filter(|v| v.user_id == claims.user_id)
            .ok_or(ApiError::Unauthorized("invalid token"))?;
        if !view.is_live(&state.config.queue) {
            return Err(ApiError::Unauthorized("token expired"));
        }
        if view.status() == Some(TokenStatus::Active) {
            state.cache.remember_active_token(&view);
        }
        Ok(QueueToken(view))
    }
}

/// A queue token that has been admitted.
#[derive(Debug, Clone)]
pub struct ActiveToken(pub TokenView);

impl FromRequestParts<AppState> for ActiveToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let QueueToken(view) = QueueToken::from_request_parts(parts, state).await?;
        if view.status() != Some(TokenStatus::Active) {
            return Err(ApiError::NotAdmitted {
                position: view.position,
                estimated_wait_seconds: view.estimated_wait_seconds(&state.config.queue),
            });
        }
        Ok(ActiveToken(view))
    }
}

/// An operator holding `ADMIN_TOKEN`.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state
            .config
            .admin_token()
            .ok_or(ApiError::Unauthorized("admin access is not configured"))?;
        let given = bearer(parts)?;
        // Digests have equal length, so the constant-time comparison hides the secret's length too.
        let given = Sha256::digest(given.as_bytes());
        let expected = Sha256::digest(expected.as_bytes());
        if !bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Err(ApiError::Unauthorized("invalid admin token"));
        }
        Ok(Admin)
    }
}

/// The user a token belongs to, even after the token ended (completed by a payment, or
/// expired). Only for reading the user's own request outcomes: a client must be able to read
/// the result of the payment that completed its token.
#[derive(Debug, Clone, Copy)]
pub struct TokenOwner(pub uuid::Uuid);

impl FromRequestParts<AppState> for TokenOwner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = signed_claims(parts, state)?;
        let row: Option<(uuid::Uuid,)> =
            sqlx::query_as("SELECT user_id FROM queue_tokens WHERE id = $1")
                .bind(claims.token_id)
                .fetch_optional(&state.db)
                .await?;
        match row {
            Some((user_id,)) if user_id == claims.user_id => Ok(TokenOwner(user_id)),
            _ => Err(ApiError::Unauthorized("invalid token")),
        }
    }
}
