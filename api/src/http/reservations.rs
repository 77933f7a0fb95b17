//! Seat reservation: submit a request (202, decided asynchronously by the workers) and read its
//! outcome, optionally long-polling until it is known.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seatline_shared::catalog;
use seatline_shared::domain::RequestKind;
use seatline_shared::kafka::{seat_key, Topic};
use seatline_shared::messages::{ReservationRequested, RESERVATION_REQUESTED};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{ActiveToken, TokenOwner};
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::points::idempotency_key;
use crate::hot_cache::SeatSet;
use crate::state::AppState;
use crate::submit::{self, NewRequest, Outgoing, Recording};

/// Longest long poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationRequest {
    pub concert_date_id: i64,
    pub seat_no: i32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    pub request_id: Uuid,
    /// Always PENDING.
    pub status: &'static str,
    pub status_url: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// Seconds to wait for the outcome (0 to 30); the answer comes as soon as it is known.
    #[serde(default)]
    pub wait: u64,
}

impl WaitParams {
    pub fn duration(&self) -> Result<Duration, ApiError> {
        if self.wait > MAX_WAIT_SECS {
            return Err(ApiError::BadRequest(format!(
                "wait must be from 0 to {MAX_WAIT_SECS} seconds"
            )));
        }
        Ok(Duration::from_secs(self.wait))
    }
}

/// The outcome of a reservation request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationStatus {
    pub request_id: Uuid,
    /// PENDING, HELD or REJECTED.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concert_date_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_no: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The reservation now: HELD, CONFIRMED (paid) or EXPIRED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_status: Option<String>,
}

/// 202 with the body and a `Location` header pointing at the status.
pub fn accepted_with<T: Serialize>(status_url: String, body: T) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = status_url.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub fn traceparent(headers: &HeaderMap) -> String {
    seatline_shared::telemetry::traceparent_or_new(
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    )
}

/// Ask for a seat. Answers 202 once the request is durably queued; poll `statusUrl`.
#[utoipa::path(post, path = "/reservation", tag = "reservations", security(("queueToken" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key gives the same requestId")),
    request_body = ReservationRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "still waiting in line", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such date or seat", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Kafka cannot take the request now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub async fn submit(
    State(state): State<AppState>,
    ActiveToken(token): ActiveToken,
    headers: HeaderMap,
    Json(request): Json<ReservationRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let (date, seat) = (request.concert_date_id, request.seat_no);
    let seats = match state.cache.date_seats(date) {
        Some(seats) => seats,
        None => {
            let seats: SeatSet = catalog::seat_numbers(&state.db, date)
                .await?
                .into_iter()
                .collect();
            state.cache.remember_date_seats(date, seats);
            seats
        }
    };
    if !seats.contains(seat) {
        return Err(ApiError::NotFound(format!(
            "concert date {date} has no seat {seat}"
        )));
    }
    let user_id = token.user_id;
    // Without a key nothing needs recording: the id itself proves its issue. With one, the
    // record maps the key to one id and refuses it for a different seat.
    let (request_id, submitted_at, recording) = match key {
        None => (
            state.request_ids.issue(RequestKind::Reservation, user_id),
            Utc::now(),
            Recording::Unrecorded,
        ),
        Some(key) => {
            let recorded = submit::record(
                &state,
                &NewRequest {
                    id: Uuid::now_v7(),
                    kind: RequestKind::Reservation,
                    user_id,
                    idempotency_key: Some(key),
                    payload: serde_json::to_value(&request).expect("serialisable"),
                },
            )
            .await?;
            (recorded.id, recorded.submitted_at, (&recorded).into())
        }
    };
    let message = ReservationRequested {
        request_id,
        user_id,
        concert_date_id: request.concert_date_id,
        seat_no: request.seat_no,
        submitted_at,
    };
    let traceparent = traceparent(&headers);
    let seat = seat_key(request.concert_date_id, request.seat_no);
    submit::publish(
        &state,
        Outgoing {
            topic: Topic::ReservationRequests,
            key: &seat,
            request_id,
            message_type: RESERVATION_REQUESTED,
            body: serde_json::to_vec(&message).expect("serialisable"),
            traceparent: &traceparent,
            recording,
        },
    )
    .await?;
    tracing::info!(%request_id, %user_id, seat = %seat, trace_id = seatline_shared::telemetry::trace_id(&traceparent), "reservation request queued");
    let status_url = format!("/reservation/{request_id}");
    Ok(accepted_with(
        status_url.clone(),
        Accepted {
            request_id,
            status: "PENDING",
            status_url,
        },
    ))
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    user_id: Uuid,
    outcome: String,
    reason: Option<String>,
    reservation_id: Option<Uuid>,
    concert_date_id: Option<i64>,
    seat_no: Option<i32>,
    price: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
    reservation_status: Option<String>,
}

