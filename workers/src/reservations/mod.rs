//! Where a reservation is decided.
//!
//! A batch of requests from one partition (or several, merged) is decided in one transaction,
//! in offset order, with as few statements as the locks allow, since under load the cost of a
//! statement (a round trip, executor start-up) outweighs the work of each row in it:
//!
//! 1. lock the batch's seats (sorted);
//! 2. read, per request, whether it is decided, whether its user exists, its seat and the
//!    seat's live reservation, and the transaction's clock ([`read_state`]);
//! 3. only if some request could take a free seat: lock those users (sorted), then count
//!    their live holds;
//! 4. decide in memory;
//! 5. expire lapsed holds and insert new ones, if any;
//! 6. write the inbox rows and outbox events in one statement
//!    ([`crate::decision::record`]); a trigger notifies the relay.
//!
//! A batch whose requests are all for taken seats, the common case on sale day, is five
//! round trips with `BEGIN` and `COMMIT`.
//!
//! Only those users are locked because a user's lock guards the per-user hold limit, and a
//! request for a taken seat is refused whatever the user holds. On sale day most requests are
//! for taken seats: in the benchmark about one in ten could take its seat, and locking every
//! user was the deciders' most expensive statement (a WAL record per locked row, and waits
//! between batches that share users).
//!
//! The lock order is [`crate::decision`]'s, shared with payments, so concurrent batches of the
//! two topics cannot deadlock.

pub mod sweeper;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use seatline_shared::config::ReservationConfig;
use seatline_shared::domain::RejectReason;
use seatline_shared::kafka::seat_key;
use seatline_shared::messages::{
    aggregate_types, event_types, ReservationExpired, ReservationHeld, ReservationRejected,
    ReservationRequested,
};
use seatline_shared::queue::to_chrono;

use crate::decision::{lock_seats, lock_users, record, InboxRow, SeatRef};
use crate::outbox::NewEvent;
use crate::requests::Incoming;

/// What happened to one request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Held {
        reservation_id: Uuid,
        price: i64,
        expires_at: DateTime<Utc>,
    },
    Rejected(RejectReason),
    /// Decided before (redelivery or replay): nothing changed.
    AlreadyDecided,
    /// The user does not exist; the message goes to the dead-letter topic.
    UnknownUser,
}

/// What the database says about one request of the batch, read in one statement after the
/// seat locks.
#[derive(Debug, sqlx::FromRow)]
struct RequestState {
    /// The inbox already has it.
    decided: bool,
    user_exists: bool,
    /// The seat's price; `None` when the seat does not exist.
    price: Option<i64>,
    on_sale: Option<bool>,
    /// The seat's live (HELD or CONFIRMED) reservation, if any.
    live_id: Option<Uuid>,
    live_user_id: Option<Uuid>,
    live_status: Option<String>,
    live_expires_at: Option<DateTime<Utc>>,
    /// The transaction's clock, used for every comparison and stamp of the batch.
    now: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
struct SeatInfo {
    price: i64,
    on_sale: bool,
}

#[derive(Debug, Clone)]
struct LiveReservation {
    id: Uuid,
    user_id: Uuid,
    concert_date_id: i64,
    seat_no: i32,
    status: String,
    expires_at: DateTime<Utc>,
}

/// Per request, in batch order: whether it is decided, whether its user exists, its seat and
/// the seat's live reservation, with one index probe each. As plain joins, cached generic
/// plans hashed whole tables for each batch (every live reservation; every concert date), so
/// the cost grew with sales and with the catalog; `LIMIT 1` keeps each subquery from being
/// flattened into such a join. Read after the seat locks, in a statement of its own, so that a
/// concurrent decider of the same seats has committed and is seen.
async fn read_state(
    conn: &mut PgConnection,
    batch: &[Incoming<ReservationRequested>],
) -> sqlx::Result<Vec<RequestState>> {
    let ids: Vec<Uuid> = batch.iter().map(|r| r.message.request_id).collect();
    let users: Vec<Uuid> = batch.iter().map(|r| r.message.user_id).collect();
    let dates: Vec<i64> = batch.iter().map(|r| r.message.concert_date_id).collect();
    let numbers: Vec<i32> = batch.iter().map(|r| r.message.seat_no).collect();
    sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM processed_requests p WHERE p.request_id = k.id) AS decided,
                EXISTS (SELECT 1 FROM users u WHERE u.id = k.user_id) AS user_exists,
                s.price, s.on_sale,
                r.id AS live_id, r.user_id AS live_user_id, r.status AS live_status,
                r.expires_at AS live_expires_at,
                now() AS now
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[])
              WITH ORDINALITY AS k(id, user_id, d, n, i)
         LEFT JOIN LATERAL (
             SELECT s.price, (d.sales_open_at <= now() AND now() < d.sales_close_at) AS on_sale
             FROM seats s JOIN concert_dates d ON d.id = s.concert_date_id
             WHERE s.concert_date_id = k.d AND s.seat_no = k.n
             LIMIT 1
         ) s ON true
         LEFT JOIN LATERAL (
             SELECT r.id, r.user_id, r.status, r.expires_at FROM reservations r
             WHERE r.concert_date_id = k.d AND r.seat_no = k.n AND r.status IN ('HELD', 'CONFIRMED')
             LIMIT 1
         ) r ON true
         ORDER BY k.i",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&dates)
    .bind(&numbers)
    .fetch_all(conn)
    .await
}

