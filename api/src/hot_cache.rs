//! Caches that take database round trips off the request hot path, each with an explicit
//! staleness bound.
//!
//! - **Admitted tokens** (`TOKEN_CACHE_TTL`, default 1 s): the state of an ACTIVE token, keyed
//!   by user (one live token per user), read by every token check, status polls included. A
//!   token that ends within the bound may still pass on this instance for at most that long; a
//!   payment ends it at once, because the event listener drops the payer's entry when it sees
//!   `payment.succeeded`, before waking waiters.
//! - **Seat prices** (no expiry): seats are created with their date and never change or
//!   disappear. Only found seats are cached; a miss always asks the database.

use std::time::Duration;

use moka::sync::Cache;
use seatline_shared::queue::TokenView;
use uuid::Uuid;

/// Most entries of each cache; the least recently used go first.
const CAPACITY: u64 = 200_000;

#[derive(Clone)]
pub struct HotCache {
    active_tokens: Option<Cache<Uuid, TokenView>>,
    seat_prices: Cache<(i64, i32), i64>,
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
            seat_prices: Cache::builder().max_capacity(CAPACITY).build(),
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

    pub fn seat_price(&self, concert_date_id: i64, seat_no: i32) -> Option<i64> {
        self.seat_prices.get(&(concert_date_id, seat_no))
    }

    pub fn remember_seat_price(&self, concert_date_id: i64, seat_no: i32, price: i64) {
        self.seat_prices.insert((concert_date_id, seat_no), price);
    }
}
