//! The admitter's rounds: several admitters at once (as with several worker instances) admit
//! nobody twice and skip nobody; rounds count ACTIVE tokens only when they must; and the
//! Fenwick prefix sum behind places in line.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use sqlx::PgPool;
use uuid::Uuid;

/// Issues tokens to `n` new users, one after another, and returns the users.
async fn issue(pool: &PgPool, config: &QueueConfig, n: usize) -> Vec<Uuid> {
    let mut users = Vec::with_capacity(n);
    for _ in 0..n {
        let user = Uuid::new_v4();
        queue::issue_token(pool, user, config).await.unwrap();
        users.push(user);
    }
    users
}

/// Limits high enough that every waiter in these tests is admitted by the next round.
fn admitting_everyone() -> QueueConfig {
    QueueConfig {
        max_active: 10_000,
        admit_per_sec: 10_000,
        ..QueueConfig::default()
    }
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn concurrent_admitters_admit_each_waiter_once_in_order(pool: PgPool) {
    let config = admitting_everyone();
    let mut tasks = tokio::task::JoinSet::new();
    // Waiters arrive while four admitters run rounds concurrently.
    {
        let (pool, config) = (pool.clone(), config.clone());
        tasks.spawn(async move {
            issue(&pool, &config, 300).await;
            Vec::new()
        });
    }
    for _ in 0..4 {
        let (pool, config) = (pool.clone(), config.clone());
        tasks.spawn(async move {
            let mut admitted = Vec::new();
            for _ in 0..60 {
                admitted.extend(queue::admit_round(&pool, &config).await.unwrap().admitted);
            }
            admitted
        });
    }
    let mut all = Vec::new();
    while let Some(admitted) = tasks.join_next().await {
        all.extend(admitted.unwrap());
    }
    // Whatever is still waiting is admitted by one more round.
    all.extend(queue::admit_round(&pool, &config).await.unwrap().admitted);

    let unique: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "someone was admitted twice");
    assert_eq!(all.len(), 300, "someone was skipped");
    // Activation order follows arrival order.
    let rows: Vec<(i64,)> =
        sqlx::query_as("SELECT seq FROM queue_tokens ORDER BY activated_at, seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    let seqs: Vec<i64> = rows.into_iter().map(|(s,)| s).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
}

/// A round's transaction may begin before another round runs and take the lock after it has
/// committed. Its admissions still come later in line, so they must not be stamped as
/// admitted earlier (as `now()`, the transaction's start, stamped them): `activated_at` and
/// `expires_at` follow the order of admission.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_round_that_began_first_but_admitted_second_is_stamped_second(pool: PgPool) {
    let config = admitting_everyone();
    let early = pool.begin().await.unwrap();
    let first = issue(&pool, &config, 1).await[0];
    let report = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(report.admitted.len(), 1, "the first arrival is admitted");
    let second = issue(&pool, &config, 1).await[0];
    let report = queue::admit_round_in(early, &config)
        .await
        .unwrap()
        .expect("nobody else holds the lock now");
    assert_eq!(report.admitted.len(), 1, "the second arrival is admitted");

    let stamps: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT user_id, activated_at, expires_at FROM queue_tokens ORDER BY activated_at, seq",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let order: Vec<Uuid> = stamps.iter().map(|(user, _, _)| *user).collect();
    assert_eq!(order, vec![first, second], "stamped in the order admitted");
    assert!(
        stamps[0].2 <= stamps[1].2,
        "expiries in that order too: {stamps:?}"
    );
}

/// A round finds the lock taken by a round in progress and does nothing.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_round_does_nothing_while_another_holds_the_lock(pool: PgPool) {
    let config = QueueConfig::default();
    issue(&pool, &config, 1).await;
    let holder = pool.begin().await.unwrap();
    let report = queue::admit_round_in(holder, &config).await.unwrap();
    assert!(report.is_some(), "the first round takes the lock");
    // The holder committed, so the lock is free again; hold it from another transaction.
    let mut holding = pool.begin().await.unwrap();
    assert!(
        seatline_shared::db::try_lock_exclusive(&mut holding, queue::ADMITTER_LOCK)
            .await
            .unwrap()
    );
    let other = pool.begin().await.unwrap();
    assert_eq!(queue::admit_round_in(other, &config).await.unwrap(), None);
    assert_eq!(
        queue::admit_round(&pool, &config).await.unwrap(),
        queue::AdmitReport::default()
    );
}

