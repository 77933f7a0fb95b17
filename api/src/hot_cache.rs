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
//!
//!   Tokens that requests keep using are read again in bulk before the bound runs out
//!   ([`crate::token_refresher`]), off the request path; an entry that no request used since
//!   it was read is left to expire. Users admitted together are first cached together, so
//!   without the refresh their entries also expired together, every bound, and every one of
//!   them then read the database on its next request: in the benchmark's rush (20,000 users)
//!   each such wave took about a third more of the api's CPU and two thirds more of
//!   PostgreSQL's for the 10 s it fell in.
//! - **Seats of a date** (no expiry): which seat numbers a concert date has, as a bit set.
//!   Seats are created with their date, in one transaction, and never change or disappear, so
//!   one read per date serves every seat of it. Only existing dates are cached; an unknown
//!   date always asks the database.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use seatline_shared::queue::TokenView;
use uuid::Uuid;

/// Most entries of each cache; the least recently used go first.
const CAPACITY: u64 = 200_000;

#[derive(Clone)]
pub struct HotCache {
    active_tokens: Option<Cache<Uuid, Arc<CachedToken>>>,
    date_seats: Cache<i64, SeatSet>,
}

/// An ACTIVE token as cached: the row as read, when, and whether a request used it since.
struct CachedToken {
    view: TokenView,
    read_at: Instant,
    used: AtomicBool,
}

impl CachedToken {
    fn fresh(view: TokenView) -> Arc<Self> {
        Arc::new(Self {
            view,
            read_at: Instant::now(),
            used: AtomicBool::new(false),
        })
    }
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
        let cached = self
            .active_tokens
            .as_ref()?
            .get(&user)
            .filter(|c| c.view.id == token_id)?;
        // Read before written: most hits find it set, and leave the cache line shared.
        if !cached.used.load(Ordering::Relaxed) {
            cached.used.store(true, Ordering::Relaxed);
        }
        let mut view = cached.view.clone();
        // Liveness is judged against now, not against when the entry was read.
        view.now = chrono::Utc::now();
        Some(view)
    }

    pub fn remember_active_token(&self, view: &TokenView) {
        if let Some(cache) = &self.active_tokens {
            cache.insert(view.user_id, CachedToken::fresh(view.clone()));
        }
    }

    /// Whether a token of `user` is cached, without counting as a use of it.
    pub fn has_token_of(&self, user: Uuid) -> bool {
        self.active_tokens
            .as_ref()
            .is_some_and(|cache| cache.contains_key(&user))
    }

    /// The cached tokens read at least `age` ago and used since, as (user, token id).
    pub fn tokens_to_refresh(&self, age: Duration) -> Vec<(Uuid, Uuid)> {
        let Some(cache) = &self.active_tokens else {
            return Vec::new();
        };
        cache
            .iter()
            .filter(|(_, c)| c.used.load(Ordering::Relaxed) && c.read_at.elapsed() >= age)
            .map(|(user, c)| (*user, c.view.id))
            .collect()
    }

    /// Replaces a cached token with `fresh`, a new read of it that is still ACTIVE, or drops
    /// it (`None`). An entry that is gone, or holds another token, is left as it is: a payment
    /// that dropped it while the read was in flight keeps it dropped.
    pub fn refresh_token(&self, user: Uuid, token_id: Uuid, fresh: Option<TokenView>) {
        let Some(cache) = &self.active_tokens else {
            return;
        };
        cache.entry(user).and_compute_with(|current| match current {
            Some(entry) if entry.value().view.id == token_id => match fresh {
                Some(view) => Op::Put(CachedToken::fresh(view)),
                None => Op::Remove,
            },
            _ => Op::Nop,
        });
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
    use super::{HotCache, SeatSet};
    use seatline_shared::queue::TokenView;
    use std::time::Duration;
    use uuid::Uuid;

    fn active_view() -> TokenView {
        let now = chrono::Utc::now();
        TokenView {
            id: Uuid::new_v4(),
            user_id: Uuid::new_v4(),
            seq: 1,
            status: "ACTIVE".into(),
            issued_at: now,
            last_seen_at: now,
            activated_at: Some(now),
            expires_at: Some(now + chrono::Duration::hours(1)),
            position: 0,
            admit_rate: 0.0,
            now,
        }
    }

    #[test]
    fn only_tokens_used_since_their_read_are_due_for_a_refresh() {
        let cache = HotCache::new(Duration::from_secs(60));
        let (used, unused) = (active_view(), active_view());
        cache.remember_active_token(&used);
        cache.remember_active_token(&unused);
        assert!(cache.tokens_to_refresh(Duration::ZERO).is_empty());
        assert!(cache.active_token(used.user_id, used.id).is_some());
        assert_eq!(
            cache.tokens_to_refresh(Duration::ZERO),
            vec![(used.user_id, used.id)]
        );
        // Not old enough yet.
        assert!(cache.tokens_to_refresh(Duration::from_secs(30)).is_empty());
        // A refresh is a new read, not used since.
        cache.refresh_token(used.user_id, used.id, Some(used.clone()));
        assert!(cache.tokens_to_refresh(Duration::ZERO).is_empty());
        assert!(cache.active_token(used.user_id, used.id).is_some());
    }

    #[test]
    fn a_refresh_drops_a_token_no_longer_active_and_revives_no_dropped_one() {
        let cache = HotCache::new(Duration::from_secs(60));
        let ended = active_view();
        cache.remember_active_token(&ended);
        cache.refresh_token(ended.user_id, ended.id, None);
        assert!(cache.active_token(ended.user_id, ended.id).is_none());

        // A payment dropped it while its read was in flight: the read does not bring it back.
        let paid = active_view();
        cache.remember_active_token(&paid);
        cache.forget_user(paid.user_id);
        cache.refresh_token(paid.user_id, paid.id, Some(paid.clone()));
        assert!(cache.active_token(paid.user_id, paid.id).is_none());

        // The user's entry now holds a newer token: a refresh of the old one leaves it alone.
        let old = active_view();
        let newer = TokenView {
            id: Uuid::new_v4(),
            ..old.clone()
        };
        cache.remember_active_token(&newer);
        cache.refresh_token(old.user_id, old.id, None);
        assert!(cache.active_token(newer.user_id, newer.id).is_some());
    }

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
