//! The waiting queue's store: issuing tokens, reading a token with its place in line, and
//! admission (run by the workers' admitter).
//!
//! Every token gets a gapless arrival number `seq`. Admission is FIFO by `seq`, and
//! `queue_state.admitted_through` is the highest `seq` admitted so far. A waiter's position is
//! therefore `seq - admitted_through` minus the waiters between the two who left the line
//! (abandoned or expired while waiting). Those are counted in a Fenwick tree
//! (`queue_dropped_tree`), so a position costs O(log n) index lookups and never counts the
//! waiting set.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::config::QueueConfig;
use crate::domain::TokenStatus;

/// Fenwick tree size: seq values up to 2^40 (a trillion arrivals).
const TREE_SIZE: i64 = 1 << 40;

/// Advisory lock key held by the one admitter that runs at a time.
pub const ADMITTER_LOCK: i64 = 0x5EA7_0001;

/// A token row with its live place in line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub seq: i64,
    pub status: String,
    pub issued_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// 1-based place among waiters; 0 once admitted.
    pub position: i64,
    /// Recent admissions per second, as measured by the admitter.
    pub admit_rate: f64,
    /// The database's clock when the row was read.
    pub now: DateTime<Utc>,
}

impl TokenView {
    pub fn status(&self) -> Option<TokenStatus> {
        self.status.parse().ok()
    }

    /// When the token stops being valid if nothing else happens: an ACTIVE token at its
    /// expiry, a WAITING one when it would count as abandoned.
    pub fn valid_until(&self, config: &QueueConfig) -> Option<DateTime<Utc>> {
        match self.status() {
            Some(TokenStatus::Active) => self.expires_at,
            Some(TokenStatus::Waiting) => Some(self.last_seen_at + to_chrono(config.wait_idle_ttl)),
            _ => None,
        }
    }

    /// Live: ACTIVE before its expiry, or WAITING and polled recently.
    pub fn is_live(&self, config: &QueueConfig) -> bool {
        self.valid_until(config)
            .is_some_and(|until| until > self.now)
    }

    /// Seconds until admission, from the measured admission rate. Where nobody was admitted
    /// lately (all slots taken), the rate at which ACTIVE slots turn over bounds it.
    pub fn estimated_wait_seconds(&self, config: &QueueConfig) -> i64 {
        if self.position <= 0 {
            return 0;
        }
        let configured = config.admit_per_sec.max(1) as f64;
        let turnover = config.max_active.max(1) as f64 / config.active_ttl.as_secs_f64().max(1.0);
        let rate = if self.admit_rate > 0.0 {
            self.admit_rate.min(configured)
        } else {
            turnover.min(configured)
        };
        (self.position as f64 / rate).ceil() as i64
    }
}

pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The columns of a [`TokenView`], over `queue_tokens t` and `queue_state s`.
macro_rules! token_view_columns {
    () => {
        r#"t.id, t.user_id, t.seq, t.status, t.issued_at, t.last_seen_at, t.activated_at,
           t.expires_at,
           CASE WHEN t.status = 'WAITING'
                THEN (t.seq - s.admitted_through)
                     - (queue_dropped_prefix(t.seq - 1) - queue_dropped_prefix(s.admitted_through))
                ELSE 0 END AS position,
           s.admit_rate,
           now() AS now"#
    };
}

const TOKEN_VIEW_SQL: &str = concat!(
    "SELECT ",
    token_view_columns!(),
    " FROM queue_tokens t CROSS JOIN queue_state s"
);

/// Reads a token by id with its position, in one statement (one snapshot).
pub async fn token_view(
    conn: &mut PgConnection,
    token_id: Uuid,
) -> sqlx::Result<Option<TokenView>> {
    sqlx::query_as::<_, TokenView>(&format!("{TOKEN_VIEW_SQL} WHERE t.id = $1"))
        .bind(token_id)
        .fetch_optional(conn)
        .await
}

/// [`token_view`] for many tokens in one statement; tokens not found are left out.
pub async fn token_views(pool: &PgPool, token_ids: &[Uuid]) -> sqlx::Result<Vec<TokenView>> {
    sqlx::query_as::<_, TokenView>(&format!("{TOKEN_VIEW_SQL} WHERE t.id = ANY($1)"))
        .bind(token_ids)
        .fetch_all(pool)
        .await
}

