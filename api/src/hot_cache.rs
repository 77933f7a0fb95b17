//! Caches that take database round trips off the request hot path, each with an explicit
//! staleness bound.
//!
//! - **Admitted tokens** (`TOKEN_CACHE_TTL`, default 30 s): the state of an ACTIVE token, keyed
//!   by user (one live token per user), read by every token check, status polls included. An
//!   ACTIVE token ends in one of two ways. It expires at its `expires_at`, which every use
//!   checks against the clock, so expiry is never stale. Or a payment completes it; the event
//!   listener drops the payer's entry when it sees `payment.succeeded`, before waking waiters.
//!   So the bound matters only while that listener lags: a completed token may then pass on
//!   this instance for at most `TOKEN_CACHE_TTL`. On sale day a user submits every few seconds
//!   or less often, so a bound of a second missed nearly every check.
//! - **Seats of a date** (no expiry): which seat numbers a concert date has, as a bit set.
//!   Seats are created with their date, in one transaction, and never change or disappear, so
//!   one read per date serves every seat of it. Only existing dates are cached; an unknown
//!   date always asks the database.

use std::time::Duration;

use moka::sync::Cache;
use seatline_shared::queue::TokenView;
use uuid::Uuid;

/// Most entries of each cache; the least recently used go first.
const CAPACITY: u64 = 200_000;

#[derive(Clone)]
pub struct HotCache {
    active_tokens: Option<Cache<Uuid, TokenView>>,
    date_seats: Cache<i64, SeatSet>,
}

/// The seat numbers of one concert date (1..=50), as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeatSet(u64);

impl SeatSet {
    pub fn contains(self, seat_no: i32) -> bool {
        (0..64).contains(&seat_no) && self.0 & (1 << seat_no) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<i32> for SeatSet {
    /// Numbers outside 0..64 cannot be seats (the schema allows 1..=50) and are left out.
    fn from_iter<T: IntoIterator<Item = i32>>(seat_numbers: T) -> Self {
        Self(
            seat_numbers
                .into_iter()
                .filter(|n| (0..64).contains(n))
                .fold(0, |bits, n| bits | 1 << n),
        )
    }
}

impl HotCache {
    /// `token_ttl` zero disables the token cache.
    pub fn new(token_ttl: Duration) -> Self {
        Self {
            active_tokens: (!token_ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(token_ttl)
                    .build()
            }),
            date_seats: Cache::builder().max_capacity(CAPACITY).build(),
        }
    }

    /// The cached ACTIVE token of `user`, if it is the given token.
    pub fn active_token(&self, user: Uuid, token_id: Uuid) -> Option<TokenView> {
        let mut view = self
            .active_tokens
            .as_ref()?
            .get(&user)
            .filter(|v| v.id == token_id)?;
        // Liveness is judged against now, not against when the entry was read.
        view.now = chrono::Utc::now();
        Some(view)
    }

    pub fn remember_active_token(&self, view: &TokenView) {
        if let Some(cache) = &self.active_tokens {
            cache.insert(view.user_id, view.clone());
        }
    }

    /// Drops a user's cached token (its payment completed it).
    pub fn forget_user(&self, user: Uuid) {
        if let Some(cache) = &self.active_tokens {
            cache.invalidate(&user);
        }
    }

    /// The seats of a cached concert date.
    pub fn date_seats(&self, concert_date_id: i64) -> Option<SeatSet> {
        self.date_seats.get(&concert_date_id)
    }

    /// Caches an existing date's seats (empty sets are not cached: the date may yet be created).
    pub fn remember_date_seats(&self, concert_date_id: i64, seats: SeatSet) {
        if !seats.is_empty() {
            self.date_seats.insert(concert_date_id, seats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SeatSet;

    #[test]
    fn a_seat_set_holds_exactly_the_numbers_it_was_built_from() {
        let seats: SeatSet = [1, 2, 50].into_iter().collect();
        assert!(seats.contains(1) && seats.contains(2) && seats.contains(50));
        assert!(!seats.contains(3) && !seats.contains(49) && !seats.contains(51));
        assert!(!seats.contains(0) && !seats.contains(-1) && !seats.contains(64));
        let full: SeatSet = (1..=50).collect();
        assert!((1..=50).all(|n| full.contains(n)));
        assert!(SeatSet::default().is_empty());
        assert!(!full.is_empty());
        let out_of_range: SeatSet = [-3, 64, 1_000].into_iter().collect();
        assert!(out_of_range.is_empty());
    }
}
