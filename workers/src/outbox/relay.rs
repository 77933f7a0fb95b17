//! The outbox relay: publishes committed outbox rows to the event topics as CloudEvents.
//!
//! Rows are never updated: the relay keeps a cursor (`outbox_relay_cursor`) and publishes in
//! commit order, by the writing transaction's id (`txid`), then `seq`. One round claims the
//! rows after the cursor whose transactions are older than every running transaction (so no
//! row can still appear behind the cursor; see the migration that introduced it), publishes
//! them all with the idempotent producer, waits for every ack, then moves the cursor and
//! commits. Killed between publish and move, the rows are published again by the next round:
//! duplicates carry the same event id, and nothing is lost (at least once).
//!
//! Per-key order with several relay instances: a round runs under a transaction-scoped advisory
//! lock, so one instance publishes at a time, in cursor order, and a round starts only after
//! the previous one's acks. The others stand by.
//!
//! A committed decision notifies the relay (`LISTEN`), so events leave within milliseconds; a
//! slow poll covers missed notifications. While Kafka or PostgreSQL is down, rounds are retried
//! with exponential backoff.

use std::time::{Duration, Instant};

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use seatline_shared::config::KafkaConfig;
use seatline_shared::events::{self, headers as ce};
use seatline_shared::kafka::headers;

use super::NOTIFY_CHANNEL;

/// Advisory lock key of the one active relay.
const RELAY_LOCK: i64 = 0x5EA7_0002;
/// How often the relay looks without a notification.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the backlog gauge is refreshed. Counting costs a scan of the backlog, so it is
/// not done per round: under load that alone took half a core of PostgreSQL.
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);

/// An outbox row as the relay reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub seq: i64,
    /// The writing transaction's id (an `xid8`, which fits in an `i64`).
    pub txid: i64,
    pub id: Uuid,
    pub aggregatetype: String,
    pub aggregateid: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    /// The event's JSON text, published as it is. (Rows written while the column was `jsonb`
    /// hold jsonb's spelling of the same JSON, with spaces after the separators, so replaying
    /// them publishes the same data spelled that way.)
    pub payload: String,
    pub traceparent: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub struct Relay {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub kafka: KafkaConfig,
    pub batch_size: i64,
}

/// The columns of an [`OutboxRow`], for every query that reads them.
pub const OUTBOX_ROW_COLUMNS: &str = "o.seq, o.txid::text::bigint AS txid, o.id, o.aggregatetype,
    o.aggregateid, o.type, o.payload::text AS payload, o.traceparent, o.created_at";

/// The condition "published": at or before the relay's cursor.
pub const PUBLISHED_SQL: &str = "(o.txid, o.seq) <= (SELECT txid, seq FROM outbox_relay_cursor)";
/// The condition "not published yet": after the relay's cursor.
const UNPUBLISHED_SQL: &str = "(o.txid, o.seq) > (SELECT txid, seq FROM outbox_relay_cursor)";

