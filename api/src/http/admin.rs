//! Operators' catalog management, behind `ADMIN_TOKEN`. The `seed` command creates demo data
//! through the same catalog functions.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use seatline_shared::catalog::{self, Concert, ConcertDate, NewConcertDate};
use seatline_shared::domain::SEATS_PER_DATE;
use serde::{Deserialize, Serialize};

use super::auth::Admin;
use super::error::{ApiError, Problem};
use super::extract::{Json, Path};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewConcertRequest {
    pub title: String,
    pub venue: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewDateRequest {
    /// RFC 3339.
    pub starts_at: DateTime<Utc>,
    /// Price of every seat not listed in `seatPrices`.
    pub default_price: i64,
    /// Per-seat prices: `{"<seatNo>": price}`.
    #[serde(default)]
    pub seat_prices: BTreeMap<String, i64>,
    /// Defaults to now.
    pub sales_open_at: Option<DateTime<Utc>>,
    /// Defaults to `startsAt`.
    pub sales_close_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedDate {
    #[serde(flatten)]
    pub date: ConcertDate,
    pub seats: i32,
}

/// Create a concert.
#[utoipa::path(post, path = "/admin/concerts", tag = "admin", security(("adminToken" = [])),
    request_body = NewConcertRequest,
    responses(
        (status = 201, body = Concert),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_concert(
    State(state): State<AppState>,
    _: Admin,
    Json(request): Json<NewConcertRequest>,
) -> Result<(StatusCode, Json<Concert>), ApiError> {
    let concert = catalog::create_concert(&state.db, &request.title, &request.venue).await?;
    tracing::info!(concert_id = concert.id, "concert created");
    Ok((StatusCode::CREATED, Json(concert)))
}

/// Create a date of a concert with its 50 seats.
#[utoipa::path(post, path = "/admin/concerts/{id}/dates", tag = "admin", security(("adminToken" = [])),
    params(("id" = i64, Path)),
    request_body = NewDateRequest,
    responses(
        (status = 201, body = CreatedDate),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_date(
    State(state): State<AppState>,
    _: Admin,
    Path(concert_id): Path<i64>,
    Json(request): Json<NewDateRequest>,
) -> Result<(StatusCode, Json<CreatedDate>), ApiError> {
    let mut seat_prices = BTreeMap::new();
    for (seat, price) in request.seat_prices {
        let seat_no: i32 = seat.parse().map_err(|_| {
            ApiError::Unprocessable(format!("seatPrices: {seat:?} is not a seat number"))
        })?;
        seat_prices.insert(seat_no, price);
    }
    let new = NewConcertDate {
        starts_at: request.starts_at,
        default_price: request.default_price,
        seat_prices,
        sales_open_at: request.sales_open_at,
        sales_close_at: request.sales_close_at,
    };
    let date = catalog::create_concert_date(&state.db, concert_id, &new).await?;
    tracing::info!(
        concert_id,
        concert_date_id = date.id,
        "concert date created"
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedDate {
            date,
            seats: SEATS_PER_DATE,
        }),
    ))
}
