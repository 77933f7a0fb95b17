//! The transactional outbox: deciders write events here in the same transaction as the
//! decision; the [`relay`] publishes them to the event topics; [`prune`] deletes them after
//! `OUTBOX_RETENTION`.

pub mod prune;
pub mod relay;

use std::sync::LazyLock;

use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

/// The channel the relay listens on; a committed decision wakes it at once. The trigger that
/// notifies it is in the migration `outbox_notifies_the_relay`.
pub const NOTIFY_CHANNEL: &str = "seatline_outbox";

/// One event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub event_type: &'static str,
    /// The event data, with `eventId` added, as the JSON text that is stored and published.
    pub payload: String,
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
        let payload = payload.to_string();
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

/// The insert of a batch of events, for a statement whose event arrays are bound from
/// parameter `$first` on by [`bind_events`]. `WITH ORDINALITY` keeps the identity (seq) order
/// equal to the order given. A statement trigger on `outbox` notifies the relay
/// ([`NOTIFY_CHANNEL`]), so no writer needs a statement of its own for that.
pub fn insert_sql(first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent)
         SELECT id, aggregatetype, aggregateid, type, payload::json, traceparent
         FROM unnest(${}::uuid[], ${}::text[], ${}::text[], ${}::text[], ${}::text[], ${}::text[])
              WITH ORDINALITY AS e(id, aggregatetype, aggregateid, type, payload, traceparent, n)
         ORDER BY n",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
}

/// Binds the six arrays that [`insert_sql`] reads, in its order.
pub fn bind_events<'q>(
    query: sqlx::query::Query<'q, Postgres, PgArguments>,
    events: &'q [NewEvent],
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    query
        .bind(events.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.aggregate_type).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.aggregate_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.event_type).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.payload.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.traceparent.as_deref())
                .collect::<Vec<_>>(),
        )
}

/// Inserts the events (in order) inside the caller's transaction; the relay is notified when
/// it commits.
pub async fn write(conn: &mut PgConnection, events: &[NewEvent]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    static INSERT_SQL: LazyLock<String> = LazyLock::new(|| insert_sql(1));
    bind_events(sqlx::query(&INSERT_SQL), events)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
