//! Payment: submit a payment for a held seat (202, decided asynchronously), and read its
//! outcome, optionally long-polling.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use seatline_shared::domain::RequestKind;
use seatline_shared::kafka::{seat_key, Topic};
use seatline_shared::messages::{PaymentRequested, PAYMENT_REQUESTED};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{ActiveToken, TokenOwner};
use super::error::{ApiError, Problem};
use super::extract::{Json, Path, Query};
use super::reservations::{accepted_with, long_poll, traceparent, WaitParams};
use crate::state::AppState;
use crate::submit::{self, NewRequest, Outgoing};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAccepted {
    pub payment_id: Uuid,
    /// Always PENDING.
    pub status: &'static str,
    pub status_url: String,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    pub reservation_id: Uuid,
}

/// The outcome of a payment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatus {
    pub payment_id: Uuid,
    /// PENDING, PAID or FAILED.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concert_date_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat_no: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<DateTime<Utc>>,
}

/// Pay for a held seat from the balance. `paymentId` is chosen by the client and is the
/// payment's idempotency key: the same id again gives the same payment, and money moves once.
#[utoipa::path(post, path = "/payment/{paymentId}", tag = "payments", security(("queueToken" = [])),
    params(("paymentId" = Uuid, Path)),
    request_body = PaymentRequest,
    responses(
        (status = 202, body = PaymentAccepted),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "still waiting in line", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such reservation, or another user's", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid body, or the paymentId was used for another payment", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Kafka cannot take the request now; see Retry-After", body = Problem, content_type = "application/problem+json"),
))]
pub async fn submit(
    State(state): State<AppState>,
    ActiveToken(token): ActiveToken,
    Path(payment_id): Path<Uuid>,
    headers: HeaderMap,
    Json(request): Json<PaymentRequest>,
) -> Result<Response, ApiError> {
    if payment_id.is_nil() {
        return Err(ApiError::BadRequest(
            "paymentId must not be the nil UUID".into(),
        ));
    }
    let seat: Option<(Uuid, i64, i32)> =
        sqlx::query_as("SELECT user_id, concert_date_id, seat_no FROM reservations WHERE id = $1")
            .bind(request.reservation_id)
            .fetch_optional(&state.db)
            .await?;
    // Another user's reservation is indistinguishable from one that does not exist.
    let (_, concert_date_id, seat_no) = seat
        .filter(|(owner, _, _)| *owner == token.user_id)
        .ok_or_else(|| {
            ApiError::NotFound(format!("reservation {} not found", request.reservation_id))
        })?;
    let recorded = submit::record(
        &state,
        &NewRequest {
            id: payment_id,
            kind: RequestKind::Payment,
            user_id: token.user_id,
            idempotency_key: None,
            payload: serde_json::to_value(&request).expect("serialisable"),
        },
    )
    .await?;
    let message = PaymentRequested {
        payment_id,
        user_id: token.user_id,
        reservation_id: request.reservation_id,
        concert_date_id,
        seat_no,
        submitted_at: recorded.submitted_at,
    };
    let traceparent = traceparent(&headers);
    let key = seat_key(concert_date_id, seat_no);
    submit::publish(
        &state,
        Outgoing {
            topic: Topic::PaymentRequests,
            key: &key,
            request_id: payment_id,
            message_type: PAYMENT_REQUESTED,
            body: serde_json::to_vec(&message).expect("serialisable"),
            traceparent: &traceparent,
            recording: (&recorded).into(),
        },
    )
    .await?;
    tracing::info!(%payment_id, user_id = %token.user_id, seat = %key, trace_id = seatline_shared::telemetry::trace_id(&traceparent), "payment request queued");
    let status_url = format!("/payment/{payment_id}");
    Ok(accepted_with(
        status_url.clone(),
        PaymentAccepted {
            payment_id,
            status: "PENDING",
            status_url,
        },
    ))
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    user_id: Uuid,
    status: Option<String>,
    reason: Option<String>,
    amount: Option<i64>,
    balance_after: Option<i64>,
    reservation_id: Option<Uuid>,
    concert_date_id: Option<i64>,
    seat_no: Option<i32>,
    paid_at: Option<DateTime<Utc>>,
}

async fn load_status(
    state: &AppState,
    payment_id: Uuid,
    user_id: Uuid,
) -> Result<PaymentStatus, ApiError> {
    let row: Option<StatusRow> = sqlx::query_as(
        "SELECT q.user_id, p.status, p.reason, p.amount, p.balance_after, p.reservation_id,
                r.concert_date_id, r.seat_no, p.paid_at
         FROM requests q
         LEFT JOIN payments p ON p.id = q.id
         LEFT JOIN reservations r ON r.id = p.reservation_id
         WHERE q.id = $1 AND q.kind = 'PAYMENT'",
    )
    .bind(payment_id)
    .fetch_optional(&state.db)
    .await?;
    let row = row
        .filter(|r| r.user_id == user_id)
        .ok_or_else(|| ApiError::NotFound(format!("payment {payment_id} not found")))?;
    Ok(match row.status.as_deref() {
        None => PaymentStatus::pending(payment_id),
        Some("PAID") => PaymentStatus {
            payment_id,
            status: "PAID",
            reason: None,
            amount: row.amount,
            balance_after: row.balance_after,
            reservation_id: row.reservation_id,
            concert_date_id: row.concert_date_id,
            seat_no: row.seat_no,
            paid_at: row.paid_at,
        },
        Some(_) => PaymentStatus {
            status: "FAILED",
            reason: row.reason,
            ..PaymentStatus::pending(payment_id)
        },
    })
}

impl PaymentStatus {
    fn pending(payment_id: Uuid) -> Self {
        Self {
            payment_id,
            status: "PENDING",
            reason: None,
            amount: None,
            balance_after: None,
            reservation_id: None,
            concert_date_id: None,
            seat_no: None,
            paid_at: None,
        }
    }
}

/// The outcome of a payment. `?wait=N` waits up to N seconds for it. The user's token is
/// accepted even after the payment completed it.
#[utoipa::path(get, path = "/payment/{paymentId}", tag = "payments", security(("queueToken" = [])),
    params(("paymentId" = Uuid, Path), WaitParams),
    responses(
        (status = 200, body = PaymentStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "unknown, or another user's", body = Problem, content_type = "application/problem+json"),
))]
pub async fn status(
    State(state): State<AppState>,
    TokenOwner(user_id): TokenOwner,
    Path(payment_id): Path<Uuid>,
    Query(params): Query<WaitParams>,
) -> Result<Json<PaymentStatus>, ApiError> {
    let wait = params.duration()?;
    let status = long_poll(
        &state,
        payment_id,
        wait,
        |s: &PaymentStatus| s.status == "PENDING",
        || load_status(&state, payment_id, user_id),
    )
    .await?;
    Ok(Json(status))
}
