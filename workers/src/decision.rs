//! What every decider shares: the lock order, the inbox of decided requests, and the
//! transaction's clock.
//!
//! Lock order: a batch locks its seats (sorted), then its users (sorted), before anything else.
//! The locks are `FOR NO KEY UPDATE`: they serialise deciders, charges and payments on a row,
//! but not the foreign-key checks (`FOR KEY SHARE`) of rows that merely reference it, so the
//! API recording a request of a user in a running batch does not wait for that batch.
//! Reservations and payments both follow it, so concurrent batches cannot deadlock, and a
//! seat's hold, payment and expiry are serialised by the seat row.

use std::collections::HashSet;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use seatline_shared::domain::RequestKind;
use seatline_shared::messages::{PaymentRequested, ReservationRequested};

use crate::outbox::{self, NewEvent};
use crate::requests::Incoming;

/// A seat: (concert date id, seat number).
pub type SeatRef = (i64, i32);

/// What the inbox needs of a request message.
pub trait RequestMessage {
    const KIND: RequestKind;
    fn request_id(&self) -> Uuid;
    fn user_id(&self) -> Uuid;
    fn submitted_at(&self) -> DateTime<Utc>;
}

impl RequestMessage for ReservationRequested {
    const KIND: RequestKind = RequestKind::Reservation;
    fn request_id(&self) -> Uuid {
        self.request_id
    }
    fn user_id(&self) -> Uuid {
        self.user_id
    }
    fn submitted_at(&self) -> DateTime<Utc> {
        self.submitted_at
    }
}

impl RequestMessage for PaymentRequested {
    const KIND: RequestKind = RequestKind::Payment;
    fn request_id(&self) -> Uuid {
        self.payment_id
    }
    fn user_id(&self) -> Uuid {
        self.user_id
    }
    fn submitted_at(&self) -> DateTime<Utc> {
        self.submitted_at
    }
}

/// Locks the seats in a stable order. Every decider locks seats before users.
pub async fn lock_seats(conn: &mut PgConnection, seats: &[SeatRef]) -> sqlx::Result<()> {
    let mut sorted: Vec<SeatRef> = seats.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let (dates, numbers): (Vec<i64>, Vec<i32>) = sorted.into_iter().unzip();
    sqlx::query(
        "SELECT 1 FROM seats s
         JOIN unnest($1::bigint[], $2::int[]) AS k(d, n) ON s.concert_date_id = k.d AND s.seat_no = k.n
         ORDER BY s.concert_date_id, s.seat_no
         FOR NO KEY UPDATE OF s",
    )
    .bind(&dates)
    .bind(&numbers)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the users in a stable order and returns those that exist.
pub async fn lock_users(conn: &mut PgConnection, users: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
    let mut sorted = users.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&sorted)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Request ids of the batch that the inbox already holds.
pub async fn already_processed(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashSet<Uuid>> {
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT request_id FROM processed_requests WHERE request_id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The transaction's clock, used for every time comparison and stamp of the batch.
pub async fn db_now(conn: &mut PgConnection) -> sqlx::Result<DateTime<Utc>> {
    let (now,): (DateTime<Utc>,) = sqlx::query_as("SELECT now()").fetch_one(conn).await?;
    Ok(now)
}

/// One inbox (`processed_requests`) row.
#[derive(Debug)]
pub struct InboxRow {
    pub request_id: Uuid,
    pub kind: &'static str,
    pub user_id: Uuid,
    pub outcome: &'static str,
    pub reason: Option<&'static str>,
    pub reservation_id: Option<Uuid>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub submitted_at: DateTime<Utc>,
}

impl InboxRow {
    pub fn new<T: RequestMessage>(
        incoming: &Incoming<T>,
        outcome: &'static str,
        reason: Option<&'static str>,
        reservation_id: Option<Uuid>,
    ) -> Self {
        Self {
            request_id: incoming.message.request_id(),
            kind: T::KIND.as_str(),
            user_id: incoming.message.user_id(),
            outcome,
            reason,
            reservation_id,
            topic: incoming.topic.clone(),
            partition: incoming.partition,
            offset: incoming.offset,
            submitted_at: incoming.message.submitted_at(),
        }
    }
}

/// The statement of [`record`], built once. A data-modifying CTE runs to completion whether or
/// not the main statement reads it.
static RECORD_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH inbox AS (
                 INSERT INTO processed_requests
                     (request_id, kind, user_id, outcome, reason, reservation_id, source_topic,
                      source_partition, source_offset, submitted_at)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                                      $6::uuid[], $7::text[], $8::int[], $9::bigint[],
                                      $10::timestamptz[])
             )
             {}",
        outbox::insert_sql(11)
    )
});

/// Records decided requests and their events in one statement: the inbox rows (a plain
/// insert: if another consumer decided one of them meanwhile, the primary key aborts this
/// transaction and the batch is retried) and the outbox events, in order. One statement
/// rather than two saves a round trip in every decision transaction.
pub async fn record(
    conn: &mut PgConnection,
    rows: &[InboxRow],
    events: &[NewEvent],
) -> sqlx::Result<()> {
    if rows.is_empty() && events.is_empty() {
        return Ok(());
    }
    let query = sqlx::query(&RECORD_SQL)
        .bind(rows.iter().map(|r| r.request_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reason).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.reservation_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.partition).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.offset).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.submitted_at).collect::<Vec<_>>());
    outbox::bind_events(query, events).execute(conn).await?;
    Ok(())
}
