//! The request workers: the batch handler behind the ordered consumer. A batch comes from one
//! partition of one request topic; it is parsed, decided in one transaction, and committed.
//! Messages that cannot be decided go to the dead-letter topic before that commit, so the
//! partition moves on.

use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use seatline_shared::config::{KafkaConfig, ReservationConfig};
use seatline_shared::kafka::{header_str, headers, Topic};
use seatline_shared::messages::{PaymentRequested, ReservationRequested};

use crate::consumer::dead_letter::{self, Poison};
use crate::consumer::BatchHandler;
use crate::{payments, reservations};

/// A parsed request with where it came from.
#[derive(Debug, Clone)]
pub struct Incoming<T> {
    pub message: T,
    /// Index in the batch, to find the original message again.
    pub index: usize,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub traceparent: Option<String>,
}

fn parse<T: DeserializeOwned>(index: usize, m: &OwnedMessage) -> Result<Incoming<T>, String> {
    let payload = m.payload().ok_or("empty message")?;
    let message =
        serde_json::from_slice(payload).map_err(|e| format!("unparseable request: {e}"))?;
    Ok(Incoming {
        message,
        index,
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        traceparent: header_str(m.headers(), headers::TRACEPARENT),
    })
}

fn trace_id(traceparent: Option<&str>) -> &str {
    traceparent
        .map(seatline_shared::telemetry::trace_id)
        .unwrap_or("")
}

/// Counts a committed decision and its latency from submission to commit.
fn record_decision(
    kind: &'static str,
    outcome: &'static str,
    submitted_at: chrono::DateTime<chrono::Utc>,
) {
    metrics::counter!("decisions_total", "kind" => kind, "outcome" => outcome).increment(1);
    let latency = (chrono::Utc::now() - submitted_at)
        .to_std()
        .unwrap_or_default();
    metrics::histogram!("decision_latency_seconds", "kind" => kind).record(latency.as_secs_f64());
}

/// Splits a batch into parsed requests and messages to dead-letter.
fn parse_batch<T: DeserializeOwned>(batch: &[OwnedMessage]) -> (Vec<Incoming<T>>, Vec<Poison<'_>>) {
    let mut parsed = Vec::with_capacity(batch.len());
    let mut poison = Vec::new();
    for (index, m) in batch.iter().enumerate() {
        match parse::<T>(index, m) {
            Ok(incoming) => parsed.push(incoming),
            Err(error) => poison.push(Poison { message: m, error }),
        }
    }
    (parsed, poison)
}

/// Decides reservation and payment requests.
pub struct RequestHandler {
    pub pool: PgPool,
    /// For the dead-letter topic.
    pub producer: FutureProducer,
    pub kafka: KafkaConfig,
    pub reservation: ReservationConfig,
}

impl RequestHandler {
    async fn handle_reservations(&self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let (parsed, mut poison) = parse_batch::<ReservationRequested>(batch);
        let mut tx = self.pool.begin().await?;
        let outcomes = if parsed.is_empty() {
            Vec::new()
        } else {
            reservations::decide(&mut tx, &parsed, &self.reservation).await?
        };
        for (incoming, outcome) in parsed.iter().zip(&outcomes) {
            if *outcome == reservations::Outcome::UnknownUser {
                poison.push(Poison {
                    message: &batch[incoming.index],
                    error: "unknown user".into(),
                });
            }
        }
        dead_letter::publish(&self.producer, &self.kafka, &poison).await?;
        tx.commit().await?;
        for (incoming, outcome) in parsed.iter().zip(&outcomes) {
            let label = match outcome {
                reservations::Outcome::Held { .. } => "HELD",
                reservations::Outcome::Rejected(_) => "REJECTED",
                _ => continue,
            };
            record_decision("reservation", label, incoming.message.submitted_at);
            tracing::info!(
                request_id = %incoming.message.request_id,
                trace_id = trace_id(incoming.traceparent.as_deref()),
                outcome = ?outcome,
                "reservation decided"
            );
        }
        Ok(())
    }

    async fn handle_payments(&self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let (parsed, mut poison) = parse_batch::<PaymentRequested>(batch);
        let mut tx = self.pool.begin().await?;
        let outcomes = if parsed.is_empty() {
            Vec::new()
        } else {
            payments::decide(&mut tx, &parsed).await?
        };
        for (incoming, outcome) in parsed.iter().zip(&outcomes) {
            if *outcome == payments::Outcome::UnknownUser {
                poison.push(Poison {
                    message: &batch[incoming.index],
                    error: "unknown user".into(),
                });
            }
        }
        dead_letter::publish(&self.producer, &self.kafka, &poison).await?;
        tx.commit().await?;
        for (incoming, outcome) in parsed.iter().zip(&outcomes) {
            let label = match outcome {
                payments::Outcome::Paid { .. } => "PAID",
                payments::Outcome::Failed(_) => "FAILED",
                _ => continue,
            };
            record_decision("payment", label, incoming.message.submitted_at);
            tracing::info!(
                payment_id = %incoming.message.payment_id,
                trace_id = trace_id(incoming.traceparent.as_deref()),
                outcome = ?outcome,
                "payment decided"
            );
        }
        Ok(())
    }
}

impl BatchHandler for RequestHandler {
    async fn handle(&self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let Some(first) = batch.first() else {
            return Ok(());
        };
        let topic = first.topic();
        if topic == self.kafka.topic(Topic::ReservationRequests) {
            self.handle_reservations(batch).await
        } else if topic == self.kafka.topic(Topic::PaymentRequests) {
            self.handle_payments(batch).await
        } else {
            anyhow::bail!("no handler for topic {topic}")
        }
    }
}
