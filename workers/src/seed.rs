//! Demo data: a few concerts with several dates each, 50 priced seats per date. Created
//! through the same catalog functions as the admin API.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use seatline_shared::catalog::{self, NewConcertDate};
use sqlx::PgPool;

const CONCERTS: [(&str, &str); 3] = [
    ("Spring Symphony", "Seoul Arts Center"),
    ("Midnight Jazz", "Blue Note Hall"),
    ("Indie Rock Night", "Olympic Hall"),
];
const DATES_PER_CONCERT: i64 = 4;

/// What seeding did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    Skipped,
    Created { concerts: usize, dates: usize },
}

pub async fn seed(pool: &PgPool) -> anyhow::Result<Seeded> {
    if !catalog::list_concerts(pool).await?.is_empty() {
        return Ok(Seeded::Skipped);
    }
    let mut dates = 0;
    for (i, (title, venue)) in CONCERTS.iter().enumerate() {
        let concert = catalog::create_concert(pool, title, venue).await?;
        for d in 0..DATES_PER_CONCERT {
            // Front rows (1-10) cost more than the rest.
            let seat_prices: BTreeMap<i32, i64> = (1..=10).map(|s| (s, 150_000)).collect();
            let new = NewConcertDate {
                starts_at: Utc::now() + Duration::days(30 + 7 * d + i as i64),
                default_price: 80_000,
                seat_prices,
                sales_open_at: None,
                sales_close_at: None,
            };
            catalog::create_concert_date(pool, concert.id, &new).await?;
            dates += 1;
        }
    }
    Ok(Seeded::Created {
        concerts: CONCERTS.len(),
        dates,
    })
}