/// Issuing for many users in one transaction: places in the order asked, one token per user
/// however often it is asked for, and a user's live token given back, not replaced.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_batch_of_arrivals_takes_places_in_order_once_per_user(pool: PgPool) {
    let config = QueueConfig::default();
    let (early, a, b, c) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let first = queue::issue_token(&pool, early, &config).await.unwrap();
    assert_eq!(first.token.seq, 1);

    let issued = queue::issue_tokens(&pool, &[c, a, early, c, b], &config)
        .await
        .unwrap();
    let users: Vec<Uuid> = issued.iter().map(|i| i.token.user_id).collect();
    assert_eq!(users, vec![c, a, early, c, b], "answers in the order asked");
    let seqs: Vec<i64> = issued.iter().map(|i| i.token.seq).collect();
    assert_eq!(seqs, vec![2, 3, 1, 2, 4], "new places in arrival order");
    let created: Vec<bool> = issued.iter().map(|i| i.created).collect();
    assert_eq!(created, vec![true, true, false, false, true]);
    assert_eq!(issued[0].token.id, issued[3].token.id, "one token for c");
    assert_eq!(issued[2].token.id, first.token.id, "early keeps its token");
    let positions: Vec<i64> = issued.iter().map(|i| i.token.position).collect();
    assert_eq!(positions, vec![2, 3, 1, 2, 4]);

    assert_eq!(
        tokens_and_last_seq(&pool).await,
        (4, 4),
        "no gap and no extra token"
    );
}

/// Tokens issued in all, and the last place taken: equal when no place was skipped or taken
/// twice.
async fn tokens_and_last_seq(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT (SELECT count(*) FROM queue_tokens), (SELECT last_seq FROM queue_state)")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Batches issued at once for the same users, none of whom existed, give each user one token
/// and one place: a batch that did not create a user waits for the one that did, then returns
/// its token.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn concurrent_batches_for_the_same_new_users_give_each_one_token(pool: PgPool) {
    let config = QueueConfig::default();
    let users: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    let mut batches = tokio::task::JoinSet::new();
    for shift in [0, 50, 100, 150] {
        let (pool, config) = (pool.clone(), config.clone());
        // The same users, each batch in another order.
        let mut mine = users.clone();
        mine.rotate_left(shift);
        batches.spawn(async move { queue::issue_tokens(&pool, &mine, &config).await.unwrap() });
    }
    let mut token_of: std::collections::HashMap<Uuid, Uuid> = Default::default();
    let mut created = 0;
    while let Some(issued) = batches.join_next().await {
        for issued in issued.unwrap() {
            created += usize::from(issued.created);
            let token = *token_of
                .entry(issued.token.user_id)
                .or_insert(issued.token.id);
            assert_eq!(token, issued.token.id, "two tokens for one user");
        }
    }
    assert_eq!(created, users.len(), "each user's token created once");
    assert_eq!(
        tokens_and_last_seq(&pool).await,
        (200, 200),
        "no gap and no extra token"
    );
}

/// Rounds count ACTIVE tokens only when someone waits (the count reads an index entry per
/// token), and never past `max_active`; a waiter who arrives later is still admitted.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn rounds_count_active_tokens_only_when_someone_waits(pool: PgPool) {
    let config = QueueConfig {
        max_active: 4,
        admit_per_sec: 100,
        ..QueueConfig::default()
    };
    issue(&pool, &config, 3).await;
    let first = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(first.admitted.len(), 3);
    assert_eq!((first.active_after, first.waiting_after), (Some(3), 0));

    let idle = queue::admit_round(&pool, &config).await.unwrap();
    assert!(idle.ran && idle.admitted.is_empty());
    assert_eq!((idle.active_after, idle.waiting_after), (None, 0));
    assert_eq!(queue::count_active(&pool, i64::MAX).await.unwrap(), 3);

    issue(&pool, &config, 2).await;
    let second = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(second.admitted.len(), 1, "one place left under max_active");
    assert_eq!((second.active_after, second.waiting_after), (Some(4), 1));

    // With the limit lowered below what is ACTIVE, the count stops at the limit: no room.
    let lowered = QueueConfig {
        max_active: 2,
        ..config
    };
    let full = queue::admit_round(&pool, &lowered).await.unwrap();
    assert!(full.admitted.is_empty());
    assert_eq!((full.active_after, full.waiting_after), (Some(2), 1));
    assert_eq!(queue::count_active(&pool, i64::MAX).await.unwrap(), 4);

    // A capped count leaves the admitter's bound unknown, not at the cap: with the limit back
    // at four, nobody more is admitted.
    let restored = queue::admit_round(&pool, &config).await.unwrap();
    assert!(restored.admitted.is_empty());
    assert_eq!(queue::count_active(&pool, i64::MAX).await.unwrap(), 4);
}

