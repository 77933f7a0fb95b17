//! Liveness and readiness. Ready means PostgreSQL answers and Kafka metadata can be fetched;
//! otherwise 503 with a body that names the failing dependency.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rdkafka::producer::Producer;
use serde::Serialize;

use crate::state::AppState;

/// How long each dependency check may take. Both run concurrently, so readiness answers
/// within this bound even when both are down.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// "ok" or "unavailable".
    pub status: &'static str,
    pub checks: Checks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub database: Check,
    pub kafka: Check,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// "ok" or "unavailable".
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn from_result(result: Result<(), String>) -> Self {
        match result {
            Ok(()) => Check {
                status: "ok",
                error: None,
            },
            Err(error) => Check {
                status: "unavailable",
                error: Some(error),
            },
        }
    }
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "alive")))]
pub async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: database and Kafka reachable.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "a dependency is unavailable", body = Readiness),
))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let (database, kafka) = tokio::join!(check_database(&state), check_kafka(&state));
    let ok = database.is_ok() && kafka.is_ok();
    let body = Readiness {
        status: if ok { "ok" } else { "unavailable" },
        checks: Checks {
            database: Check::from_result(database),
            kafka: Check::from_result(kafka),
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn check_database(state: &AppState) -> Result<(), String> {
    let query = sqlx::query("SELECT 1").execute(&state.db);
    match tokio::time::timeout(CHECK_TIMEOUT, query).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            Err("database unreachable".into())
        }
        Err(_) => Err("database check timed out".into()),
    }
}

async fn check_kafka(state: &AppState) -> Result<(), String> {
    let producer = state.producer.clone();
    // fetch_metadata blocks the calling thread, so it runs on the blocking pool.
    let fetch = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, CHECK_TIMEOUT)
            .map(|_| ())
    });
    match tokio::time::timeout(CHECK_TIMEOUT + Duration::from_millis(500), fetch).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(err))) => {
            tracing::warn!(error = %err, "readiness: kafka check failed");
            Err("kafka metadata unavailable".into())
        }
        Ok(Err(_)) | Err(_) => Err("kafka check timed out".into()),
    }
}
