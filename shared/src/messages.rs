//! Messages between components. Request messages travel API → request topics → workers; event
//! payloads are written to the outbox by the workers and published by the relay.
//!
//! All JSON is camelCase. Requests carry their id both in the body and in the
//! [`headers::REQUEST_ID`](crate::kafka::headers::REQUEST_ID) header.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{PaymentFailReason, RejectReason};

/// Message type header values of request messages.
pub const RESERVATION_REQUESTED: &str = "reservation.requested";
pub const PAYMENT_REQUESTED: &str = "payment.requested";

/// A request to hold one seat, keyed by the seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationRequested {
    pub request_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub submitted_at: DateTime<Utc>,
}

/// A request to pay for a held seat, keyed by that seat. `payment_id` is the request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequested {
    pub payment_id: Uuid,
    pub user_id: Uuid,
    pub reservation_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub submitted_at: DateTime<Utc>,
}

/// Event types written to the outbox. The relay publishes each to its topic.
pub mod event_types {
    pub const RESERVATION_HELD: &str = "reservation.held";
    pub const RESERVATION_REJECTED: &str = "reservation.rejected";
    pub const RESERVATION_EXPIRED: &str = "reservation.expired";
    pub const RESERVATION_CONFIRMED: &str = "reservation.confirmed";
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    pub const PAYMENT_FAILED: &str = "payment.failed";
}

/// Aggregate types of outbox rows.
pub mod aggregate_types {
    /// Reservation events are about a seat; their aggregate id is the seat key.
    pub const SEAT: &str = "seat";
    /// Payment events are about a payment; their aggregate id is the payment id.
    pub const PAYMENT: &str = "payment";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationHeld {
    pub request_id: Uuid,
    pub reservation_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub price: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRejected {
    pub request_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub reason: RejectReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationExpired {
    pub reservation_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub expired_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationConfirmed {
    pub reservation_id: Uuid,
    pub payment_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub confirmed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSucceeded {
    pub payment_id: Uuid,
    pub reservation_id: Uuid,
    pub user_id: Uuid,
    pub concert_date_id: i64,
    pub seat_no: i32,
    pub amount: i64,
    pub balance_after: i64,
    pub paid_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    pub payment_id: Uuid,
    pub reservation_id: Uuid,
    pub user_id: Uuid,
    pub reason: PaymentFailReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_request_round_trips_in_camel_case() {
        let msg = ReservationRequested {
            request_id: Uuid::nil(),
            user_id: Uuid::nil(),
            concert_date_id: 7,
            seat_no: 12,
            submitted_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["concertDateId"], 7);
        assert_eq!(json["seatNo"], 12);
        let back: ReservationRequested = serde_json::from_value(json).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ReservationRequested>(
            r#"{"requestId":"00000000-0000-0000-0000-000000000000","userId":"00000000-0000-0000-0000-000000000000","concertDateId":1,"seatNo":1,"submittedAt":"2026-01-01T00:00:00Z","extra":1}"#,
        );
        assert!(err.is_err());
    }
}