/// Decides a batch inside `tx`; the caller commits. Outcomes are in batch order.
pub async fn decide(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming<ReservationRequested>],
    config: &ReservationConfig,
) -> sqlx::Result<Vec<Outcome>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let seats: Vec<SeatRef> = batch
        .iter()
        .map(|r| (r.message.concert_date_id, r.message.seat_no))
        .collect();
    lock_seats(tx, &seats).await?;
    let states = read_state(tx, batch).await?;
    let now = states.first().expect("one row per request").now;
    let expires_at = now + to_chrono(config.hold_ttl);

    let mut decided: HashSet<Uuid> = HashSet::new();
    let mut known_users: HashSet<Uuid> = HashSet::new();
    let mut seat_info: HashMap<SeatRef, SeatInfo> = HashMap::new();
    let mut live_by_seat: HashMap<SeatRef, LiveReservation> = HashMap::new();
    for (incoming, state) in batch.iter().zip(states) {
        let req = &incoming.message;
        let seat: SeatRef = (req.concert_date_id, req.seat_no);
        if state.decided {
            decided.insert(req.request_id);
        }
        if state.user_exists {
            known_users.insert(req.user_id);
        }
        if let (Some(price), Some(on_sale)) = (state.price, state.on_sale) {
            seat_info.insert(seat, SeatInfo { price, on_sale });
        }
        if let (Some(id), Some(user_id), Some(status), Some(expires_at)) = (
            state.live_id,
            state.live_user_id,
            state.live_status,
            state.live_expires_at,
        ) {
            live_by_seat.insert(
                seat,
                LiveReservation {
                    id,
                    user_id,
                    concert_date_id: seat.0,
                    seat_no: seat.1,
                    status,
                    expires_at,
                },
            );
        }
    }

    // The users whose request could take its seat: undecided, the seat on sale, and free or
    // held past its expiry (the seats are locked, so this holds until the commit). Seats only
    // become free in the loop below through such an expiry, so this covers every request
    // that reaches the hold-limit check.
    let mut claimants: Vec<Uuid> = Vec::new();
    for incoming in batch {
        let req = &incoming.message;
        let seat: SeatRef = (req.concert_date_id, req.seat_no);
        let could_take_seat = !decided.contains(&req.request_id)
            && known_users.contains(&req.user_id)
            && seat_info.get(&seat).is_some_and(|info| info.on_sale)
            && live_by_seat
                .get(&seat)
                .is_none_or(|live| live.status == "HELD" && live.expires_at <= now);
        if could_take_seat {
            claimants.push(req.user_id);
        }
    }
    let claimant_set: HashSet<Uuid> = claimants.iter().copied().collect();
    let mut holds: HashMap<Uuid, i64> = if claimants.is_empty() {
        HashMap::new()
    } else {
        // Locked, then counted in a statement of its own: a hold that a concurrent batch of
        // the same user committed while this one waited for the lock is counted.
        let locked = lock_users(tx, &claimants).await?;
        count_live_holds(tx, &locked, now, config.max_holds_per_user).await?
    };

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_holds: Vec<(Uuid, &Incoming<ReservationRequested>, i64)> = Vec::new();
    let mut expired: Vec<Uuid> = Vec::new();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut inbox: Vec<InboxRow> = Vec::new();

    for incoming in batch {
        let req = &incoming.message;
        if !decided.insert(req.request_id) {
            outcomes.push(Outcome::AlreadyDecided);
            continue;
        }
        if !known_users.contains(&req.user_id) {
            // Not recorded as decided: it is dead-lettered instead.
            decided.remove(&req.request_id);
            outcomes.push(Outcome::UnknownUser);
            continue;
        }
        let seat: SeatRef = (req.concert_date_id, req.seat_no);
        let outcome = match seat_info.get(&seat) {
            None => Outcome::Rejected(RejectReason::SeatNotFound),
            Some(info) if !info.on_sale => Outcome::Rejected(RejectReason::SalesClosed),
            Some(info) => {
                // A hold past its expiry frees the seat now, whether or not the sweeper ran.
                // Its event goes first, so the seat's events stay in the order they happened.
                if let Some(current) = live_by_seat.get(&seat) {
                    if current.status == "HELD" && current.expires_at <= now {
                        let lapsed = live_by_seat.remove(&seat).expect("present");
                        events.push(expired_event(ReservationExpired {
                            reservation_id: lapsed.id,
                            user_id: lapsed.user_id,
                            concert_date_id: lapsed.concert_date_id,
                            seat_no: lapsed.seat_no,
                            expired_at: now,
                        }));
                        expired.push(lapsed.id);
                    }
                }
                match live_by_seat.entry(seat) {
                    Entry::Occupied(_) => Outcome::Rejected(RejectReason::SeatTaken),
                    Entry::Vacant(_)
                        if holds.get(&req.user_id).copied().unwrap_or(0)
                            >= config.max_holds_per_user =>
                    {
                        Outcome::Rejected(RejectReason::HoldLimit)
                    }
                    Entry::Vacant(vacant) => {
                        debug_assert!(
                            claimant_set.contains(&req.user_id),
                            "a hold for a user whose lock was not taken"
                        );
                        let reservation_id = Uuid::now_v7();
                        *holds.entry(req.user_id).or_default() += 1;
                        vacant.insert(LiveReservation {
                            id: reservation_id,
                            user_id: req.user_id,
                            concert_date_id: seat.0,
                            seat_no: seat.1,
                            status: "HELD".into(),
                            expires_at,
                        });
                        new_holds.push((reservation_id, incoming, info.price));
                        Outcome::Held {
                            reservation_id,
                            price: info.price,
                            expires_at,
                        }
                    }
                }
            }
        };
        let key = seat_key(seat.0, seat.1);
        match &outcome {
            Outcome::Held {
                reservation_id,
                price,
                expires_at,
            } => {
                events.push(NewEvent::new(
                    aggregate_types::SEAT,
                    key,
                    event_types::RESERVATION_HELD,
                    &ReservationHeld {
                        request_id: req.request_id,
                        reservation_id: *reservation_id,
                        user_id: req.user_id,
                        concert_date_id: seat.0,
                        seat_no: seat.1,
                        price: *price,
                        expires_at: *expires_at,
                    },
                    incoming.traceparent.clone(),
                ));
                inbox.push(InboxRow::new(incoming, "HELD", None, Some(*reservation_id)));
            }
            Outcome::Rejected(reason) => {
                events.push(NewEvent::new(
                    aggregate_types::SEAT,
                    key,
                    event_types::RESERVATION_REJECTED,
                    &ReservationRejected {
                        request_id: req.request_id,
                        user_id: req.user_id,
                        concert_date_id: seat.0,
                        seat_no: seat.1,
                        reason: *reason,
                    },
                    incoming.traceparent.clone(),
                ));
                inbox.push(InboxRow::new(
                    incoming,
                    "REJECTED",
                    Some(reason.as_str()),
                    None,
                ));
            }
            Outcome::AlreadyDecided | Outcome::UnknownUser => {}
        }
        outcomes.push(outcome);
    }

    // Expiries first: they free the seats the new holds take (the unique index checks each row).
    if !expired.is_empty() {
        sqlx::query(
            "UPDATE reservations SET status = 'EXPIRED', expired_at = $2 WHERE id = ANY($1) AND status = 'HELD'",
        )
        .bind(&expired)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    insert_holds(tx, &new_holds, now, expires_at).await?;
    record(tx, &inbox, &events).await?;
    Ok(outcomes)
}

