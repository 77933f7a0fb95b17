//! What every decider shares: the lock order, the inbox of decided requests, and the
//! transaction's clock.
//!
//! Lock order: a batch locks its seats (sorted by lock key), then its users (sorted), before
//! anything else. Reservations and payments both follow it, so concurrent batches cannot
//! deadlock.
//!
//! A seat's lock is a transaction-scoped advisory lock ([`seat_lock_key`]), not a lock on its
//! row: a seat's hold, payment and expiry are serialised by it, and nothing else needs the seat
//! row locked (seats never change once created). A row lock writes the row (a WAL record, and
//! a whole-page image on the page's first change after a checkpoint); in the 1,000,000-seat
//! benchmark rush, where a batch locks seats on thousands of pages, those row locks were a
//! sixth of the WAL and nine tenths of its page images.
//!
//! Users are locked by row, `FOR NO KEY UPDATE`: that serialises deciders, charges and
//! payments on a user, but not the foreign-key checks (`FOR KEY SHARE`) of rows that merely
//! reference it, so the API recording a request of a user in a running batch does not wait
//! for that batch.

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

/// The advisory lock of a seat, in PostgreSQL's two-key space (which no single-key lock of
/// the project shares): the date's id above 25 bits, then its low 25 bits with the seat number
/// in the 6 bits below. Distinct for every seat of dates below 2^56; a seat number outside
/// 0..64, which no seat has, shares the lock of a real one, which only serialises more.
pub fn seat_lock_key((date, seat): SeatRef) -> (i32, i32) {
    let high = (date >> 25) as i32;
    let low = (((date & 0x1FF_FFFF) << 6) | i64::from(seat & 63)) as i32;
    (high, low)
}

/// The distinct lock keys of `seats`, in the one order every locker takes them.
fn sorted_lock_keys(seats: &[SeatRef]) -> (Vec<i32>, Vec<i32>) {
    let mut keys: Vec<(i32, i32)> = seats.iter().copied().map(seat_lock_key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().unzip()
}

/// Locks the seats, waiting for any other transaction that holds one, in a stable order. Every
/// decider locks seats before users. The locks last until the transaction ends.
///
/// Each lock takes a slot of PostgreSQL's shared lock table (`max_locks_per_transaction` x
/// `max_connections` slots, 6,400 by default): a batch holds one per distinct seat, at most
/// `WORKER_BATCH_SIZE`. Should the table fill, the statement fails and the batch is retried
/// like any failed batch, once other batches have committed.
pub async fn lock_seats(conn: &mut PgConnection, seats: &[SeatRef]) -> sqlx::Result<()> {
    let (high, low) = sorted_lock_keys(seats);
    if high.is_empty() {
        return Ok(());
    }
    // unnest yields the keys in array order, so they are taken in that order.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k.high, k.low) FROM unnest($1::int[], $2::int[]) AS k(high, low)",
    )
    .bind(&high)
    .bind(&low)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks those of the seats that no other transaction holds, without waiting, and returns
/// them; the others are left for later.
pub async fn try_lock_seats(
    conn: &mut PgConnection,
    seats: &[SeatRef],
) -> sqlx::Result<HashSet<SeatRef>> {
    let mut locked = HashSet::new();
    let (high, low) = sorted_lock_keys(seats);
    if high.is_empty() {
        return Ok(locked);
    }
    let taken: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT k.high, k.low FROM unnest($1::int[], $2::int[]) AS k(high, low)
         WHERE pg_try_advisory_xact_lock(k.high, k.low)",
    )
    .bind(&high)
    .bind(&low)
    .fetch_all(&mut *conn)
    .await?;
    let taken: HashSet<(i32, i32)> = taken.into_iter().collect();
    locked.extend(
        seats
            .iter()
            .copied()
            .filter(|seat| taken.contains(&seat_lock_key(*seat))),
    );
    Ok(locked)
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::seat_lock_key;

    /// Every seat of nearby and far-apart dates has a lock of its own, with a low key that is
    /// never negative; only a seat number no seat has shares a lock.
    #[test]
    fn seats_have_distinct_lock_keys() {
        let dates = [1, 2, 63, 64, (1 << 25) - 1, 1 << 25, (1 << 25) + 1, 1 << 40];
        let mut keys = HashSet::new();
        for date in dates {
            for seat in 1..=50 {
                let key = seat_lock_key((date, seat));
                assert!(key.1 >= 0, "{date}:{seat} -> {key:?}");
                assert!(keys.insert(key), "{date}:{seat} shares {key:?}");
            }
        }
        assert_eq!(seat_lock_key((7, 64 + 3)), seat_lock_key((7, 3)));
    }
}
