//! The catalog, for admitted (ACTIVE) users: concerts, their dates on sale, and seat maps.

use axum::extract::State;
use seatline_shared::catalog::{self, Concert, DateAvailability, SeatView};
use serde::Serialize;

use super::auth::ActiveToken;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConcertList {
    pub concerts: Vec<Concert>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateList {
    pub concert_id: i64,
    pub dates: Vec<DateAvailability>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    pub concert_date_id: i64,
    pub seats: Vec<SeatView>,
}

/// All concerts.
#[utoipa::path(get, path = "/concerts", tag = "catalog", security(("queueToken" = [])), responses(
    (status = 200, body = ConcertList),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, description = "still waiting in line", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_concerts(
    State(state): State<AppState>,
    _: ActiveToken,
) -> Result<Json<ConcertList>, ApiError> {
    Ok(Json(ConcertList {
        concerts: catalog::list_concerts(&state.db).await?,
    }))
}

/// Dates of a concert that are on sale and have seats left.
#[utoipa::path(get, path = "/concerts/{concertId}/dates", tag = "catalog", security(("queueToken" = [])),
    params(("concertId" = i64, Path)),
    responses(
        (status = 200, body = DateList),
        (status = 403, description = "still waiting in line", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown concert", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_dates(
    State(state): State<AppState>,
    _: ActiveToken,
    Path(concert_id): Path<i64>,
) -> Result<Json<DateList>, ApiError> {
    if !catalog::concert_exists(&state.db, concert_id).await? {
        return Err(ApiError::NotFound(format!(
            "concert {concert_id} not found"
        )));
    }
    let dates = catalog::available_dates(&state.db, concert_id).await?;
    Ok(Json(DateList { concert_id, dates }))
}

/// All 50 seats of a date with their status.
#[utoipa::path(get, path = "/concerts/{concertId}/dates/{concertDateId}/seats", tag = "catalog",
    security(("queueToken" = [])),
    params(("concertId" = i64, Path), ("concertDateId" = i64, Path)),
    responses(
        (status = 200, body = SeatMap),
        (status = 403, description = "still waiting in line", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown date, or not this concert's", body = Problem, content_type = "application/problem+json"),
))]
pub async fn list_seats(
    State(state): State<AppState>,
    _: ActiveToken,
    Path((concert_id, concert_date_id)): Path<(i64, i64)>,
) -> Result<Json<SeatMap>, ApiError> {
    let seats = catalog::seats_of_date(&state.db, concert_id, concert_date_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "concert {concert_id} has no date {concert_date_id}"
            ))
        })?;
    Ok(Json(SeatMap {
        concert_date_id,
        seats,
    }))
}
