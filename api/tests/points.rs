//! Balance and charges through the real router and PostgreSQL.

use axum::http::{Method, Request, StatusCode};
use seatline_api::testing::TestApp;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn ledger_rows(pool: &PgPool, user: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), coalesce(sum(amount), 0)::bigint FROM point_ledger WHERE user_id = $1",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap()
}

fn charge_request(
    user: Uuid,
    token: &str,
    body: &str,
    key: Option<&str>,
) -> Request<axum::body::Body> {
    let mut builder = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/user/{user}/charge"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap()
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_hundred_concurrent_charges_of_one_leave_exactly_a_hundred(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool.clone()).await);
    let (user, token) = app.new_user().await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move {
            app.call(
                Method::PATCH,
                &format!("/user/{user}/charge"),
                Some(&token),
                Some(json!({"amount": 1})),
            )
            .await
            .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let reply = app
        .call(
            Method::GET,
            &format!("/client/{user}/balance"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"userId": user, "balance": 100}));
    assert_eq!(ledger_rows(&pool, user).await, (100, 100));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_charge_retried_with_its_idempotency_key_charges_once(pool: PgPool) {
    let app = std::sync::Arc::new(TestApp::new(pool.clone()).await);
    let (user, token) = app.new_user().await;
    let first = app
        .send(charge_request(
            user,
            &token,
            r#"{"amount": 500}"#,
            Some("charge-1"),
        ))
        .await;
    assert_eq!(first.body["balance"], 500);
    // Retries, some of them concurrent.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move {
            app.send(charge_request(
                user,
                &token,
                r#"{"amount": 500}"#,
                Some("charge-1"),
            ))
            .await
        });
    }
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["balance"], 500, "the first result is returned");
    }
    // The same key with another body is refused.
    app.send(charge_request(
        user,
        &token,
        r#"{"amount": 7}"#,
        Some("charge-1"),
    ))
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    // A new key charges again.
    let second = app
        .send(charge_request(
            user,
            &token,
            r#"{"amount": 500}"#,
            Some("charge-2"),
        ))
        .await;
    assert_eq!(second.body["balance"], 1000);
    assert_eq!(ledger_rows(&pool, user).await, (2, 1000));

    // Concurrent first attempts with one fresh key: still one charge.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (app, token) = (app.clone(), token.clone());
        tasks.spawn(async move {
            app.send(charge_request(
                user,
                &token,
                r#"{"amount": 1}"#,
                Some("race"),
            ))
            .await
        });
    }
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["balance"], 1001);
    }
    assert_eq!(ledger_rows(&pool, user).await, (3, 1001));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn another_users_token_is_forbidden(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (alice, _) = app.new_user().await;
    let (_, bob_token) = app.new_user().await;
    app.call(
        Method::GET,
        &format!("/client/{alice}/balance"),
        Some(&bob_token),
        None,
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN);
    app.call(
        Method::PATCH,
        &format!("/user/{alice}/charge"),
        Some(&bob_token),
        Some(json!({"amount": 5})),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN);
    app.call(Method::GET, &format!("/client/{alice}/balance"), None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(ledger_rows(&pool, alice).await, (0, 0));
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn charges_respect_the_limits(pool: PgPool) {
    let app = TestApp::with_config(pool.clone(), |c| {
        c.charge_max = 1000;
        c.balance_max = 1500;
    })
    .await;
    let (user, token) = app.new_user().await;
    let charge = |amount: i64| {
        let (app, token) = (&app, token.clone());
        async move {
            app.call(
                Method::PATCH,
                &format!("/user/{user}/charge"),
                Some(&token),
                Some(json!({"amount": amount})),
            )
            .await
        }
    };
    assert_eq!(charge(1000).await.body["balance"], 1000);
    charge(1001)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    charge(0)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    charge(-5)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    charge(501)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(charge(500).await.body["balance"], 1500);
    assert_eq!(ledger_rows(&pool, user).await, (2, 1500));
}