/// The next rows to publish, in commit order: those after the cursor whose transactions ended
/// before any transaction still running began. The caller holds the relay lock.
pub async fn claim(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<OutboxRow>> {
    sqlx::query_as(&format!(
        "SELECT {OUTBOX_ROW_COLUMNS}
         FROM outbox o
         WHERE {UNPUBLISHED_SQL}
           AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY o.txid, o.seq
         LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves the cursor past `last`, the last row of a published round.
pub async fn move_cursor_past(conn: &mut PgConnection, last: &OutboxRow) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox_relay_cursor SET txid = $1::bigint::text::xid8, seq = $2, moved_at = now()",
    )
    .bind(last.txid)
    .bind(last.seq)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts the rows after a cursor given as values. With the cursor read in a subquery instead
/// (as the relay's claim reads it), the planner cannot see where in the table the cursor
/// lies, so it expected a third of the outbox and counted with two parallel workers, started
/// anew for every count (15 ms on average in a rush at about half a million rows, 73 ms at a
/// million, with fifty rows left to publish); with values it finds the index's end and reads
/// only the backlog (under 0.1 ms).
pub const BACKLOG_SQL: &str =
    "SELECT count(*) FROM outbox o WHERE (o.txid, o.seq) > ($1::bigint::text::xid8, $2)";

/// The relay's cursor as values: the transaction id (as a number) and the sequence number of the
/// last row published, as [`BACKLOG_SQL`] binds them.
pub async fn cursor(pool: &PgPool) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as("SELECT txid::text::bigint, seq FROM outbox_relay_cursor")
        .fetch_one(pool)
        .await
}

/// How many written rows the relay has not published yet. The cursor may move between its read
/// and the count, which then also counts rows published meanwhile: a gauge can afford that.
pub async fn backlog(pool: &PgPool) -> sqlx::Result<i64> {
    let (txid, seq) = cursor(pool).await?;
    let (backlog,): (i64,) = sqlx::query_as(BACKLOG_SQL)
        .bind(txid)
        .bind(seq)
        .fetch_one(pool)
        .await?;
    Ok(backlog)
}

/// Publishes rows in order as binary-mode CloudEvents and waits for every ack.
pub async fn publish(
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    rows: &[OutboxRow],
) -> anyhow::Result<()> {
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let topic = kafka.topic(events::topic_for(&row.event_type));
        let id = row.id.to_string();
        let ce_type = events::cloud_event_type(&row.event_type);
        let subject = format!("{}/{}", row.aggregatetype, row.aggregateid);
        let time = row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut hdrs = OwnedHeaders::new_with_capacity(10)
            .insert(Header {
                key: ce::SPECVERSION,
                value: Some(events::SPEC_VERSION),
            })
            .insert(Header {
                key: ce::ID,
                value: Some(id.as_str()),
            })
            .insert(Header {
                key: ce::SOURCE,
                value: Some(events::SOURCE),
            })
            .insert(Header {
                key: ce::TYPE,
                value: Some(ce_type.as_str()),
            })
            .insert(Header {
                key: ce::SUBJECT,
                value: Some(subject.as_str()),
            })
            .insert(Header {
                key: ce::TIME,
                value: Some(time.as_str()),
            })
            .insert(Header {
                key: ce::CONTENT_TYPE,
                value: Some(events::CONTENT_TYPE),
            });
        if let Some(tp) = &row.traceparent {
            hdrs = hdrs
                .insert(Header {
                    key: ce::TRACEPARENT,
                    value: Some(tp.as_str()),
                })
                .insert(Header {
                    key: headers::TRACEPARENT,
                    value: Some(tp.as_str()),
                });
        }
        let record = FutureRecord::to(&topic)
            .key(&row.aggregateid)
            .payload(row.payload.as_bytes())
            .headers(hdrs);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery
            .await
            .map_err(|_| anyhow::anyhow!("event delivery cancelled"))?
            .map_err(|(e, _)| e)?;
    }
    Ok(())
}

impl Relay {
    /// One round. Returns how many events were published (0 when another instance holds the
    /// relay lock or nothing is pending).
    pub async fn relay_once(&self) -> anyhow::Result<usize> {
        let Some(mut tx) = seatline_shared::db::begin_exclusive(&self.pool, RELAY_LOCK).await?
        else {
            return Ok(0);
        };
        let rows = claim(&mut tx, self.batch_size).await?;
        let Some(last) = rows.last() else {
            return Ok(0);
        };
        let started = Instant::now();
        publish(&self.producer, &self.kafka, &rows).await?;
        metrics::histogram!("outbox_publish_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        move_cursor_past(&mut tx, last).await?;
        tx.commit().await?;
        metrics::counter!("outbox_published_total").increment(rows.len() as u64);
        let now = Utc::now();
        for row in &rows {
            let age = (now - row.created_at).to_std().unwrap_or_default();
            metrics::histogram!("outbox_event_age_seconds").record(age.as_secs_f64());
        }
        Ok(rows.len())
    }

    /// Publishes until nothing more can be published now.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let n = self.relay_once().await?;
            total += n;
            if (n as i64) < self.batch_size {
                return Ok(total);
            }
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = ExponentialBackoff {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut listener: Option<PgListener> = None;
        let mut backlog_counted: Option<Instant> = None;
        loop {
            if listener.is_none() {
                listener = listen(&self.pool).await;
            }
            // What is left: held back by running transactions, written meanwhile, or held by
            // another relay instance.
            if backlog_counted.is_none_or(|at| at.elapsed() >= BACKLOG_INTERVAL) {
                if let Ok(left) = backlog(&self.pool).await {
                    metrics::gauge!("outbox_backlog").set(left as f64);
                }
                backlog_counted = Some(Instant::now());
            }
            let wait = match self.drain().await {
                Ok(_) => {
                    backoff.reset();
                    POLL_INTERVAL
                }
                Err(err) => {
                    let delay = backoff.next_backoff().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(error = format!("{err:#}"), retry_in = ?delay, "outbox relay round failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                notified = recv(&mut listener) => {
                    if !notified {
                        listener = None;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("outbox relay stopped");
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(NOTIFY_CHANNEL).await.ok()?;
    Some(listener)
}

/// Waits for a notification; false when the listener is gone (the caller reconnects).
async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
