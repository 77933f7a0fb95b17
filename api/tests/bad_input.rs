//! Bad input of every kind gets a 4xx problem+json answer and writes nothing.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use seatline_api::testing::TestApp;
use sqlx::PgPool;

/// Row counts of every table a request could write.
async fn snapshot(pool: &PgPool) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "users",
        "point_ledger",
        "queue_tokens",
        "concerts",
        "concert_dates",
        "seats",
        "requests",
    ] {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push(n);
    }
    let (balances,): (i64,) = sqlx::query_as("SELECT coalesce(sum(balance), 0)::bigint FROM users")
        .fetch_one(pool)
        .await
        .unwrap();
    counts.push(balances);
    counts
}

fn raw(
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).unwrap()
}

/// A JSON charge request with `body` as it is, for the tests of how bodies are read.
fn charge_with_body(user: impl std::fmt::Display, token: &str, body: &str) -> Request<Body> {
    raw(
        Method::PATCH,
        &format!("/user/{user}/charge"),
        Some(token),
        Some("application/json"),
        body.to_owned(),
    )
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn every_bad_input_is_a_problem_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (user, token) = app.new_user().await;
    let before = snapshot(&pool).await;
    let json = Some("application/json");
    let charge = format!("/user/{user}/charge");
    let big = format!(r#"{{"amount": 1, "pad": "{}"}}"#, "x".repeat(17 * 1024));
    let cases: Vec<(Request<Body>, StatusCode)> = vec![
        // Malformed JSON.
        (
            raw(Method::POST, "/client/token", None, json, "{"),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(Method::PATCH, &charge, Some(&token), json, "{amount: 1}"),
            StatusCode::BAD_REQUEST,
        ),
        // Wrong or missing content type.
        (
            raw(
                Method::POST,
                "/client/token",
                None,
                Some("text/plain"),
                r#"{"userId":"x"}"#,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                None,
                r#"{"amount": 1}"#,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        // Missing fields, wrong types, unknown fields.
        (
            raw(Method::POST, "/client/token", None, json, "{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                json,
                r#"{"amount": "1"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                json,
                r#"{"amount": 1.5}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                json,
                r#"{"amount": 99999999999999999999}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                json,
                r#"{"amount": 1, "bonus": 5}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // A field given twice is ambiguous: refused, not read as its last value.
        (
            raw(
                Method::PATCH,
                &charge,
                Some(&token),
                json,
                r#"{"amount": 1, "amount": 2}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(Method::PATCH, &charge, Some(&token), json, "[1]"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        // Bad UUIDs, in the body and in the path.
        (
            raw(
                Method::POST,
                "/client/token",
                None,
                json,
                r#"{"userId": "not-a-uuid"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::POST,
                "/client/token",
                None,
                json,
                r#"{"userId": "00000000-0000-0000-0000-000000000000"}"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            raw(
                Method::PATCH,
                "/user/not-a-uuid/charge",
                Some(&token),
                json,
                r#"{"amount": 1}"#,
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            raw(
                Method::GET,
                "/client/123/balance",
                Some(&token),
                None,
                Body::empty(),
            ),
            StatusCode::BAD_REQUEST,
        ),
        // Too large.
        (
            raw(Method::PATCH, &charge, Some(&token), json, big),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        // A bad idempotency key.
        (
            {
                let mut r = raw(
                    Method::PATCH,
                    &charge,
                    Some(&token),
                    json,
                    r#"{"amount": 1}"#,
                );
                r.headers_mut()
                    .insert("idempotency-key", "has space".parse().unwrap());
                r
            },
            StatusCode::BAD_REQUEST,
        ),
        // Unknown routes and methods.
        (
            raw(Method::GET, "/nowhere", None, None, Body::empty()),
            StatusCode::NOT_FOUND,
        ),
        (
            raw(Method::DELETE, "/client/token", None, None, Body::empty()),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (request, status) in cases {
        let label = format!("{} {}", request.method(), request.uri());
        let reply = app.send(request).await;
        assert_eq!(reply.status, status, "{label}: {}", reply.body);
        reply.assert_problem(status);
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(
            !detail.to_lowercase().contains("sqlx") && !detail.contains("postgres"),
            "{label} leaks: {detail}"
        );
    }
    assert_eq!(snapshot(&pool).await, before, "bad input wrote something");
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_wrongly_typed_field_is_named_in_the_problem(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (user, token) = app.new_user().await;
    let reply = app
        .send(charge_with_body(user, &token, r#"{"amount": "1"}"#))
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.starts_with("invalid body: amount: "), "{detail}");
    // A missing field is an error of the object itself, so no path precedes it.
    let reply = app
        .send(raw(
            Method::POST,
            "/client/token",
            None,
            Some("application/json"),
            "{}",
        ))
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("invalid body: missing field"),
        "{detail}"
    );
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn an_object_with_whitespace_around_it_is_read(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let (user, token) = app.new_user().await;
    let reply = app
        .send(charge_with_body(user, &token, " \n\t{\"amount\": 700}\n "))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["balance"], 700);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn the_openapi_document_and_docs_page_are_served(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.content_type(), "application/json");
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/client/token",
        "/concerts/{concertId}/dates",
        "/concerts/{concertId}/dates/{concertDateId}/seats",
        "/client/{clientId}/balance",
        "/user/{userId}/charge",
        "/admin/concerts",
    ] {
        assert!(
            doc.body["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    let page = app
        .send(raw(Method::GET, "/docs", None, None, Body::empty()))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    assert!(
        page.body.as_str().unwrap().contains("<html"),
        "an HTML page"
    );
}