/// How old a waiter's recorded poll may get before a poll records it again: a tenth of
/// `wait_idle_ttl`. Most polls then write nothing, and a waiter who polls at least every nine
/// tenths of `wait_idle_ttl` keeps its place.
pub fn poll_record_interval(config: &QueueConfig) -> std::time::Duration {
    config.wait_idle_ttl / 10
}

/// A poll of `view`, the token as just read: a WAITING, live token whose last recorded poll
/// is older than [`poll_record_interval`] has this one recorded, so the waiter keeps its place.
/// Returns the token as it is after the poll.
pub async fn poll_token(
    pool: &PgPool,
    view: TokenView,
    config: &QueueConfig,
) -> sqlx::Result<Option<TokenView>> {
    let unrecorded = (view.now - view.last_seen_at).to_std().unwrap_or_default();
    if view.status() != Some(TokenStatus::Waiting)
        || !view.is_live(config)
        || unrecorded < poll_record_interval(config)
    {
        return Ok(Some(view));
    }
    let mut conn = pool.acquire().await?;
    let recorded = sqlx::query_as::<_, TokenView>(concat!(
        "UPDATE queue_tokens t SET last_seen_at = now() FROM queue_state s
         WHERE t.id = $1 AND t.status = 'WAITING'
         RETURNING ",
        token_view_columns!()
    ))
    .bind(view.id)
    .fetch_optional(&mut *conn)
    .await?;
    match recorded {
        Some(recorded) => Ok(Some(recorded)),
        // Admitted or dropped since it was read.
        None => token_view(&mut conn, view.id).await,
    }
}

/// The end of the line as a batch of new tokens finds it.
#[derive(sqlx::FromRow)]
struct QueueTail {
    last_seq: i64,
    admitted_through: i64,
    admit_rate: f64,
    /// Waiters who left the line between its head and the batch.
    left_line: i64,
    now: DateTime<Utc>,
}

/// A token row as inserted.
#[derive(sqlx::FromRow)]
struct NewToken {
    id: Uuid,
    user_id: Uuid,
    seq: i64,
    status: String,
    issued_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
}

/// The outcome of asking for a token.
#[derive(Debug)]
pub struct Issued {
    pub token: TokenView,
    /// False when the user already had a live token and got it back.
    pub created: bool,
}

/// Issues a token to a user, creating the user (balance 0) on first contact. A user with a
/// live token gets that token back, never a second place in line.
pub async fn issue_token(
    pool: &PgPool,
    user_id: Uuid,
    config: &QueueConfig,
) -> sqlx::Result<Issued> {
    let mut issued = issue_tokens(pool, &[user_id], config).await?;
    Ok(issued.pop().expect("one answer per user"))
}

