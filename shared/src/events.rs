//! Events on the event topics: CloudEvents 1.0 in the Kafka protocol binding, **binary
//! mode**. The message value is the event data (JSON); the attributes travel as `ce_*` headers;
//! the key is the aggregate (the seat for reservation events, the payment id for payment
//! events). The event id is in the `ce_id` header and in the data as `eventId`.

use chrono::{DateTime, Utc};
use rdkafka::message::Message;
use uuid::Uuid;

use crate::kafka::{header_str, Topic};

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

/// A received event, decoded from a Kafka message.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub id: Uuid,
    /// The CloudEvents type, e.g. `seatline.reservation.held`.
    pub event_type: String,
    pub subject: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub data: serde_json::Value,
}

impl ReceivedEvent {
    /// Decodes a binary-mode CloudEvent; `None` when the message is not one.
    pub fn decode<M: Message>(message: &M) -> Option<Self> {
        let headers = message.headers();
        let id = header_str(headers, headers::ID)?.parse().ok()?;
        let event_type = header_str(headers, headers::TYPE)?;
        let subject = header_str(headers, headers::SUBJECT);
        let time = header_str(headers, headers::TIME).and_then(|t| t.parse().ok());
        let data = serde_json::from_slice(message.payload()?).ok()?;
        Some(Self {
            id,
            event_type,
            subject,
            time,
            data,
        })
    }

    /// The id of the request this event is the outcome of: the reservation request id for
    /// `held` and `rejected`, the payment id for `payment.succeeded` and `payment.failed`.
    /// Other events (`expired`, `confirmed`) answer no request, even when they mention one.
    pub fn request_id(&self) -> Option<Uuid> {
        let field = match self.event_type.strip_prefix(TYPE_PREFIX)? {
            "reservation.held" | "reservation.rejected" => "requestId",
            "payment.succeeded" | "payment.failed" => "paymentId",
            _ => return None,
        };
        self.data.get(field)?.as_str()?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: serde_json::Value) -> ReceivedEvent {
        ReceivedEvent {
            id: Uuid::nil(),
            event_type: cloud_event_type(event_type),
            subject: None,
            time: None,
            data,
        }
    }

    #[test]
    fn only_outcome_events_answer_a_request() {
        let request = Uuid::new_v4();
        let payment = Uuid::new_v4();
        assert_eq!(
            event(
                "reservation.held",
                serde_json::json!({"requestId": request})
            )
            .request_id(),
            Some(request)
        );
        assert_eq!(
            event("payment.failed", serde_json::json!({"paymentId": payment})).request_id(),
            Some(payment)
        );
        // A confirmation names the payment, but is not its outcome.
        assert_eq!(
            event(
                "reservation.confirmed",
                serde_json::json!({"paymentId": payment})
            )
            .request_id(),
            None
        );
        assert_eq!(
            event("reservation.expired", serde_json::json!({})).request_id(),
            None
        );
    }
}
