//! The token reader's coalesced reads, against real PostgreSQL: among many concurrent checks,
//! batched together, each gets its own token back (or none, for an id never issued), with its
//! place in line as issuing reported it.

use futures::future::join_all;
use seatline_api::token_reader::TokenReader;
use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use sqlx::PgPool;
use uuid::Uuid;

#[sqlx::test(migrator = "seatline_shared::db::MIGRATOR")]
async fn concurrent_reads_each_get_their_own_token(pool: PgPool) {
    let users: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
    let issued = queue::issue_tokens(&pool, &users, &QueueConfig::default())
        .await
        .unwrap();
    let reader = TokenReader::spawn(pool.clone());

    // Every token twice, plus ids never issued, all at once.
    let unknown: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let asked: Vec<Uuid> = issued
        .iter()
        .map(|i| i.token.id)
        .chain(issued.iter().map(|i| i.token.id))
        .chain(unknown.iter().copied())
        .collect();
    let answers = join_all(asked.iter().map(|&id| reader.read(id))).await;

    let expected = issued.iter().chain(issued.iter());
    for (answer, issued) in answers.iter().zip(expected) {
        let view = answer
            .as_ref()
            .expect("no database error")
            .as_ref()
            .expect("an issued token is found");
        assert_eq!(
            (view.id, view.user_id, view.seq, view.position),
            (
                issued.token.id,
                issued.token.user_id,
                issued.token.seq,
                issued.token.position
            )
        );
    }
    for answer in &answers[2 * issued.len()..] {
        assert!(
            answer.as_ref().expect("no database error").is_none(),
            "an id never issued is not found"
        );
    }
    // Places are 1..=300 in the order asked, as issued.
    let positions: Vec<i64> = answers[..issued.len()]
        .iter()
        .map(|a| a.as_ref().unwrap().as_ref().unwrap().position)
        .collect();
    assert_eq!(positions, (1..=300).collect::<Vec<i64>>());
}
