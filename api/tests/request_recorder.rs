//! The request recorder's group commit, against real PostgreSQL: concurrent submissions share
//! inserts, each still learns whether its own row was written, and one bad row fails only its
//! own submission.

use std::collections::HashSet;

use futures::future::join_all;
use seatline_api::request_recorder::RequestRecorder;
use seatline_api::submit::NewRequest;
use seatline_shared::domain::RequestKind;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn users(pool: &PgPool, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    sqlx::query("INSERT INTO users (id) SELECT * FROM unnest($1::uuid[])")
        .bind(&ids)
        .execute(pool)
        .await
        .unwrap();
    ids
}

fn request(user_id: Uuid, key: Option<&str>, seat: i32) -> NewRequest {
    NewRequest {
        id: Uuid::now_v7(),
        kind: RequestKind::Reservation,
        user_id,
        idempotency_key: key.map(str::to_owned),
        payload: json!({ "concertDateId": 1, "seatNo": seat }),
    }
}

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn concurrent_submissions_share_commits_and_keys_stay_unique(pool: PgPool) {
    let recorder = RequestRecorder::spawn(pool.clone());
    let users = users(&pool, 200).await;
    // Every user submits twice with one idempotency key, concurrently: one of each pair is
    // written, the other finds it.
    let requests: Vec<NewRequest> = users
        .iter()
        .flat_map(|&user| [request(user, Some("k"), 1), request(user, Some("k"), 1)])
        .collect();
    let outcomes = join_all(requests.iter().map(|r| recorder.insert(r.clone()))).await;

    let mut written = HashSet::new();
    for (request, outcome) in requests.iter().zip(&outcomes) {
        if outcome.as_ref().expect("no database error").is_some() {
            written.insert(request.id);
        }
    }
    assert_eq!(written.len(), users.len(), "exactly one request per key");
    let stored: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, user_id FROM requests WHERE idempotency_key = 'k'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), users.len());
    assert!(stored.iter().all(|(id, _)| written.contains(id)));
    let owners: HashSet<Uuid> = stored.iter().map(|(_, user)| *user).collect();
    assert_eq!(owners.len(), users.len(), "one row per user");

    // Rows of one insert share its transaction's timestamp: far fewer commits than requests.
    let (commits,): (i64,) = sqlx::query_as("SELECT count(DISTINCT submitted_at) FROM requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        commits <= 20,
        "{commits} commits for {} requests",
        requests.len()
    );
}

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn a_bad_row_fails_only_its_own_submission(pool: PgPool) {
    let recorder = RequestRecorder::spawn(pool.clone());
    let users = users(&pool, 50).await;
    let mut requests: Vec<NewRequest> = users.iter().map(|&u| request(u, None, 2)).collect();
    // A user that does not exist breaks the foreign key, and with it a whole batched insert.
    let stranger = request(Uuid::now_v7(), None, 2);
    requests.insert(25, stranger.clone());
    let outcomes = join_all(requests.iter().map(|r| recorder.insert(r.clone()))).await;

    for (request, outcome) in requests.iter().zip(&outcomes) {
        if request.id == stranger.id {
            assert!(outcome.is_err(), "the bad row is refused");
        } else {
            assert!(
                matches!(outcome, Ok(Some(_))),
                "a good row is written: {outcome:?}"
            );
        }
    }
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM requests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, users.len() as i64);
}
