//! Events on the event topics: CloudEvents 1.0 in the Kafka protocol binding, **binary
//! mode**. The message value is the event data (JSON); the attributes travel as `ce_*` headers;
//! the key is the aggregate (the seat for reservation events, the payment id for payment
//! events). The event id is in the `ce_id` header and in the data as `eventId`.

use rdkafka::message::Message;
use serde::Deserialize;
use uuid::Uuid;

use crate::kafka::{header_utf8, Topic};
use crate::messages::event_types;

pub const SPEC_VERSION: &str = "1.0";
pub const SOURCE: &str = "urn:seatline:workers";
pub const TYPE_PREFIX: &str = "seatline.";
pub const CONTENT_TYPE: &str = "application/json";

/// CloudEvents Kafka binding header names.
pub mod headers {
    pub const SPECVERSION: &str = "ce_specversion";
    pub const ID: &str = "ce_id";
    pub const SOURCE: &str = "ce_source";
    pub const TYPE: &str = "ce_type";
    pub const SUBJECT: &str = "ce_subject";
    pub const TIME: &str = "ce_time";
    pub const CONTENT_TYPE: &str = "content-type";
    /// W3C trace context extension (`traceparent`), as the distributed tracing extension names it.
    pub const TRACEPARENT: &str = "ce_traceparent";
}

/// The CloudEvents type of an outbox event type: `reservation.held` → `seatline.reservation.held`.
pub fn cloud_event_type(outbox_type: &str) -> String {
    format!("{TYPE_PREFIX}{outbox_type}")
}

/// Which topic an outbox event type goes to.
pub fn topic_for(outbox_type: &str) -> Topic {
    if outbox_type.starts_with("payment.") {
        Topic::PaymentEvents
    } else {
        Topic::ReservationEvents
    }
}

/// How a request ended, as an outcome event announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Held,
    Rejected,
    PaymentSucceeded,
    PaymentFailed,
}

impl OutcomeKind {
    /// The outcome a CloudEvents type announces; `None` for events that answer no request
    /// (`expired`, `confirmed`), even when they mention one.
    pub fn of_type(cloud_event_type: &str) -> Option<Self> {
        match cloud_event_type.strip_prefix(TYPE_PREFIX)? {
            event_types::RESERVATION_HELD => Some(Self::Held),
            event_types::RESERVATION_REJECTED => Some(Self::Rejected),
            event_types::PAYMENT_SUCCEEDED => Some(Self::PaymentSucceeded),
            event_types::PAYMENT_FAILED => Some(Self::PaymentFailed),
            _ => None,
        }
    }
}

/// The outcome of one request, read from its event: what consumers that wait for requests
/// (the API's long polls, the benchmark) need, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The reservation request's id (held, rejected) or the payment's id (payment outcomes).
    pub request_id: Uuid,
    pub user_id: Uuid,
    /// The reservation held, or the one a payment was for; none for a rejection.
    pub reservation_id: Option<Uuid>,
}

/// The data fields an [`Outcome`] is made of; serde skips the others without building them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutcomeFields {
    request_id: Option<Uuid>,
    payment_id: Option<Uuid>,
    user_id: Uuid,
    reservation_id: Option<Uuid>,
}

impl Outcome {
    /// Decodes the outcome a binary-mode CloudEvent announces; `None` when the message is
    /// another event, or not an event. Only the type header and four data fields are read:
    /// every API instance and the benchmark read every event, and decoding each into a JSON
    /// tree was most of what that cost.
    pub fn decode<M: Message>(message: &M) -> Option<Self> {
        let kind = OutcomeKind::of_type(header_utf8(message.headers(), headers::TYPE)?)?;
        Self::from_data(kind, message.payload()?)
    }

