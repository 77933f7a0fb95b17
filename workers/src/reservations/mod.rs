//! Where a reservation is decided.
//!
//! A batch of requests from one partition is decided in one transaction, in offset order, with
//! set-based statements: lock the batch's seats (sorted), read which requests are already
//! decided and the seats' live reservations, lock the users (sorted) whose request could take
//! a free seat and count their live holds, decide in memory, then write reservations, inbox
//! rows and outbox events in one statement each.
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

use crate::decision::{
    already_processed, db_now, existing_users, insert_inbox, lock_seats, lock_users, InboxRow,
    SeatRef,
};
use crate::outbox::{self, NewEvent};
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

#[derive(Debug, sqlx::FromRow)]
struct SeatRow {
    concert_date_id: i64,
    seat_no: i32,
    price: i64,
    on_sale: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct LiveReservation {
    id: Uuid,
    user_id: Uuid,
    concert_date_id: i64,
    seat_no: i32,
    status: String,
    expires_at: DateTime<Utc>,
}

/// Decides a batch inside `tx`; the caller commits. Outcomes are in batch order.
pub async fn decide(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming<ReservationRequested>],
    config: &ReservationConfig,
) -> sqlx::Result<Vec<Outcome>> {
    let seats: Vec<SeatRef> = batch
        .iter()
        .map(|r| (r.message.concert_date_id, r.message.seat_no))
        .collect();
    let ids: Vec<Uuid> = batch.iter().map(|r| r.message.request_id).collect();

    lock_seats(tx, &seats).await?;
    // Read after the locks: a concurrent decider of the same messages has committed by now.
    let mut decided = already_processed(tx, &ids).await?;
    let now = db_now(tx).await?;
    let expires_at = now + to_chrono(config.hold_ttl);

    let (dates, numbers): (Vec<i64>, Vec<i32>) = seats.iter().copied().unzip();
    let seat_rows: Vec<SeatRow> = sqlx::query_as(
        "SELECT s.concert_date_id, s.seat_no, s.price,
                (d.sales_open_at <= $3 AND $3 < d.sales_close_at) AS on_sale
         FROM seats s
         JOIN concert_dates d ON d.id = s.concert_date_id
         JOIN unnest($1::bigint[], $2::int[]) AS k(d, n) ON s.concert_date_id = k.d AND s.seat_no = k.n",
    )
    .bind(&dates)
    .bind(&numbers)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let seat_info: HashMap<SeatRef, SeatRow> = seat_rows
        .into_iter()
        .map(|s| ((s.concert_date_id, s.seat_no), s))
        .collect();

    // One index probe per seat of the batch. As a plain join, the cached generic plan hashed
    // every live reservation in the database for each batch, so the cost grew with sales.
    // LIMIT 1 keeps the subquery from being flattened into that join; the partial unique
    // index allows at most one live reservation per seat anyway.
    let live: Vec<LiveReservation> = sqlx::query_as(
        "SELECT r.id, r.user_id, r.concert_date_id, r.seat_no, r.status, r.expires_at
         FROM unnest($1::bigint[], $2::int[]) AS k(d, n)
         CROSS JOIN LATERAL (
             SELECT * FROM reservations r
             WHERE r.concert_date_id = k.d AND r.seat_no = k.n AND r.status IN ('HELD', 'CONFIRMED')
             LIMIT 1
         ) r",
    )
    .bind(&dates)
    .bind(&numbers)
    .fetch_all(&mut **tx)
    .await?;
    let mut live_by_seat: HashMap<SeatRef, LiveReservation> = live
        .into_iter()
        .map(|r| ((r.concert_date_id, r.seat_no), r))
        .collect();

    // The users whose request could take its seat: undecided, the seat on sale, and free or
    // held past its expiry (the seats are locked, so this holds until the commit). Seats only
    // become free in the loop below through such an expiry, so this covers every request
    // that reaches the hold-limit check.
    let mut claimants: Vec<Uuid> = Vec::new();
    let mut others: Vec<Uuid> = Vec::new();
    for incoming in batch {
        let req = &incoming.message;
        let seat: SeatRef = (req.concert_date_id, req.seat_no);
        let could_take_seat = !decided.contains(&req.request_id)
            && seat_info.get(&seat).is_some_and(|info| info.on_sale)
            && live_by_seat
                .get(&seat)
                .is_none_or(|live| live.status == "HELD" && live.expires_at <= now);
        if could_take_seat {
            claimants.push(req.user_id);
        } else {
            others.push(req.user_id);
        }
    }
    let claimant_set: HashSet<Uuid> = claimants.iter().copied().collect();
    others.retain(|user| !claimant_set.contains(user));
    others.sort_unstable();
    others.dedup();
    let claimants_known = lock_users(tx, &claimants).await?;
    let mut known_users = existing_users(tx, &others).await?;

    // Live holds per claimant, counted up to the limit (enough to decide), with one probe of
    // `reservations_user_live_idx` per user. A user who does not exist holds nothing.
    let distinct_users: Vec<Uuid> = claimants_known.iter().copied().collect();
    known_users.extend(claimants_known);
    let hold_counts: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT k.user_id, count(*)
         FROM unnest($1::uuid[]) AS k(user_id)
         CROSS JOIN LATERAL (
             SELECT 1 FROM reservations r
             WHERE r.user_id = k.user_id AND r.status = 'HELD' AND r.expires_at > $2
             LIMIT $3
         ) live
         GROUP BY k.user_id",
    )
    .bind(&distinct_users)
    .bind(now)
    .bind(config.max_holds_per_user)
    .fetch_all(&mut **tx)
    .await?;
    let mut holds: HashMap<Uuid, i64> = hold_counts.into_iter().collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut new_holds: Vec<(Uuid, &Incoming<ReservationRequested>, i64)> = Vec::new();
    let mut expired: Vec<LiveReservation> = Vec::new();
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
                if let Some(current) = live_by_seat.get(&seat) {
                    if current.status == "HELD" && current.expires_at <= now {
                        expired.push(live_by_seat.remove(&seat).expect("present"));
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
        let ids: Vec<Uuid> = expired.iter().map(|r| r.id).collect();
        sqlx::query(
            "UPDATE reservations SET status = 'EXPIRED', expired_at = $2 WHERE id = ANY($1) AND status = 'HELD'",
        )
        .bind(&ids)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        let expiry_events: Vec<NewEvent> = expired
            .iter()
            .map(|r| {
                expired_event(ReservationExpired {
                    reservation_id: r.id,
                    user_id: r.user_id,
                    concert_date_id: r.concert_date_id,
                    seat_no: r.seat_no,
                    expired_at: now,
                })
            })
            .collect();
        outbox::write(tx, &expiry_events).await?;
    }
    insert_holds(tx, &new_holds, now, expires_at).await?;
    insert_inbox(tx, &inbox).await?;
    outbox::write(tx, &events).await?;
    Ok(outcomes)
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
