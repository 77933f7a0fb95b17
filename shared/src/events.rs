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

    /// The id of the request (reservation request id or payment id) the event answers, if any.
    pub fn request_id(&self) -> Option<Uuid> {
        ["requestId", "paymentId"]
            .iter()
            .find_map(|field| self.data.get(field)?.as_str()?.parse().ok())
    }
}