/// A round trusts the admitter's upper bound on ACTIVE tokens while it leaves room for all it
/// admits, and counts when it does not, so tokens that left ACTIVE elsewhere (paid) free their
/// places, and `max_active` is never passed.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn rounds_count_active_tokens_only_when_the_bound_leaves_no_room(pool: PgPool) {
    let config = QueueConfig {
        max_active: 10,
        admit_per_sec: 1_000,
        ..QueueConfig::default()
    };
    let active_now = || async { queue::count_active(&pool, i64::MAX).await.unwrap() };

    let first_users = issue(&pool, &config, 4).await;
    let first = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(first.admitted.len(), 4);
    assert_eq!(first.active_after, Some(4), "no bound yet: counted");

    for (arrivals, active) in [(3, 7), (3, 10)] {
        issue(&pool, &config, arrivals).await;
        let round = queue::admit_round(&pool, &config).await.unwrap();
        assert_eq!(round.admitted.len(), arrivals);
        assert_eq!(round.active_after, None, "the bound left room: not counted");
        assert_eq!(active_now().await, active);
    }

    issue(&pool, &config, 1).await;
    let full = queue::admit_round(&pool, &config).await.unwrap();
    assert!(full.admitted.is_empty(), "never past max_active");
    assert_eq!((full.active_after, full.waiting_after), (Some(10), 1));
    assert_eq!(active_now().await, 10);

    // Three pay, which ends their tokens outside the admitter: the bound (10) is now high.
    let mut conn = pool.acquire().await.unwrap();
    for user in &first_users[..3] {
        assert_eq!(
            queue::complete_active_token(&mut conn, *user)
                .await
                .unwrap(),
            1
        );
    }
    drop(conn);
    assert_eq!(active_now().await, 7);

    // Six wait; the bound leaves no room, so the round counts (7) and admits three.
    issue(&pool, &config, 5).await;
    let after_payments = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(
        after_payments.admitted.len(),
        3,
        "the paid tokens' places are used"
    );
    assert_eq!(
        (after_payments.active_after, after_payments.waiting_after),
        (Some(10), 3)
    );
    assert_eq!(active_now().await, 10);

    // Three expire: the admitter subtracts them from its bound and admits the last three
    // waiters without counting.
    sqlx::query(
        "UPDATE queue_tokens SET expires_at = now() - interval '1 second'
         WHERE id IN (SELECT id FROM queue_tokens WHERE status = 'ACTIVE' ORDER BY seq LIMIT 3)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let after_expiry = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(after_expiry.expired_active, 3);
    assert_eq!(after_expiry.admitted.len(), 3);
    assert_eq!(
        (after_expiry.active_after, after_expiry.waiting_after),
        (None, 0)
    );
    assert_eq!(active_now().await, 10);
}

/// The prefix sum over the tree of dropped waiters equals a plain count, at small and large
/// places in line.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_dropped_prefix_sum_equals_a_plain_count(pool: PgPool) {
    // A fixed spread of seqs, small and near the top of the tree (2^40), with repeats.
    let mut dropped: Vec<i64> = (1..=300).map(|i| (i * i * 7919) % 5_000 + 1).collect();
    dropped.extend([1 << 39, (1 << 39) + 1, (1 << 40) - 1, 1 << 40]);
    let mut conn = pool.acquire().await.unwrap();
    for chunk in dropped.chunks(37) {
        queue::record_dropped(&mut conn, chunk).await.unwrap();
    }
    let mut probes: Vec<i64> = vec![-1, 0, 1, 2, 3, 4_095, 4_096, 4_097, 5_000, 5_001];
    probes.extend((1..=200).map(|i| i * 25));
    probes.extend([
        (1 << 39) - 1,
        1 << 39,
        (1 << 39) + 1,
        (1 << 40) - 1,
        1 << 40,
    ]);
    for upto in probes {
        let (sum,): (i64,) = sqlx::query_as("SELECT queue_dropped_prefix($1)")
            .bind(upto)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let expected = dropped.iter().filter(|&&seq| seq <= upto).count() as i64;
        assert_eq!(sum, expected, "prefix up to {upto}");
    }
}