/// Live holds per user, counted up to `limit` (enough to decide), with one probe of
/// `reservations_user_live_idx` per user. The caller holds the users' locks.
async fn count_live_holds(
    conn: &mut PgConnection,
    users: &HashSet<Uuid>,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<HashMap<Uuid, i64>> {
    let users: Vec<Uuid> = users.iter().copied().collect();
    let counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT k.user_id, count(*)
         FROM unnest($1::uuid[]) AS k(user_id)
         CROSS JOIN LATERAL (
             SELECT 1 FROM reservations r
             WHERE r.user_id = k.user_id AND r.status = 'HELD' AND r.expires_at > $2
             LIMIT $3
         ) live
         GROUP BY k.user_id",
    )
    .bind(&users)
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(counts.into_iter().collect())
}

/// The `reservation.expired` event of a hold, written by the decider or the sweeper.
pub fn expired_event(expired: ReservationExpired) -> NewEvent {
    NewEvent::new(
        aggregate_types::SEAT,
        seat_key(expired.concert_date_id, expired.seat_no),
        event_types::RESERVATION_EXPIRED,
        &expired,
        None,
    )
}

async fn insert_holds(
    conn: &mut PgConnection,
    holds: &[(Uuid, &Incoming<ReservationRequested>, i64)],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    if holds.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = holds.iter().map(|h| h.0).collect();
    let request_ids: Vec<Uuid> = holds.iter().map(|h| h.1.message.request_id).collect();
    let users: Vec<Uuid> = holds.iter().map(|h| h.1.message.user_id).collect();
    let dates: Vec<i64> = holds.iter().map(|h| h.1.message.concert_date_id).collect();
    let seats: Vec<i32> = holds.iter().map(|h| h.1.message.seat_no).collect();
    let prices: Vec<i64> = holds.iter().map(|h| h.2).collect();
    sqlx::query(
        "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, held_at, expires_at)
         SELECT id, request_id, user_id, d, n, price, 'HELD', $7, $8
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::int[], $6::bigint[])
              AS h(id, request_id, user_id, d, n, price)",
    )
    .bind(&ids)
    .bind(&request_ids)
    .bind(&users)
    .bind(&dates)
    .bind(&seats)
    .bind(&prices)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}
