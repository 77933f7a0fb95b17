//! A user's history: reservations and point ledger, newest first, paginated by cursor.
//! The user's token is accepted even after it ended, like the status endpoints.

use axum::extract::State;
use chrono::{DateTime, Utc};
use seatline_shared::points::LedgerEntry;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::TokenOwner;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 20).
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::BadRequest(format!(
                "limit must be from 1 to {MAX_LIMIT}"
            ))),
        }
    }

    fn cursor<T: std::str::FromStr>(&self) -> Result<Option<T>, ApiError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| ApiError::BadRequest("invalid cursor".into()))
            })
            .transpose()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `items` were fetched with `limit + 1` rows: one more than the page means another page
    /// follows, starting after the last item kept.
    fn of(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Self {
        let next_cursor = (items.len() as i64 > limit).then(|| {
            items.truncate(limit as usize);
            items.last().map(&cursor).unwrap_or_default()
        });
        Self { items, next_cursor }
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationEntry {
    pub reservation_id: Uuid,
    /// HELD, CONFIRMED or EXPIRED (a hold past its expiry shows EXPIRED).
    pub status: String,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub price: i64,
    pub held_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

fn own(user: Uuid, path_user: Uuid) -> Result<(), ApiError> {
    if user != path_user {
        return Err(ApiError::Forbidden(
            "the token belongs to another user".into(),
        ));
    }
    Ok(())
}

/// The user's reservations, newest first.
#[utoipa::path(get, path = "/client/{clientId}/reservations", tag = "history", security(("queueToken" = [])),
    params(("clientId" = Uuid, Path), PageParams),
    responses(
        (status = 200, body = Page<ReservationEntry>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "another user's token", body = Problem, content_type = "application/problem+json"),
))]
pub async fn reservations(
    State(state): State<AppState>,
    TokenOwner(user): TokenOwner,
    Path(client_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ReservationEntry>>, ApiError> {
    own(user, client_id)?;
    let limit = page.limit()?;
    // Reservation ids are UUIDv7: ordering by id is ordering by creation.
    let before: Option<Uuid> = page.cursor()?;
    let items: Vec<ReservationEntry> = sqlx::query_as(
        "SELECT id AS reservation_id,
                CASE WHEN status = 'HELD' AND expires_at <= now() THEN 'EXPIRED' ELSE status END AS status,
                concert_date_id, seat_no, price, held_at, expires_at, confirmed_at
         FROM reservations
         WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Page::of(items, limit, |r| {
        r.reservation_id.to_string()
    })))
}

/// The user's point history (charges and payments), newest first.
#[utoipa::path(get, path = "/client/{clientId}/ledger", tag = "history", security(("queueToken" = [])),
    params(("clientId" = Uuid, Path), PageParams),
    responses(
        (status = 200, body = Page<LedgerEntry>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "another user's token", body = Problem, content_type = "application/problem+json"),
))]
pub async fn ledger(
    State(state): State<AppState>,
    TokenOwner(user): TokenOwner,
    Path(client_id): Path<Uuid>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<LedgerEntry>>, ApiError> {
    own(user, client_id)?;
    let limit = page.limit()?;
    let before: Option<i64> = page.cursor()?;
    let items: Vec<LedgerEntry> = sqlx::query_as(
        "SELECT id, kind, amount, balance_after, payment_id, created_at
         FROM point_ledger
         WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(client_id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Page::of(items, limit, |e| e.id.to_string())))
}
