//! The transactional outbox: deciders write events here in the same transaction as the
//! decision; the [`relay`] publishes them to the event topics; [`prune`] deletes them after
//! `OUTBOX_RETENTION`.

pub mod prune;
pub mod relay;

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// The channel the relay listens on; a committed decision wakes it at once.
pub const NOTIFY_CHANNEL: &str = "seatline_outbox";

/// One event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub event_type: &'static str,
    /// The event data, with `eventId` added.
    pub payload: serde_json::Value,
    pub traceparent: Option<String>,
}

impl NewEvent {
    pub fn new<T: Serialize>(
        aggregate_type: &'static str,
        aggregate_id: String,
        event_type: &'static str,
        data: &T,
        traceparent: Option<String>,
    ) -> Self {
        let id = Uuid::now_v7();
        let mut payload = serde_json::to_value(data).expect("event data serialises");
        if let serde_json::Value::Object(map) = &mut payload {
            map.insert("eventId".into(), serde_json::Value::String(id.to_string()));
        }
        Self {
            id,
            aggregate_type,
            aggregate_id,
            event_type,
            payload,
            traceparent,
        }
    }
}

/// Inserts the events (in order) and notifies the relay, inside the caller's transaction.
pub async fn write(conn: &mut PgConnection, events: &[NewEvent]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let aggregate_types: Vec<&str> = events.iter().map(|e| e.aggregate_type).collect();
    let aggregate_ids: Vec<&str> = events.iter().map(|e| e.aggregate_id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let payloads: Vec<serde_json::Value> = events.iter().map(|e| e.payload.clone()).collect();
    let traceparents: Vec<Option<&str>> = events.iter().map(|e| e.traceparent.as_deref()).collect();
    // WITH ORDINALITY keeps the identity (seq) order equal to the order given.
    sqlx::query(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent)
         SELECT id, aggregatetype, aggregateid, type, payload, traceparent
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
              WITH ORDINALITY AS e(id, aggregatetype, aggregateid, type, payload, traceparent, n)
         ORDER BY n",
    )
    .bind(&ids)
    .bind(&aggregate_types)
    .bind(&aggregate_ids)
    .bind(&types)
    .bind(&payloads)
    .bind(&traceparents)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