/// A decided request is in the workers' inbox. An undecided one is pending if its id proves
/// that it was issued to this user, or if it was recorded for this user (a keyed
/// submission); otherwise it is unknown. Another user's request is indistinguishable from one
/// that does not exist.
async fn load_status(
    state: &AppState,
    request_id: Uuid,
    user_id: Uuid,
) -> Result<ReservationStatus, ApiError> {
    let not_found = || ApiError::NotFound(format!("reservation request {request_id} not found"));
    let decided: Option<StatusRow> = sqlx::query_as(
        "SELECT p.user_id, p.outcome, p.reason, p.reservation_id,
                r.concert_date_id, r.seat_no, r.price, r.expires_at, r.status AS reservation_status
         FROM processed_requests p
         LEFT JOIN reservations r ON r.id = p.reservation_id
         WHERE p.request_id = $1 AND p.kind = 'RESERVATION'",
    )
    .bind(request_id)
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = decided else {
        let pending = state
            .request_ids
            .issued(request_id, RequestKind::Reservation, user_id)
            || recorded_for(state, request_id, user_id).await?;
        return if pending {
            Ok(ReservationStatus::pending(request_id))
        } else {
            Err(not_found())
        };
    };
    if row.user_id != user_id {
        return Err(not_found());
    }
    Ok(ReservationStatus {
        request_id,
        status: if row.outcome == "HELD" {
            "HELD"
        } else {
            "REJECTED"
        },
        reason: row.reason,
        reservation_id: row.reservation_id,
        concert_date_id: row.concert_date_id,
        seat_no: row.seat_no,
        price: row.price,
        expires_at: row.expires_at,
        reservation_status: row.reservation_status,
    })
}

/// Whether a keyed submission recorded this reservation request for this user.
async fn recorded_for(state: &AppState, request_id: Uuid, user_id: Uuid) -> sqlx::Result<bool> {
    let (found,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM requests
                        WHERE id = $1 AND kind = 'RESERVATION' AND user_id = $2)",
    )
    .bind(request_id)
    .bind(user_id)
    .fetch_one(&state.db)
    .await?;
    Ok(found)
}

impl ReservationStatus {
    fn pending(request_id: Uuid) -> Self {
        Self {
            request_id,
            status: "PENDING",
            reason: None,
            reservation_id: None,
            concert_date_id: None,
            seat_no: None,
            price: None,
            expires_at: None,
            reservation_status: None,
        }
    }
}

/// Loads a status, and if it is still pending, waits up to `wait` for the completion event
/// that answers it, then loads again.
pub async fn long_poll<T, F, Fut>(
    state: &AppState,
    id: Uuid,
    wait: Duration,
    pending: fn(&T) -> bool,
    load: F,
) -> Result<T, ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    if wait.is_zero() {
        return load().await;
    }
    let notify = state.waiters.register(id);
    let notified = notify.notified();
    tokio::pin!(notified);
    // Registered before the read: an event arriving in between still wakes us.
    notified.as_mut().enable();
    let first = load().await?;
    if !pending(&first) {
        return Ok(first);
    }
    let _ = tokio::time::timeout(wait, notified).await;
    load().await
}

/// The outcome of a reservation request. `?wait=N` waits up to N seconds for it.
#[utoipa::path(get, path = "/reservation/{requestId}", tag = "reservations", security(("queueToken" = [])),
    params(("requestId" = Uuid, Path), WaitParams),
    responses(
        (status = 200, body = ReservationStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown, or another user's", body = Problem, content_type = "application/problem+json"),
))]
pub async fn status(
    State(state): State<AppState>,
    TokenOwner(user_id): TokenOwner,
    Path(request_id): Path<Uuid>,
    Query(params): Query<WaitParams>,
) -> Result<Json<ReservationStatus>, ApiError> {
    let wait = params.duration()?;
    let status = long_poll(
        &state,
        request_id,
        wait,
        |s: &ReservationStatus| s.status == "PENDING",
        || load_status(&state, request_id, user_id),
    )
    .await?;
    Ok(Json(status))
}
