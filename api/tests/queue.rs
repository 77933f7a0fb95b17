//! The waiting queue through the real router and PostgreSQL: places in line, FIFO admission
//! within both limits, abandonment and expiry, and token forgery.

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use seatline_api::testing::TestApp;
use seatline_shared::config::QueueConfig;
use seatline_shared::queue;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn issue(app: &TestApp, user: Uuid) -> seatline_api::testing::Reply {
    app.call(
        Method::POST,
        "/client/token",
        None,
        Some(json!({ "userId": user })),
    )
    .await
}

/// Pretends every admission round happened `secs` earlier, so the one-second rate window has
/// passed without the test sleeping.
async fn age_admission_rounds(pool: &PgPool, secs: f64) {
    sqlx::query(
        "UPDATE queue_admission_rounds SET admitted_at = admitted_at - make_interval(secs => $1)",
    )
    .bind(secs)
    .execute(pool)
    .await
    .unwrap();
}

/// Pretends the user's last recorded poll was `secs` ago.
async fn last_polled_ago(pool: &PgPool, user: Uuid, secs: f64) {
    sqlx::query(
        "UPDATE queue_tokens SET last_seen_at = now() - make_interval(secs => $2)
         WHERE user_id = $1",
    )
    .bind(user)
    .bind(secs)
    .execute(pool)
    .await
    .unwrap();
}

