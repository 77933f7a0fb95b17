//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the docs page.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, catalog, health, history, payments, points, queue, reservations};

#[derive(OpenApi)]
#[openapi(
    info(title = "Seatline", description = "Concert seat reservation: waiting queue, catalog, points, reservations and payments."),
    paths(
        health::live, health::ready,
        queue::issue, queue::status,
        catalog::list_concerts, catalog::list_dates, catalog::list_seats,
        points::balance, points::charge,
        reservations::submit, reservations::status,
        payments::submit, payments::status,
        history::reservations, history::ledger,
        admin::create_concert, admin::create_date,
    ),
    components(schemas(super::error::Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "queue", description = "Waiting queue tokens"),
        (name = "catalog", description = "Concerts, dates and seats (ACTIVE token)"),
        (name = "points", description = "Point balance"),
        (name = "reservations", description = "Seat reservation requests (ACTIVE token), decided asynchronously"),
        (name = "payments", description = "Payment of a held seat from the balance, decided asynchronously"),
        (name = "history", description = "A user's reservations and point ledger"),
        (name = "admin", description = "Catalog management (ADMIN_TOKEN)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["queueToken", "adminToken"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// The OpenAPI document and the docs page, rendered once.
///
/// Routes are cloned for every connection, and a handler that owned a `String` copied it each
/// time: the 25 KiB docs page alone made every idle connection cost about 50 KiB. `Bytes`
/// clones share one buffer.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    use axum::body::Bytes;
    use axum::http::header::CONTENT_TYPE;
    use axum::response::Html;
    use axum::routing::get;

    let document = ApiDoc::openapi();
    let json = Bytes::from(serde_json::to_vec(&document).expect("the document serializes"));
    let html = Bytes::from(utoipa_scalar::Scalar::new(document).to_html());
    axum::Router::new()
        .route(
            "/openapi.json",
            get(move || async move { ([(CONTENT_TYPE, "application/json")], json) }),
        )
        .route("/docs", get(move || async move { Html(html) }))
}