    fn from_data(kind: OutcomeKind, data: &[u8]) -> Option<Self> {
        let fields: OutcomeFields = serde_json::from_slice(data).ok()?;
        let request_id = match kind {
            OutcomeKind::Held | OutcomeKind::Rejected => fields.request_id?,
            OutcomeKind::PaymentSucceeded | OutcomeKind::PaymentFailed => fields.payment_id?,
        };
        Some(Self {
            kind,
            request_id,
            user_id: fields.user_id,
            reservation_id: fields.reservation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectReason;
    use crate::messages::{
        PaymentFailed, PaymentSucceeded, ReservationConfirmed, ReservationHeld, ReservationRejected,
    };
    use chrono::DateTime;

    fn data<T: serde::Serialize>(event: &T) -> Vec<u8> {
        serde_json::to_vec(event).unwrap()
    }

    fn rejected_data(request: Uuid, user: Uuid) -> Vec<u8> {
        data(&ReservationRejected {
            request_id: request,
            user_id: user,
            concert_date_id: 3,
            seat_no: 7,
            reason: RejectReason::SeatTaken,
        })
    }

    #[test]
    fn only_outcome_events_answer_a_request() {
        assert_eq!(
            OutcomeKind::of_type(&cloud_event_type(event_types::RESERVATION_HELD)),
            Some(OutcomeKind::Held)
        );
        assert_eq!(
            OutcomeKind::of_type(&cloud_event_type(event_types::PAYMENT_FAILED)),
            Some(OutcomeKind::PaymentFailed)
        );
        // A confirmation names the payment, but is not its outcome.
        for other in [
            event_types::RESERVATION_CONFIRMED,
            event_types::RESERVATION_EXPIRED,
        ] {
            assert_eq!(OutcomeKind::of_type(&cloud_event_type(other)), None);
        }
        assert_eq!(OutcomeKind::of_type("reservation.held"), None, "no prefix");
    }

    #[test]
    fn an_outcome_carries_its_request_user_and_reservation() {
        let (request, user, reservation, payment) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let when = DateTime::from_timestamp(0, 0).unwrap();
        let held = data(&ReservationHeld {
            request_id: request,
            reservation_id: reservation,
            user_id: user,
            concert_date_id: 3,
            seat_no: 7,
            price: 1_000,
            expires_at: when,
        });
        assert_eq!(
            Outcome::from_data(OutcomeKind::Held, &held),
            Some(Outcome {
                kind: OutcomeKind::Held,
                request_id: request,
                user_id: user,
                reservation_id: Some(reservation),
            })
        );
        let rejected = rejected_data(request, user);
        let outcome = Outcome::from_data(OutcomeKind::Rejected, &rejected).unwrap();
        assert_eq!(
            (outcome.request_id, outcome.reservation_id),
            (request, None)
        );
        let paid = data(&PaymentSucceeded {
            payment_id: payment,
            reservation_id: reservation,
            user_id: user,
            concert_date_id: 3,
            seat_no: 7,
            amount: 1_000,
            balance_after: 0,
            paid_at: when,
        });
        let outcome = Outcome::from_data(OutcomeKind::PaymentSucceeded, &paid).unwrap();
        assert_eq!(
            (outcome.request_id, outcome.user_id, outcome.reservation_id),
            (payment, user, Some(reservation))
        );
        let failed = data(&PaymentFailed {
            payment_id: payment,
            reservation_id: reservation,
            user_id: user,
            reason: crate::domain::PaymentFailReason::InsufficientBalance,
        });
        let outcome = Outcome::from_data(OutcomeKind::PaymentFailed, &failed).unwrap();
        assert_eq!(outcome.request_id, payment);
    }

    #[test]
    fn a_message_is_decoded_by_its_type_header() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let (request, user) = (Uuid::new_v4(), Uuid::new_v4());
        let rejected = rejected_data(request, user);
        let message = |event_type: Option<&str>| {
            let headers = event_type.map(|t| {
                OwnedHeaders::new().insert(Header {
                    key: headers::TYPE,
                    value: Some(t),
                })
            });
            OwnedMessage::new(
                Some(rejected.clone()),
                None,
                "events".into(),
                Timestamp::NotAvailable,
                0,
                0,
                headers,
            )
        };
        let rejected_type = cloud_event_type(event_types::RESERVATION_REJECTED);
        let outcome = Outcome::decode(&message(Some(&rejected_type))).expect("an outcome");
        assert_eq!(
            (outcome.kind, outcome.request_id),
            (OutcomeKind::Rejected, request)
        );
        let expired_type = cloud_event_type(event_types::RESERVATION_EXPIRED);
        assert_eq!(Outcome::decode(&message(Some(&expired_type))), None);
        assert_eq!(Outcome::decode(&message(None)), None, "no type header");
    }

    #[test]
    fn data_without_the_kinds_request_id_is_no_outcome() {
        let confirmed = data(&ReservationConfirmed {
            reservation_id: Uuid::new_v4(),
            payment_id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            concert_date_id: 3,
            seat_no: 7,
            confirmed_at: DateTime::from_timestamp(0, 0).unwrap(),
        });
        // Labelled held, but with no request id: not an outcome of any request.
        assert_eq!(Outcome::from_data(OutcomeKind::Held, &confirmed), None);
        assert_eq!(Outcome::from_data(OutcomeKind::Held, b"not json"), None);
        assert_eq!(Outcome::from_data(OutcomeKind::Held, b"{}"), None);
    }
}
