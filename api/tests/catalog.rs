//! The catalog for admitted users, and the admin endpoints that fill it.

use axum::http::{Method, StatusCode};
use seatline_api::testing::{TestApp, ADMIN_TOKEN};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

async fn create_concert(app: &TestApp, title: &str) -> i64 {
    let reply = app
        .call(
            Method::POST,
            "/admin/concerts",
            Some(ADMIN_TOKEN),
            Some(json!({"title": title, "venue": "Hall"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_i64().unwrap()
}

async fn create_date(
    app: &TestApp,
    concert: i64,
    body: serde_json::Value,
) -> seatline_api::testing::Reply {
    app.call(
        Method::POST,
        &format!("/admin/concerts/{concert}/dates"),
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await
}

async fn reserve(
    pool: &PgPool,
    user: Uuid,
    date: i64,
    seat: i32,
    status: &str,
    expires_in_secs: i64,
) {
    sqlx::query(
        "INSERT INTO reservations (id, request_id, user_id, concert_date_id, seat_no, price, status, expires_at)
         VALUES ($1, $2, $3, $4, $5, 1000, $6, now() + make_interval(secs => $7))",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::new_v4())
    .bind(user)
    .bind(date)
    .bind(seat)
    .bind(status)
    .bind(expires_in_secs as f64)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn admitted_users_browse_concerts_dates_and_seats(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let concert = create_concert(&app, "Spring").await;
    let starts = chrono::Utc::now() + chrono::Duration::days(3);
    let date = create_date(
        &app,
        concert,
        json!({"startsAt": starts, "defaultPrice": 1000, "seatPrices": {"1": 5000, "50": 7000}}),
    )
    .await;
    assert_eq!(date.status, StatusCode::CREATED, "{}", date.body);
    assert_eq!(date.body["seats"], 50);
    let date_id = date.body["id"].as_i64().unwrap();
    // A date whose sales closed already, and one sold out: neither is listed.
    let closed = create_date(
        &app,
        concert,
        json!({"startsAt": starts, "defaultPrice": 1000,
               "salesOpenAt": chrono::Utc::now() - chrono::Duration::days(2),
               "salesCloseAt": chrono::Utc::now() - chrono::Duration::days(1)}),
    )
    .await;
    assert_eq!(closed.status, StatusCode::CREATED, "{}", closed.body);
    let sold_out = create_date(
        &app,
        concert,
        json!({"startsAt": starts, "defaultPrice": 1000}),
    )
    .await;
    let sold_out_id = sold_out.body["id"].as_i64().unwrap();

    let (user, token) = app.active_user().await;
    for seat in 1..=50 {
        reserve(&pool, user, sold_out_id, seat, "CONFIRMED", 300).await;
    }
    reserve(&pool, user, date_id, 2, "HELD", 300).await;
    reserve(&pool, user, date_id, 3, "CONFIRMED", 300).await;
    // A hold whose time has passed, not yet swept: shows AVAILABLE.
    reserve(&pool, user, date_id, 4, "HELD", -5).await;

    let concerts = app.call(Method::GET, "/concerts", Some(&token), None).await;
    assert_eq!(concerts.status, StatusCode::OK);
    assert_eq!(concerts.body["concerts"][0]["id"], concert);
    assert_eq!(concerts.body["concerts"][0]["title"], "Spring");
    assert_eq!(concerts.body["concerts"][0]["venue"], "Hall");

    let dates = app
        .call(
            Method::GET,
            &format!("/concerts/{concert}/dates"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(dates.status, StatusCode::OK, "{}", dates.body);
    assert_eq!(dates.body["concertId"], concert);
    let listed = dates.body["dates"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "only the date on sale with seats left: {}",
        dates.body
    );
    assert_eq!(listed[0]["id"], date_id);
    assert_eq!(listed[0]["availableSeats"], 48);
    assert!(listed[0]["startsAt"].is_string());

    let seats = app
        .call(
            Method::GET,
            &format!("/concerts/{concert}/dates/{date_id}/seats"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(seats.status, StatusCode::OK);
    assert_eq!(seats.body["concertDateId"], date_id);
    let seats = seats.body["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 50);
    assert_eq!(
        seats[0],
        json!({"seatNo": 1, "price": 5000, "status": "AVAILABLE"})
    );
    assert_eq!(seats[1]["status"], "HELD");
    assert_eq!(seats[2]["status"], "SOLD");
    assert_eq!(seats[3]["status"], "AVAILABLE");
    assert_eq!(seats[49]["price"], 7000);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn unknown_concerts_and_foreign_dates_are_not_found(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let a = create_concert(&app, "A").await;
    let b = create_concert(&app, "B").await;
    let starts = chrono::Utc::now() + chrono::Duration::days(3);
    let date_of_b = create_date(&app, b, json!({"startsAt": starts, "defaultPrice": 10}))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let (_, token) = app.active_user().await;
    app.call(Method::GET, "/concerts/999999/dates", Some(&token), None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    app.call(
        Method::GET,
        &format!("/concerts/{a}/dates/{date_of_b}/seats"),
        Some(&token),
        None,
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND);
    app.call(
        Method::GET,
        &format!("/concerts/{a}/dates/abc/seats"),
        Some(&token),
        None,
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn a_waiting_token_gets_403_with_its_position(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.new_user().await;
    let (_, token) = app.new_user().await;
    for path in [
        "/concerts",
        "/concerts/1/dates",
        "/concerts/1/dates/1/seats",
    ] {
        let reply = app.call(Method::GET, path, Some(&token), None).await;
        reply.assert_problem(StatusCode::FORBIDDEN);
        assert_eq!(reply.body["position"], 2, "{path}");
        assert!(reply.body["estimatedWaitSeconds"].is_i64());
    }
    app.call(Method::GET, "/concerts", None, None)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "seatline_shared::MIGRATOR")]
async fn admin_needs_its_token_and_validates_input(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let body = json!({"title": "T", "venue": "V"});
    app.call(Method::POST, "/admin/concerts", None, Some(body.clone()))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    app.call(
        Method::POST,
        "/admin/concerts",
        Some("wrong-admin-token-000000"),
        Some(body.clone()),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED);
    let (_, queue_token) = app.active_user().await;
    app.call(
        Method::POST,
        "/admin/concerts",
        Some(&queue_token),
        Some(body.clone()),
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED);

    // Without ADMIN_TOKEN configured, even a guess of the test token is refused.
    let closed = TestApp::with_config(pool.clone(), |c| c.admin_token = None).await;
    closed
        .call(
            Method::POST,
            "/admin/concerts",
            Some(ADMIN_TOKEN),
            Some(body),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);

    let concert = create_concert(&app, "Valid").await;
    let starts = chrono::Utc::now() + chrono::Duration::days(3);
    let invalid = [
        json!({"startsAt": starts, "defaultPrice": -1}),
        json!({"startsAt": starts, "defaultPrice": 1, "seatPrices": {"51": 10}}),
        json!({"startsAt": starts, "defaultPrice": 1, "seatPrices": {"x": 10}}),
        json!({"startsAt": starts, "defaultPrice": 1, "salesCloseAt": starts + chrono::Duration::days(1)}),
        json!({"startsAt": "next tuesday", "defaultPrice": 1}),
        json!({"defaultPrice": 1}),
    ];
    for body in invalid {
        create_date(&app, concert, body.clone())
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    }
    create_date(&app, 424242, json!({"startsAt": starts, "defaultPrice": 1}))
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    app.call(
        Method::POST,
        "/admin/concerts",
        Some(ADMIN_TOKEN),
        Some(json!({"title": "", "venue": "V"})),
    )
    .await
    .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let (dates,): (i64,) = sqlx::query_as("SELECT count(*) FROM concert_dates")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (concerts,): (i64,) = sqlx::query_as("SELECT count(*) FROM concerts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((concerts, dates), (1, 0), "refused input wrote nothing");
}
