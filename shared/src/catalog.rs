//! The catalog: concerts, their dates and the 50 seats of each date. The admin API and the
//! `seed` command create through the same functions; the API reads listings from here.
//!
//! A seat's status is derived from its live reservation: SOLD when CONFIRMED, HELD while a hold
//! has not passed `expires_at`, AVAILABLE otherwise (an expired hold counts as available even
//! before the sweeper has marked it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::domain::SEATS_PER_DATE;

/// Upper bound of a seat price, so sums cannot overflow.
pub const PRICE_MAX: i64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("concert {0} not found")]
    ConcertNotFound(i64),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Concert {
    pub id: i64,
    pub title: String,
    pub venue: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewConcertDate {
    pub starts_at: DateTime<Utc>,
    pub default_price: i64,
    pub seat_prices: BTreeMap<i32, i64>,
    pub sales_open_at: Option<DateTime<Utc>>,
    pub sales_close_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcertDate {
    pub id: i64,
    pub concert_id: i64,
    pub starts_at: DateTime<Utc>,
    pub sales_open_at: DateTime<Utc>,
    pub sales_close_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DateAvailability {
    pub id: i64,
    pub starts_at: DateTime<Utc>,
    pub available_seats: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    pub seat_no: i32,
    pub price: i64,
    /// AVAILABLE, HELD or SOLD.
    #[schema(value_type = crate::domain::SeatStatus)]
    pub status: String,
}

fn check_text(field: &str, value: &str) -> Result<(), CatalogError> {
    let len = value.trim().chars().count();
    if len == 0 || value.chars().count() > 200 {
        return Err(CatalogError::Invalid(format!(
            "{field} must have 1 to 200 characters"
        )));
    }
    Ok(())
}

fn check_price(what: &str, price: i64) -> Result<(), CatalogError> {
    if !(0..=PRICE_MAX).contains(&price) {
        return Err(CatalogError::Invalid(format!(
            "{what} must be between 0 and {PRICE_MAX}"
        )));
    }
    Ok(())
}

pub async fn create_concert(
    pool: &PgPool,
    title: &str,
    venue: &str,
) -> Result<Concert, CatalogError> {
    check_text("title", title)?;
    check_text("venue", venue)?;
    Ok(sqlx::query_as::<_, Concert>(
        "INSERT INTO concerts (title, venue) VALUES ($1, $2) RETURNING id, title, venue, created_at",
    )
    .bind(title.trim())
    .bind(venue.trim())
    .fetch_one(pool)
    .await?)
}

/// Creates a date and its 50 seats in one transaction.
pub async fn create_concert_date(
    pool: &PgPool,
    concert_id: i64,
    new: &NewConcertDate,
) -> Result<ConcertDate, CatalogError> {
    check_price("defaultPrice", new.default_price)?;
    for (&seat_no, &price) in &new.seat_prices {
        if !(1..=SEATS_PER_DATE).contains(&seat_no) {
            return Err(CatalogError::Invalid(format!(
                "seatPrices: seat {seat_no} does not exist; seats are numbered 1 to {SEATS_PER_DATE}"
            )));
        }
        check_price(&format!("seatPrices[{seat_no}]"), price)?;
    }
    let now = Utc::now();
    let open = new.sales_open_at.unwrap_or(now);
    let close = new.sales_close_at.unwrap_or(new.starts_at);
    if close > new.starts_at {
        return Err(CatalogError::Invalid(
            "salesCloseAt must not be after startsAt".into(),
        ));
    }
    if open >= close {
        return Err(CatalogError::Invalid(
            "salesOpenAt must be before salesCloseAt (which defaults to startsAt)".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM concerts WHERE id = $1")
        .bind(concert_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(CatalogError::ConcertNotFound(concert_id));
    }
    let date = sqlx::query_as::<_, ConcertDate>(
        "INSERT INTO concert_dates (concert_id, starts_at, sales_open_at, sales_close_at)
         VALUES ($1, $2, $3, $4)
         RETURNING id, concert_id, starts_at, sales_open_at, sales_close_at",
    )
    .bind(concert_id)
    .bind(new.starts_at)
    .bind(open)
    .bind(close)
    .fetch_one(&mut *tx)
    .await?;
    let seat_nos: Vec<i32> = (1..=SEATS_PER_DATE).collect();
    let prices: Vec<i64> = seat_nos
        .iter()
        .map(|n| new.seat_prices.get(n).copied().unwrap_or(new.default_price))
        .collect();
    sqlx::query(
        "INSERT INTO seats (concert_date_id, seat_no, price)
         SELECT $1, * FROM unnest($2::int[], $3::bigint[])",
    )
    .bind(date.id)
    .bind(&seat_nos)
    .bind(&prices)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(date)
}

pub async fn list_concerts(pool: &PgPool) -> sqlx::Result<Vec<Concert>> {
    sqlx::query_as::<_, Concert>("SELECT id, title, venue, created_at FROM concerts ORDER BY id")
        .fetch_all(pool)
        .await
}

pub async fn concert_exists(pool: &PgPool, concert_id: i64) -> sqlx::Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM concerts WHERE id = $1")
        .bind(concert_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Dates of a concert still on sale with at least one seat not held or sold.
pub async fn available_dates(
    pool: &PgPool,
    concert_id: i64,
) -> sqlx::Result<Vec<DateAvailability>> {
    sqlx::query_as::<_, DateAvailability>(
        "SELECT d.id, d.starts_at,
                (SELECT count(*) FROM seats s WHERE s.concert_date_id = d.id)
                - (SELECT count(*) FROM reservations r
                   WHERE r.concert_date_id = d.id
                     AND (r.status = 'CONFIRMED' OR (r.status = 'HELD' AND r.expires_at > now())))
                AS available_seats
         FROM concert_dates d
         WHERE d.concert_id = $1 AND d.sales_open_at <= now() AND now() < d.sales_close_at
         ORDER BY d.starts_at, d.id",
    )
    .bind(concert_id)
    .fetch_all(pool)
    .await
    .map(|dates| {
        dates
            .into_iter()
            .filter(|d| d.available_seats > 0)
            .collect()
    })
}

/// All seats of a date with their status, or `None` when the date is not the concert's.
pub async fn seats_of_date(
    pool: &PgPool,
    concert_id: i64,
    concert_date_id: i64,
) -> sqlx::Result<Option<Vec<SeatView>>> {
    let date: Option<(i64,)> =
        sqlx::query_as("SELECT id FROM concert_dates WHERE id = $1 AND concert_id = $2")
            .bind(concert_date_id)
            .bind(concert_id)
            .fetch_optional(pool)
            .await?;
    if date.is_none() {
        return Ok(None);
    }
    let seats = sqlx::query_as::<_, SeatView>(
        "SELECT s.seat_no, s.price,
                CASE WHEN r.status = 'CONFIRMED' THEN 'SOLD'
                     WHEN r.status = 'HELD' AND r.expires_at > now() THEN 'HELD'
                     ELSE 'AVAILABLE' END AS status
         FROM seats s
         LEFT JOIN reservations r
           ON r.concert_date_id = s.concert_date_id AND r.seat_no = s.seat_no
          AND r.status IN ('HELD', 'CONFIRMED')
         WHERE s.concert_date_id = $1
         ORDER BY s.seat_no",
    )
    .bind(concert_date_id)
    .fetch_all(pool)
    .await?;
    Ok(Some(seats))
}

/// The seat numbers of a concert date, empty when the date does not exist. A date's seats are
/// created with it, in one transaction, and never change, so a non-empty answer is final.
pub async fn seat_numbers(pool: &PgPool, concert_date_id: i64) -> sqlx::Result<Vec<i32>> {
    let rows: Vec<(i32,)> = sqlx::query_as("SELECT seat_no FROM seats WHERE concert_date_id = $1")
        .bind(concert_date_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|(seat_no,)| seat_no).collect())
}
