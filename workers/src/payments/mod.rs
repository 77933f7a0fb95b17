//! Where a payment is decided.
//!
//! A batch of payment requests from one partition is decided in one transaction, in offset
//! order, after the shared lock order (seats, then users). A payment succeeds when the
//! reservation is HELD by the payer and not past `expires_at` (whether or not the sweeper ran),
//! and the balance covers the price. Then, in the same transaction: the balance is deducted with
//! a ledger row, the payment is PAID, the reservation CONFIRMED (the seat SOLD), the payer's
//! queue token COMPLETED (freeing an active slot), and `payment.succeeded` plus
//! `reservation.confirmed` go to the outbox. Otherwise the payment is FAILED with a reason,
//! nothing moves, and `payment.failed` goes to the outbox.
//!
//! The payment id is the request id: a retry, a redelivery or a replay finds it in the inbox
//! and changes nothing, so money moves once.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use seatline_shared::domain::PaymentFailReason;
use seatline_shared::kafka::seat_key;
use seatline_shared::messages::{
    aggregate_types, event_types, PaymentFailed, PaymentRequested, PaymentSucceeded,
    ReservationConfirmed,
};
use seatline_shared::{points, queue};

use crate::decision::{
    already_processed, db_now, lock_seats, lock_users, record, InboxRow, SeatRef,
};
use crate::outbox::NewEvent;
use crate::requests::Incoming;

/// What happened to one payment request of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Paid {
        amount: i64,
        balance_after: i64,
    },
    Failed(PaymentFailReason),
    /// Decided before (retry, redelivery or replay): nothing changed.
    AlreadyDecided,
    /// The payer does not exist; the message goes to the dead-letter topic.
    UnknownUser,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct ReservationRow {
    id: Uuid,
    user_id: Uuid,
    concert_date_id: i64,
    seat_no: i32,
    price: i64,
    status: String,
    expires_at: DateTime<Utc>,
}

