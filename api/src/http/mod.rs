//! The HTTP surface: one module per resource, the router, and the layers around it.
//!
//! - [`queue`]: waiting-queue tokens. - [`catalog`]: concerts, dates, seats.
//! - [`points`]: balance and charges. - [`admin`]: catalog management.
//! - [`reservations`], [`payments`]: submitting requests and reading their outcome.
//! - [`history`]: a user's reservations and point ledger.
//! - [`health`]: liveness and readiness. - [`openapi`]: the generated document.
//! - [`error`]: the one error type and its problem+json mapping. - [`extract`], [`auth`]:
//!   extractors that reject with that error type.

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod error;
pub mod extract;
pub mod health;
pub mod history;
pub mod metrics;
pub mod openapi;
pub mod payments;
pub mod points;
pub mod queue;
pub mod reservations;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::BoxError;
use axum::Router;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::state::AppState;
use error::ApiError;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let timeout = state.config.request_timeout;
    // Under overload, writes are refused at once rather than queued: a queue of accepted
    // connections grows memory without bound and answers them too late to matter. Reads,
    // long polls and probes are not limited (a long poll waits cheaply, and a probe that
    // fails under load would get a healthy process restarted).
    let writes = Router::new()
        .route("/client/token", post(queue::issue))
        .route("/user/{userId}/charge", patch(points::charge))
        .route("/reservation", post(reservations::submit))
        .route("/payment/{paymentId}", post(payments::submit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: BoxError| async {
                    ::metrics::counter!("http_writes_shed_total").increment(1);
                    ApiError::Unavailable {
                        detail: "the server is at capacity; retry shortly".into(),
                        retry_after_secs: 1,
                    }
                }))
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(
                    state.config.max_in_flight_writes as usize,
                )),
        );
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/client/token", get(queue::status))
        .route("/concerts", get(catalog::list_concerts))
        .route("/concerts/{concertId}/dates", get(catalog::list_dates))
        .route(
            "/concerts/{concertId}/dates/{concertDateId}/seats",
            get(catalog::list_seats),
        )
        .route("/client/{clientId}/balance", get(points::balance))
        .route("/reservation/{requestId}", get(reservations::status))
        .route("/payment/{paymentId}", get(payments::status))
        .route(
            "/client/{clientId}/reservations",
            get(history::reservations),
        )
        .route("/client/{clientId}/ledger", get(history::ledger))
        .route("/admin/concerts", post(admin::create_concert))
        .route("/admin/concerts/{id}/dates", post(admin::create_date))
        .merge(openapi::routes())
        .merge(writes)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        // One stack, applied once: each `Router::layer` call boxes every route again, and so
        // adds an allocation and a dynamic call to every request. Outermost first. Router
        // layers run per route, after routing, so the metrics know the route template.
        .layer(
            ServiceBuilder::new()
                // A 5xx is logged where it arises, with its cause (internal and database
                // errors), and counted by status in the metrics. Past capacity the API sheds
                // writes with 503 by the thousand a second; an ERROR line for each would flood
                // the log exactly when an operator reads it, so the trace layer reports
                // failures at DEBUG only.
                .layer(
                    TraceLayer::new_for_http()
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
                )
                .layer(CatchPanicLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                ))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
                .layer(axum::middleware::from_fn(metrics::track))
                .layer(axum::middleware::map_response(
                    error::problem_for_bare_errors,
                )),
        )
        .with_state(state)
}