/// [`issue_token`] for many users in one transaction, with answers in the order asked. Places
/// are taken in that order too. A user asked for twice gets one token, `created` only the
/// first time.
///
/// One transaction for many keeps the queue counter row, which every new token must update,
/// from serialising the arrivals one commit at a time.
pub async fn issue_tokens(
    pool: &PgPool,
    user_ids: &[Uuid],
    config: &QueueConfig,
) -> sqlx::Result<Vec<Issued>> {
    let mut sorted = user_ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut tx = pool.begin().await?;
    let created: Vec<(Uuid,)> = sqlx::query_as(
        "INSERT INTO users (id) SELECT * FROM unnest($1::uuid[]) ON CONFLICT (id) DO NOTHING
         RETURNING id",
    )
    .bind(&sorted)
    .fetch_all(&mut *tx)
    .await?;
    // A user this transaction created is its own until it commits: a concurrent insert of the
    // same id waits for that, then finds the user known, and nobody else can hold a token for
    // it. So only users known before need the lock and the look for a live token, which on
    // sale day, when most arrivals are first contacts, is the smaller part.
    let created: HashSet<Uuid> = created.into_iter().map(|(id,)| id).collect();
    let known: Vec<Uuid> = sorted
        .iter()
        .copied()
        .filter(|user| !created.contains(user))
        .collect();
    let existing = if known.is_empty() {
        Vec::new()
    } else {
        // Serialises concurrent requests of one user, so two cannot both take a place. Sorted,
        // so concurrent batches cannot deadlock. (NO KEY: rows referencing the user need not
        // wait.)
        sqlx::query("SELECT 1 FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&known)
            .execute(&mut *tx)
            .await?;
        sqlx::query_as::<_, TokenView>(&format!(
            "{TOKEN_VIEW_SQL} WHERE t.user_id = ANY($1) AND t.status IN ('WAITING', 'ACTIVE')"
        ))
        .bind(&known)
        .fetch_all(&mut *tx)
        .await?
    };
    let mut tokens: HashMap<Uuid, Issued> = HashMap::with_capacity(sorted.len());
    for token in existing {
        if token.is_live(config) {
            let issued = Issued {
                token,
                created: false,
            };
            tokens.insert(issued.token.user_id, issued);
        } else {
            // Stale but not yet swept: end it here, as the admitter would.
            end_stale_token(&mut tx, &token).await?;
        }
    }
    // New places in arrival order, each user once.
    let mut queued: HashSet<Uuid> = HashSet::new();
    let newcomers: Vec<Uuid> = user_ids
        .iter()
        .copied()
        .filter(|user| !tokens.contains_key(user) && queued.insert(*user))
        .collect();
    if !newcomers.is_empty() {
        // Taking the numbers under the queue_state row lock keeps seq gapless and makes tokens
        // visible in seq order, which admission relies on.
        //
        // Every new token is behind everyone already in line and none of them has left it, so
        // their positions share one count of the waiters who left between the head and this
        // batch: two Fenwick prefix sums per batch, not two per token.
        let count = newcomers.len() as i64;
        let line: QueueTail = sqlx::query_as(
            "UPDATE queue_state SET last_seq = last_seq + $1
             RETURNING last_seq, admitted_through, admit_rate,
                       queue_dropped_prefix(last_seq - $1)
                           - queue_dropped_prefix(admitted_through) AS left_line,
                       now() AS now",
        )
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        let seqs: Vec<i64> = (line.last_seq - count + 1..=line.last_seq).collect();
        let ids: Vec<Uuid> = newcomers.iter().map(|_| Uuid::new_v4()).collect();
        let created: Vec<NewToken> = sqlx::query_as(
            "INSERT INTO queue_tokens (id, user_id, seq, status)
             SELECT id, user_id, seq, 'WAITING' FROM unnest($1::uuid[], $2::uuid[], $3::bigint[])
                 AS n(id, user_id, seq)
             RETURNING id, user_id, seq, status, issued_at, last_seen_at",
        )
        .bind(&ids)
        .bind(&newcomers)
        .bind(&seqs)
        .fetch_all(&mut *tx)
        .await?;
        for token in created {
            let issued = Issued {
                token: TokenView {
                    id: token.id,
                    user_id: token.user_id,
                    seq: token.seq,
                    status: token.status,
                    issued_at: token.issued_at,
                    last_seen_at: token.last_seen_at,
                    activated_at: None,
                    expires_at: None,
                    position: token.seq - line.admitted_through - line.left_line,
                    admit_rate: line.admit_rate,
                    now: line.now,
                },
                created: true,
            };
            tokens.insert(issued.token.user_id, issued);
        }
    }
    tx.commit().await?;
    let mut answered: HashSet<Uuid> = HashSet::with_capacity(user_ids.len());
    Ok(user_ids
        .iter()
        .map(|user| {
            let issued = &tokens[user];
            Issued {
                token: issued.token.clone(),
                created: issued.created && answered.insert(*user),
            }
        })
        .collect())
}

async fn end_stale_token(
    tx: &mut Transaction<'_, Postgres>,
    token: &TokenView,
) -> sqlx::Result<()> {
    let waiting = token.status() == Some(TokenStatus::Waiting);
    let new_status = if waiting { "ABANDONED" } else { "EXPIRED" };
    let ended = sqlx::query(
        "UPDATE queue_tokens SET status = $2, ended_at = now() WHERE id = $1 AND status = $3",
    )
    .bind(token.id)
    .bind(new_status)
    .bind(&token.status)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if waiting && ended == 1 {
        record_dropped(tx, &[token.seq]).await?;
    }
    Ok(())
}

/// Adds dropped waiters to the Fenwick tree. Increments commute, so concurrent writers are safe.
pub async fn record_dropped(conn: &mut PgConnection, seqs: &[i64]) -> sqlx::Result<()> {
    if seqs.is_empty() {
        return Ok(());
    }
    let mut increments: BTreeMap<i64, i64> = BTreeMap::new();
    for &seq in seqs {
        let mut node = seq;
        while node > 0 && node <= TREE_SIZE {
            *increments.entry(node).or_default() += 1;
            node += node & -node;
        }
    }
    let (nodes, counts): (Vec<i64>, Vec<i64>) = increments.into_iter().unzip();
    sqlx::query(
        "INSERT INTO queue_dropped_tree (node, dropped)
         SELECT * FROM unnest($1::bigint[], $2::bigint[])
         ON CONFLICT (node) DO UPDATE SET dropped = queue_dropped_tree.dropped + EXCLUDED.dropped",
    )
    .bind(&nodes)
    .bind(&counts)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one admission round did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AdmitReport {
    /// False when another admitter held the lock; nothing was done.
    pub ran: bool,
    pub expired_active: u64,
    pub abandoned_waiting: u64,
    pub admitted: Vec<Uuid>,
    /// ACTIVE tokens after the round, capped at `max_active`, when the round counted them;
    /// `None` when it did not need to: nobody could be admitted, or its upper bound
    /// (`queue_state.active_bound`) left room for everyone ([`count_active`] tells).
    pub active_after: Option<i64>,
    /// Waiters left in line after the round.
    pub waiting_after: i64,
    /// Admissions per second over the last ten seconds.
    pub admit_rate: f64,
}

/// One round of the admitter: end expired ACTIVE tokens, drop idle waiters, then admit the
/// next waiters in `seq` order within both limits (`max_active` at once and `admit_per_sec`
/// over any one-second window). Only one instance runs a round at a time (advisory lock), so
/// nobody is admitted twice or skipped.
pub async fn admit_round(pool: &PgPool, config: &QueueConfig) -> sqlx::Result<AdmitReport> {
    let tx = pool.begin().await?;
    Ok(admit_round_in(tx, config).await?.unwrap_or_default())
}

/// The round of [`admit_round`] in a transaction the caller began, once it takes the
/// admitter's lock; `None` (and nothing done) when another round holds it. A transaction may
/// begin well before its round takes the lock, which is what a test of that needs.
pub async fn admit_round_in(
    mut tx: Transaction<'static, Postgres>,
    config: &QueueConfig,
) -> sqlx::Result<Option<AdmitReport>> {
    if !crate::db::try_lock_exclusive(&mut tx, ADMITTER_LOCK).await? {
        return Ok(None);
    }
    let expired_active = sqlx::query(
        "UPDATE queue_tokens SET status = 'EXPIRED', ended_at = now()
         WHERE status = 'ACTIVE' AND expires_at <= now()",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();

    let idle_secs = config.wait_idle_ttl.as_secs_f64();
    let dropped: Vec<(i64,)> = sqlx::query_as(
        "UPDATE queue_tokens SET status = 'ABANDONED', ended_at = now()
         WHERE status = 'WAITING' AND last_seen_at <= now() - make_interval(secs => $1)
         RETURNING seq",
    )
    .bind(idle_secs)
    .fetch_all(&mut *tx)
    .await?;
    let dropped: Vec<i64> = dropped.into_iter().map(|(s,)| s).collect();
    record_dropped(&mut tx, &dropped).await?;

    // Waiters = arrivals after the head, minus those who left the line: O(log n), no count.
    let (waiting_before, active_bound): (i64, Option<i64>) = sqlx::query_as(
        "SELECT last_seq - admitted_through
                - (queue_dropped_prefix(last_seq) - queue_dropped_prefix(admitted_through)),
                active_bound
         FROM queue_state",
    )
    .fetch_one(&mut *tx)
    .await?;
    // Both rate windows from the last ten seconds' rounds, which are all the table keeps.
    let (admitted_last_second, admitted_last_10s): (i64, i64) = sqlx::query_as(
        "WITH forgotten AS (
             DELETE FROM queue_admission_rounds
             WHERE admitted_at <= now() - interval '10 seconds'
         )
         SELECT coalesce(sum(admitted) FILTER (WHERE admitted_at > now() - interval '1 second'), 0),
                coalesce(sum(admitted), 0)
         FROM queue_admission_rounds WHERE admitted_at > now() - interval '10 seconds'",
    )
    .fetch_one(&mut *tx)
    .await?;
    let wanted = waiting_before
        .min(config.admit_per_sec - admitted_last_second)
        .max(0);
    // Expired tokens were ACTIVE, so the bound less them still bounds what is ACTIVE now.
    let bound = active_bound.map(|bound| (bound - expired_active as i64).max(0));
    let active = if wanted == 0 {
        ActiveTokens::NotNeeded
    } else if let Some(bound) = bound.filter(|bound| bound + wanted <= config.max_active) {
        ActiveTokens::AtMost(bound)
    } else {
        // A count reads one index entry per ACTIVE token, so it stops one past `max_active`:
        // any more and there is no room either way, and a count of `max_active` is exact.
        let at_most = config.max_active.saturating_add(1);
        ActiveTokens::Counted(count_active(&mut *tx, at_most).await?)
    };
    let room = active.room(wanted, config.max_active);

    // Stamped with the statement's start, not the transaction's (`now()`): a round's
    // transaction begins before it tries the lock, so a round that began first but took the
    // lock second would stamp its later arrivals as admitted before the other round's earlier
    // ones. Statements that hold the lock run one after another, so their stamps follow the
    // order of admission.
    let admitted: Vec<(Uuid, i64)> = if room > 0 {
        sqlx::query_as(
            "WITH next AS (
                 SELECT id FROM queue_tokens WHERE status = 'WAITING'
                 ORDER BY seq LIMIT $1 FOR UPDATE
             )
             UPDATE queue_tokens t
             SET status = 'ACTIVE', activated_at = statement_timestamp(),
                 expires_at = statement_timestamp() + make_interval(secs => $2)
             FROM next WHERE t.id = next.id
             RETURNING t.id, t.seq",
        )
        .bind(room)
        .bind(config.active_ttl.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?
    } else {
        Vec::new()
    };
    let admitted_count = admitted.len() as i64;
    if admitted_count > 0 {
        sqlx::query(
            "INSERT INTO queue_admission_rounds (admitted_at, admitted) VALUES (now(), $1)
             ON CONFLICT (admitted_at) DO UPDATE
             SET admitted = queue_admission_rounds.admitted + EXCLUDED.admitted",
        )
        .bind(admitted_count)
        .execute(&mut *tx)
        .await?;
    }
    let active_bound_after = active.bound_after(bound, admitted_count, config.max_active);
    let through = admitted.iter().map(|(_, seq)| *seq).max();
    let rate = (admitted_last_10s + admitted_count) as f64 / 10.0;
    sqlx::query(
        "UPDATE queue_state SET admitted_through = GREATEST(admitted_through, coalesce($1, 0)),
                                admit_rate = $2,
                                last_admit_at = CASE WHEN $1 IS NULL THEN last_admit_at ELSE now() END,
                                active_bound = $3",
    )
    .bind(through)
    .bind(rate)
    .bind(active_bound_after)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(AdmitReport {
        ran: true,
        expired_active,
        abandoned_waiting: dropped.len() as u64,
        active_after: active.counted_after(admitted_count, config.max_active),
        waiting_after: waiting_before - admitted_count,
        admitted: admitted.into_iter().map(|(id, _)| id).collect(),
        admit_rate: rate,
    }))
}

/// What a round knows of the ACTIVE tokens.
#[derive(Debug, Clone, Copy)]
enum ActiveTokens {
    /// Nobody could be admitted (nobody waits, or the rate limit is reached): not needed.
    NotNeeded,
    /// At most this many, from `queue_state.active_bound`, which left room for everyone wanted.
    AtMost(i64),
    /// Counted, up to `max_active + 1`.
    Counted(i64),
}

impl ActiveTokens {
    /// How many of the `wanted` waiters fit under `max_active`.
    fn room(self, wanted: i64, max_active: i64) -> i64 {
        match self {
            Self::NotNeeded => 0,
            Self::AtMost(active) | Self::Counted(active) => {
                (max_active - active).min(wanted).max(0)
            }
        }
    }

    /// The `queue_state.active_bound` to keep after `admitted` were admitted; `bound` is the one
    /// the round started from, less the tokens it expired. `None` means "count next time".
    fn bound_after(self, bound: Option<i64>, admitted: i64, max_active: i64) -> Option<i64> {
        match self {
            Self::NotNeeded => bound,
            Self::AtMost(bound) => Some(bound + admitted),
            // A count that reached its cap says only "more than max_active".
            Self::Counted(counted) if counted > max_active => None,
            Self::Counted(counted) => Some(counted + admitted),
        }
    }

    /// How many are ACTIVE after the round, if it counted them (for the admitter's report).
    fn counted_after(self, admitted: i64, max_active: i64) -> Option<i64> {
        match self {
            Self::Counted(counted) => Some(counted.min(max_active) + admitted),
            Self::NotNeeded | Self::AtMost(_) => None,
        }
    }
}

/// How many tokens are ACTIVE, counted up to `at_most` (a count reads one index entry per
/// token). Admission rounds need no more than `max_active`; the admitter's gauge counts all.
pub async fn count_active<'c>(conn: impl sqlx::PgExecutor<'c>, at_most: i64) -> sqlx::Result<i64> {
    let (active,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (
             SELECT 1 FROM queue_tokens WHERE status = 'ACTIVE' LIMIT $1
         ) capped",
    )
    .bind(at_most.max(0))
    .fetch_one(conn)
    .await?;
    Ok(active)
}

