//! The scenarios: `rush` (open-loop reservations, stepped up), `pay`, `queue` and
//! `baseline-sync` (the same decisions, one PostgreSQL transaction per request, no HTTP).

pub mod baseline;
pub mod pay;
pub mod queue;
pub mod rush;

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// Picks seats with Zipf-distributed popularity: seat rank 1 is the most wanted.
pub struct SeatPicker {
    dates: Vec<i64>,
    zipf: Option<Zipf<f64>>,
}

impl SeatPicker {
    pub fn new(dates: Vec<i64>, exponent: f64) -> Self {
        let seats = (dates.len() * 50) as u64;
        let zipf = (exponent > 0.0).then(|| Zipf::new(seats, exponent).expect("valid Zipf"));
        Self { dates, zipf }
    }

    pub fn pick(&self, rng: &mut impl Rng) -> (i64, i32) {
        let seats = self.dates.len() * 50;
        let rank = match &self.zipf {
            Some(z) => (z.sample(rng) as usize).clamp(1, seats) - 1,
            None => rng.gen_range(0..seats),
        };
        // Spread popular ranks over dates, so the hottest seats are on different dates.
        (
            self.dates[rank % self.dates.len()],
            (rank / self.dates.len()) as i32 + 1,
        )
    }
}