/// Decides a batch inside `tx`; the caller commits. Outcomes are in batch order.
pub async fn decide(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[Incoming<PaymentRequested>],
) -> sqlx::Result<Vec<Outcome>> {
    let ids: Vec<Uuid> = batch.iter().map(|p| p.message.payment_id).collect();
    let reservation_ids: Vec<Uuid> = batch.iter().map(|p| p.message.reservation_id).collect();
    let users: Vec<Uuid> = batch.iter().map(|p| p.message.user_id).collect();

    // The message names the seat it was keyed by; the reservation row is the truth, so lock
    // the seats of both (they are the same unless the message is inconsistent).
    let mut reservations: HashMap<Uuid, ReservationRow> = load_reservations(tx, &reservation_ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut seats: Vec<SeatRef> = batch
        .iter()
        .map(|p| (p.message.concert_date_id, p.message.seat_no))
        .collect();
    seats.extend(
        reservations
            .values()
            .map(|r| (r.concert_date_id, r.seat_no)),
    );
    lock_seats(tx, &seats).await?;
    let known_users = lock_users(tx, &users).await?;
    let mut decided = already_processed(tx, &ids).await?;
    let now = db_now(tx).await?;
    // Re-read under the seat locks: a concurrent decider may have changed them.
    reservations = load_reservations(tx, &reservation_ids)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut paid: HashSet<Uuid> = paid_reservations(tx, &reservation_ids).await?;

    let mut outcomes = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut inbox = Vec::new();
    for incoming in batch {
        let req = &incoming.message;
        if !decided.insert(req.payment_id) {
            outcomes.push(Outcome::AlreadyDecided);
            continue;
        }
        if !known_users.contains(&req.user_id) {
            decided.remove(&req.payment_id);
            outcomes.push(Outcome::UnknownUser);
            continue;
        }
        let reservation = reservations.get(&req.reservation_id).cloned();
        let failure = match &reservation {
            None => Some(PaymentFailReason::ReservationNotFound),
            Some(r) if r.user_id != req.user_id => Some(PaymentFailReason::NotOwner),
            Some(r) if r.status == "CONFIRMED" || paid.contains(&r.id) => {
                Some(PaymentFailReason::AlreadyPaid)
            }
            Some(r) if r.status != "HELD" || r.expires_at <= now => {
                Some(PaymentFailReason::HoldExpired)
            }
            Some(_) => None,
        };
        let outcome = match (failure, reservation) {
            (Some(reason), reservation) => {
                let amount = reservation.as_ref().map_or(0, |r| r.price);
                record_failure(tx, req, amount, reason).await?;
                events.push(failed_event(incoming, reason));
                Outcome::Failed(reason)
            }
            (None, Some(r)) => {
                match points::deduct_for_payment(tx, req.user_id, r.price, req.payment_id).await? {
                    None => {
                        record_failure(tx, req, r.price, PaymentFailReason::InsufficientBalance)
                            .await?;
                        events.push(failed_event(
                            incoming,
                            PaymentFailReason::InsufficientBalance,
                        ));
                        Outcome::Failed(PaymentFailReason::InsufficientBalance)
                    }
                    Some(balance_after) => {
                        confirm(tx, req, &r, balance_after, now).await?;
                        paid.insert(r.id);
                        if let Some(held) = reservations.get_mut(&r.id) {
                            held.status = "CONFIRMED".into();
                        }
                        events.extend(success_events(incoming, &r, balance_after, now));
                        Outcome::Paid {
                            amount: r.price,
                            balance_after,
                        }
                    }
                }
            }
            (None, None) => unreachable!("a missing reservation is a failure"),
        };
        let (label, reason) = match &outcome {
            Outcome::Paid { .. } => ("PAID", None),
            Outcome::Failed(reason) => ("FAILED", Some(reason.as_str())),
            Outcome::AlreadyDecided | Outcome::UnknownUser => unreachable!("handled above"),
        };
        inbox.push(InboxRow::new(
            incoming,
            label,
            reason,
            Some(req.reservation_id),
        ));
        outcomes.push(outcome);
    }
    record(tx, &inbox, &events).await?;
    Ok(outcomes)
}

async fn load_reservations(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<Vec<ReservationRow>> {
    sqlx::query_as(
        "SELECT id, user_id, concert_date_id, seat_no, price, status, expires_at
         FROM reservations WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

async fn paid_reservations(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT reservation_id FROM payments WHERE reservation_id = ANY($1) AND status = 'PAID'",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

async fn record_failure(
    conn: &mut PgConnection,
    req: &PaymentRequested,
    amount: i64,
    reason: PaymentFailReason,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, user_id, reservation_id, status, reason, amount)
         VALUES ($1, $2, $3, 'FAILED', $4, $5)",
    )
    .bind(req.payment_id)
    .bind(req.user_id)
    .bind(req.reservation_id)
    .bind(reason.as_str())
    .bind(amount)
    .execute(conn)
    .await?;
    Ok(())
}

/// Payment PAID, reservation CONFIRMED, the payer's queue token COMPLETED.
async fn confirm(
    conn: &mut PgConnection,
    req: &PaymentRequested,
    reservation: &ReservationRow,
    balance_after: i64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO payments (id, user_id, reservation_id, status, amount, balance_after, paid_at)
         VALUES ($1, $2, $3, 'PAID', $4, $5, $6)",
    )
    .bind(req.payment_id)
    .bind(req.user_id)
    .bind(reservation.id)
    .bind(reservation.price)
    .bind(balance_after)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE reservations SET status = 'CONFIRMED', confirmed_at = $2 WHERE id = $1 AND status = 'HELD'")
        .bind(reservation.id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    queue::complete_active_token(conn, req.user_id).await?;
    Ok(())
}

fn failed_event(incoming: &Incoming<PaymentRequested>, reason: PaymentFailReason) -> NewEvent {
    let req = &incoming.message;
    NewEvent::new(
        aggregate_types::PAYMENT,
        req.payment_id.to_string(),
        event_types::PAYMENT_FAILED,
        &PaymentFailed {
            payment_id: req.payment_id,
            reservation_id: req.reservation_id,
            user_id: req.user_id,
            reason,
        },
        incoming.traceparent.clone(),
    )
}

fn success_events(
    incoming: &Incoming<PaymentRequested>,
    r: &ReservationRow,
    balance_after: i64,
    now: DateTime<Utc>,
) -> [NewEvent; 2] {
    let req = &incoming.message;
    [
        NewEvent::new(
            aggregate_types::PAYMENT,
            req.payment_id.to_string(),
            event_types::PAYMENT_SUCCEEDED,
            &PaymentSucceeded {
                payment_id: req.payment_id,
                reservation_id: r.id,
                user_id: req.user_id,
                concert_date_id: r.concert_date_id,
                seat_no: r.seat_no,
                amount: r.price,
                balance_after,
                paid_at: now,
            },
            incoming.traceparent.clone(),
        ),
        NewEvent::new(
            aggregate_types::SEAT,
            seat_key(r.concert_date_id, r.seat_no),
            event_types::RESERVATION_CONFIRMED,
            &ReservationConfirmed {
                reservation_id: r.id,
                payment_id: req.payment_id,
                user_id: req.user_id,
                concert_date_id: r.concert_date_id,
                seat_no: r.seat_no,
                confirmed_at: now,
            },
            incoming.traceparent.clone(),
        ),
    ]
}