/// Ends the user's ACTIVE token after a successful payment, freeing the slot for the next
/// waiter. Runs inside the payment's transaction.
pub async fn complete_active_token(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE queue_tokens SET status = 'COMPLETED', ended_at = now()
         WHERE user_id = $1 AND status = 'ACTIVE'",
    )
    .bind(user_id)
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::ActiveTokens;

    const MAX_ACTIVE: i64 = 100;

    #[test]
    fn room_is_what_fits_under_the_cap_and_no_more_than_wanted() {
        assert_eq!(ActiveTokens::NotNeeded.room(10, MAX_ACTIVE), 0);
        assert_eq!(ActiveTokens::AtMost(40).room(10, MAX_ACTIVE), 10);
        assert_eq!(ActiveTokens::Counted(95).room(10, MAX_ACTIVE), 5);
        // A capped count (max_active + 1) leaves no room, never a negative one.
        assert_eq!(
            ActiveTokens::Counted(MAX_ACTIVE + 1).room(10, MAX_ACTIVE),
            0
        );
    }

    #[test]
    fn the_bound_grows_by_the_admitted_and_a_capped_count_forgets_it() {
        assert_eq!(
            ActiveTokens::NotNeeded.bound_after(Some(7), 0, MAX_ACTIVE),
            Some(7)
        );
        assert_eq!(
            ActiveTokens::NotNeeded.bound_after(None, 0, MAX_ACTIVE),
            None
        );
        assert_eq!(
            ActiveTokens::AtMost(40).bound_after(Some(40), 10, MAX_ACTIVE),
            Some(50)
        );
        assert_eq!(
            ActiveTokens::Counted(95).bound_after(None, 5, MAX_ACTIVE),
            Some(100)
        );
        assert_eq!(
            ActiveTokens::Counted(MAX_ACTIVE + 1).bound_after(Some(3), 0, MAX_ACTIVE),
            None
        );
    }

    #[test]
    fn only_a_count_reports_how_many_are_active() {
        assert_eq!(ActiveTokens::AtMost(40).counted_after(10, MAX_ACTIVE), None);
        assert_eq!(ActiveTokens::NotNeeded.counted_after(0, MAX_ACTIVE), None);
        assert_eq!(
            ActiveTokens::Counted(95).counted_after(5, MAX_ACTIVE),
            Some(100)
        );
        assert_eq!(
            ActiveTokens::Counted(MAX_ACTIVE + 1).counted_after(0, MAX_ACTIVE),
            Some(MAX_ACTIVE)
        );
    }
}
