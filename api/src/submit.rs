//! Submitting asynchronous requests: publish each to its request topic keyed by seat, and
//! answer only after the broker's acknowledgement, which is what makes a 202 durable.
//!
//! Most submissions write nothing to the database: a reservation without an idempotency key
//! gets a self-authenticating id ([`crate::request_ids`]), so any API instance can tell
//! "pending" from "never issued" without a record, and the workers' inbox has the outcome
//! once it is decided. A submission that names its own identity (an `Idempotency-Key`, or a
//! client-chosen payment id) is recorded first (`requests`, in group commits by
//! [`crate::request_recorder`]), which maps the key to one request id and refuses the same key
//! for a different request. A retry of a recorded request publishes the same id again; the
//! workers decide an id once, so that is harmless and guarantees the request is on the topic
//! even if an earlier attempt's produce failed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use seatline_shared::domain::RequestKind;
use seatline_shared::kafka::{headers, make_headers, Topic};
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::state::AppState;

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub id: Uuid,
    pub kind: RequestKind,
    pub user_id: Uuid,
    pub idempotency_key: Option<String>,
    /// What the client asked, compared on retries.
    pub payload: serde_json::Value,
}

/// The recorded request: new, or the earlier one this retry repeats.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    pub id: Uuid,
    pub submitted_at: DateTime<Utc>,
    /// True when this repeats an earlier submission.
    pub repeated: bool,
}

#[derive(sqlx::FromRow)]
struct Existing {
    id: Uuid,
    kind: String,
    user_id: Uuid,
    payload: serde_json::Value,
    submitted_at: DateTime<Utc>,
}

/// Records the request, or returns the earlier record of the same request (same id, or same
/// user, kind and idempotency key). The same key or id with a different request is refused.
pub async fn record(state: &AppState, new: &NewRequest) -> Result<Recorded, ApiError> {
    if let Some(submitted_at) = state.recorder.insert(new.clone()).await? {
        return Ok(Recorded {
            id: new.id,
            submitted_at,
            repeated: false,
        });
    }
    let existing: Option<Existing> = sqlx::query_as(
        "SELECT id, kind, user_id, payload, submitted_at FROM requests
         WHERE id = $1 OR (user_id = $2 AND kind = $3 AND idempotency_key = $4)
         ORDER BY (id = $1) DESC LIMIT 1",
    )
    .bind(new.id)
    .bind(new.user_id)
    .bind(new.kind.as_str())
    .bind(new.idempotency_key.as_deref())
    .fetch_optional(&state.db)
    .await?;
    match existing {
        Some(e)
            if e.user_id == new.user_id
                && e.kind == new.kind.as_str()
                && e.payload == new.payload =>
        {
            Ok(Recorded {
                id: e.id,
                submitted_at: e.submitted_at,
                repeated: true,
            })
        }
        Some(_) => Err(ApiError::Unprocessable(
            "this idempotency key (or id) was already used for a different request".into(),
        )),
        // The conflicting row vanished between the two statements; nothing deletes requests,
        // so this cannot happen, but answer safely if it does.
        None => Err(ApiError::Conflict(
            "the request conflicts with another; retry".into(),
        )),
    }
}

/// What the database holds of a request being published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// Nothing: its id proves its issue ([`crate::request_ids`]).
    Unrecorded,
    /// Recorded by this submission.
    New,
    /// Recorded by an earlier submission that this one repeats; that one's produce may have
    /// failed and left the record flagged.
    Repeated,
}

impl From<&Recorded> for Recording {
    fn from(recorded: &Recorded) -> Self {
        if recorded.repeated {
            Self::Repeated
        } else {
            Self::New
        }
    }
}

/// A message to publish.
pub struct Outgoing<'a> {
    pub topic: Topic,
    /// The seat key, so every operation on one seat shares a partition.
    pub key: &'a str,
    pub request_id: Uuid,
    pub message_type: &'a str,
    pub body: Vec<u8>,
    pub traceparent: &'a str,
    /// A repeated submission may clear an earlier failure flag; a recorded one sets it.
    pub recording: Recording,
}

/// Publishes and waits for the broker's ack, within `KAFKA_PRODUCE_TIMEOUT`. On failure a
/// record is flagged so a retry republishes it, and the client gets 503 with `Retry-After`.
pub async fn publish(state: &AppState, out: Outgoing<'_>) -> Result<(), ApiError> {
    let topic = state.config.kafka.topic(out.topic);
    let request_id = out.request_id.to_string();
    let record = FutureRecord::to(&topic)
        .key(out.key)
        .payload(&out.body)
        .headers(make_headers([
            (headers::REQUEST_ID, request_id.as_str()),
            (headers::TRACEPARENT, out.traceparent),
            (headers::MESSAGE_TYPE, out.message_type),
        ]));
    let bound = state.config.kafka.produce_timeout;
    let started = std::time::Instant::now();
    // librdkafka bounds delivery by message.timeout.ms; the outer timeout is a safety net.
    let delivery = tokio::time::timeout(
        bound + Duration::from_millis(500),
        state.producer.send(record, Timeout::After(bound)),
    )
    .await;
    let failure = match delivery {
        Ok(Ok(_)) => None,
        Ok(Err((err, _))) => Some(err.to_string()),
        Err(_) => Some("timed out".to_owned()),
    };
    let suffix = out.topic.suffix();
    metrics::histogram!("kafka_produce_duration_seconds", "topic" => suffix)
        .record(started.elapsed().as_secs_f64());
    if failure.is_some() {
        metrics::counter!("kafka_produce_failures_total", "topic" => suffix).increment(1);
    }
    match failure {
        None if out.recording != Recording::Repeated => Ok(()),
        None => {
            sqlx::query("UPDATE requests SET publish_failed_at = NULL WHERE id = $1 AND publish_failed_at IS NOT NULL")
                .bind(out.request_id)
                .execute(&state.db)
                .await?;
            Ok(())
        }
        Some(error) => {
            tracing::warn!(%error, request_id = %out.request_id, %topic, "publishing a request failed");
            if out.recording != Recording::Unrecorded {
                sqlx::query("UPDATE requests SET publish_failed_at = now() WHERE id = $1")
                    .bind(out.request_id)
                    .execute(&state.db)
                    .await?;
            }
            Err(ApiError::Unavailable {
                detail: "the request could not be queued; retry shortly".into(),
                retry_after_secs: 1,
            })
        }
    }
}