/// When the user's last poll was recorded.
async fn last_seen_at(pool: &PgPool, user: Uuid) -> chrono::DateTime<chrono::Utc> {
    let (seen,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT last_seen_at FROM queue_tokens WHERE user_id = $1")
            .bind(user)
            .fetch_one(pool)
            .await
            .unwrap();
    seen
}

async fn seqs_of(pool: &PgPool, ids: &[Uuid]) -> Vec<i64> {
    let mut seqs: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM queue_tokens WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
        .unwrap();
    seqs.sort();
    seqs.into_iter().map(|(s,)| s).collect()
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_thousand_concurrent_issues_get_places_one_to_a_thousand_and_are_admitted_in_order(
    pool: PgPool,
) {
    let app = std::sync::Arc::new(TestApp::new(pool.clone()).await);
    let users: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for &user in &users {
        let app = app.clone();
        tasks.spawn(async move { (user, issue(&app, user).await) });
    }
    let mut position_of: HashMap<Uuid, i64> = HashMap::new();
    let mut token_of: HashMap<Uuid, String> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (user, reply) = joined.unwrap();
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["status"], "WAITING");
        assert_eq!(reply.body["userId"], user.to_string());
        position_of.insert(user, reply.body["position"].as_i64().unwrap());
        token_of.insert(user, reply.body["token"].as_str().unwrap().to_owned());
    }
    let mut positions: Vec<i64> = position_of.values().copied().collect();
    positions.sort();
    assert_eq!(positions, (1..=1000).collect::<Vec<_>>());

    // Admission: FIFO, never more than max_active at once nor admit_per_sec in one second.
    let config = QueueConfig {
        max_active: 250,
        admit_per_sec: 100,
        ..QueueConfig::default()
    };
    let first = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(
        seqs_of(&pool, &first.admitted).await,
        (1..=100).collect::<Vec<_>>()
    );
    let again = queue::admit_round(&pool, &config).await.unwrap();
    assert!(again.ran);
    assert!(
        again.admitted.is_empty(),
        "rate limit: nothing more within the same second"
    );

    age_admission_rounds(&pool, 1.5).await;
    let second = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(
        seqs_of(&pool, &second.admitted).await,
        (101..=200).collect::<Vec<_>>()
    );

    age_admission_rounds(&pool, 1.5).await;
    let third = queue::admit_round(&pool, &config).await.unwrap();
    assert_eq!(
        seqs_of(&pool, &third.admitted).await,
        (201..=250).collect::<Vec<_>>(),
        "capped by max_active"
    );
    assert_eq!(third.active_after, Some(250));

    age_admission_rounds(&pool, 1.5).await;
    let full = queue::admit_round(&pool, &config).await.unwrap();
    assert!(full.admitted.is_empty(), "no room while 250 are active");

    // The positions users see follow: the first admitted shows 0 and ACTIVE, the rest moved up.
    let by_position: HashMap<i64, Uuid> = position_of.iter().map(|(u, p)| (*p, *u)).collect();
    let user_1 = by_position[&1];
    let reply = app
        .call(Method::GET, "/client/token", Some(&token_of[&user_1]), None)
        .await;
    assert_eq!(reply.body["status"], "ACTIVE");
    assert_eq!(reply.body["position"], 0);
    let user_251 = by_position[&251];
    let reply = app
        .call(
            Method::GET,
            "/client/token",
            Some(&token_of[&user_251]),
            None,
        )
        .await;
    assert_eq!(reply.body["status"], "WAITING");
    assert_eq!(reply.body["position"], 1);
    assert!(reply.body["estimatedWaitSeconds"].as_i64().unwrap() >= 1);
    let user_1000 = by_position[&1000];
    let reply = app
        .call(
            Method::GET,
            "/client/token",
            Some(&token_of[&user_1000]),
            None,
        )
        .await;
    assert_eq!(reply.body["position"], 750);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn asking_again_returns_the_same_token_and_place(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (_, _) = app.new_user().await;
    let user = Uuid::new_v4();
    let first = issue(&app, user).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first.body["position"], 2);
    let again = issue(&app, user).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["token"], first.body["token"]);
    assert_eq!(again.body["position"], 2);
    let (tokens,): (i64,) = sqlx::query_as("SELECT count(*) FROM queue_tokens WHERE user_id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tokens, 1);
    let (balance,): (i64,) = sqlx::query_as("SELECT balance FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        balance, 0,
        "the first token creates the user with balance 0"
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn abandonment_and_expiry_free_places_and_positions_behind_stay_right(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let mut users = Vec::new();
    for _ in 0..10 {
        users.push(app.new_user().await);
    }
    // Users 3 and 5 (positions) stop polling.
    for index in [2usize, 4] {
        last_polled_ago(&pool, users[index].0, 3600.0).await;
    }
    let no_room = QueueConfig {
        max_active: 0,
        ..QueueConfig::default()
    };
    let round = queue::admit_round(&pool, &no_room).await.unwrap();
    assert_eq!(round.abandoned_waiting, 2);

    let position = |i: usize| {
        let app = &app;
        let token = users[i].1.clone();
        async move {
            app.call(Method::GET, "/client/token", Some(&token), None)
                .await
        }
    };
    let expected = [(0, 1), (1, 2), (3, 3), (5, 4), (9, 8)];
    for (index, place) in expected {
        let reply = position(index).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["position"], place, "user {index}");
    }
    // The abandoned token no longer passes.
    let reply = position(2).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);

    // Admit two; the next ACTIVE one then expires.
    let two = QueueConfig {
        max_active: 2,
        ..QueueConfig::default()
    };
    let round = queue::admit_round(&pool, &two).await.unwrap();
    assert_eq!(round.admitted.len(), 2);
    assert_eq!(position(3).await.body["position"], 1);
    assert_eq!(position(9).await.body["position"], 6);
    sqlx::query(
        "UPDATE queue_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1",
    )
    .bind(users[0].0)
    .execute(&pool)
    .await
    .unwrap();
    position(0).await.assert_problem(StatusCode::UNAUTHORIZED);
    let round = queue::admit_round(&pool, &two).await.unwrap();
    assert_eq!(round.expired_active, 1);
    assert_eq!(
        round.admitted.len(),
        1,
        "the expired slot goes to the next in line"
    );
    assert_eq!(position(3).await.body["status"], "ACTIVE");
    assert_eq!(position(5).await.body["position"], 1);
    assert_eq!(position(9).await.body["position"], 5);

    // An abandoned user who comes back joins at the end of the line.
    let back = issue(&app, users[2].0).await;
    assert_eq!(back.status, StatusCode::CREATED);
    assert_eq!(back.body["position"], 6);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn forged_tampered_and_missing_tokens_are_refused(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (_, token) = app.new_user().await;
    assert_eq!(
        app.call(Method::GET, "/client/token", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );

    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 2;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();

    // Same shape, signed with another secret, naming another user.
    let other_signer = seatline_api::tokens::TokenSigner::new(secrecy::SecretString::from(
        "some-other-secret-0123456789abcdef012345".to_owned(),
    ));
    let forged = other_signer.sign(seatline_api::tokens::TokenClaims {
        token_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
    });
    // Correctly signed, but naming a token that was never issued.
    let unknown = app.state.tokens.sign(seatline_api::tokens::TokenClaims {
        token_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
    });
    for bad in [
        tampered.as_str(),
        forged.as_str(),
        unknown.as_str(),
        "not-a-token",
    ] {
        let reply = app
            .call(Method::GET, "/client/token", Some(bad), None)
            .await;
        reply.assert_problem(StatusCode::UNAUTHORIZED);
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
    app.call(Method::GET, "/client/token", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    let basic = axum::http::Request::builder()
        .uri("/client/token")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(axum::body::Body::empty())
        .unwrap();
    app.send(basic)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
}

/// Polls are recorded at most every tenth of the idle TTL (12 s by default), so most polls of
/// a waiting token write nothing, and still answer its current place.
#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_poll_soon_after_a_recorded_one_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (first, _) = app.new_user().await;
    let (user, token) = app.new_user().await;
    last_polled_ago(&pool, user, 5.0).await;
    let before = last_seen_at(&pool, user).await;
    let reply = app
        .call(Method::GET, "/client/token", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        (
            reply.body["status"].as_str(),
            reply.body["position"].as_i64()
        ),
        (Some("WAITING"), Some(2))
    );
    assert_eq!(
        last_seen_at(&pool, user).await,
        before,
        "5 s < 12 s: not recorded"
    );

    // The place is current all the same: the first waiter leaves, and this one moves up.
    last_polled_ago(&pool, first, 3600.0).await;
    let no_room = QueueConfig {
        max_active: 0,
        ..QueueConfig::default()
    };
    assert_eq!(
        queue::admit_round(&pool, &no_room)
            .await
            .unwrap()
            .abandoned_waiting,
        1
    );
    let reply = app
        .call(Method::GET, "/client/token", Some(&token), None)
        .await;
    assert_eq!(reply.body["position"], 1);
    assert_eq!(last_seen_at(&pool, user).await, before);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_waiting_token_is_kept_alive_by_polling(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (user, token) = app.new_user().await;
    last_polled_ago(&pool, user, 100.0).await;
    let reply = app
        .call(Method::GET, "/client/token", Some(&token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (idle,): (f64,) = sqlx::query_as(
        "SELECT extract(epoch FROM now() - last_seen_at)::float8 FROM queue_tokens WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(idle < 5.0, "the poll refreshed last_seen_at");
    let round = queue::admit_round(
        &pool,
        &QueueConfig {
            max_active: 0,
            ..QueueConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(round.abandoned_waiting, 0);
}
