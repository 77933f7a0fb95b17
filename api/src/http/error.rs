//! The API's one error type and its single mapping to HTTP: every error leaves as an RFC 7807
//! `application/problem+json` document. Causes of 5xx answers are logged, never sent.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request could not be read: malformed JSON, a bad path or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed, but the values are not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid token that is still waiting in line.
    #[error("the token is still waiting in line")]
    NotAdmitted {
        position: i64,
        estimated_wait_seconds: i64,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body exceeds the limit")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency (Kafka, the database) cannot take the request now; retry later.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// RFC 7807 problem details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Place in line, for a token that is not admitted yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_seconds: Option<i64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            position: None,
            estimated_wait_seconds: None,
        }
    }

    pub fn into_response_with(self, extra: Option<(header::HeaderName, HeaderValue)>) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some((name, value)) = extra {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotAdmitted { .. } | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(sqlx::Error::PoolTimedOut) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unprocessable(_) => "validation",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotAdmitted { .. } => "not-admitted",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Unavailable { .. } | ApiError::Database(sqlx::Error::PoolTimedOut) => {
                "unavailable"
            }
            ApiError::Database(_) | ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut problem = match &self {
            ApiError::Database(sqlx::Error::PoolTimedOut) => {
                tracing::warn!("database pool exhausted or unreachable");
                Problem::new(status, self.slug(), "the service is busy; retry shortly")
            }
            ApiError::Database(err) => {
                tracing::error!(error = %err, "database error");
                Problem::new(status, self.slug(), "an internal error occurred")
            }
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                Problem::new(status, self.slug(), "an internal error occurred")
            }
            other => Problem::new(status, self.slug(), other.to_string()),
        };
        let mut extra = None;
        match self {
            ApiError::NotAdmitted {
                position,
                estimated_wait_seconds,
            } => {
                problem.position = Some(position);
                problem.estimated_wait_seconds = Some(estimated_wait_seconds);
            }
            ApiError::Unavailable {
                retry_after_secs, ..
            } => {
                extra = Some((header::RETRY_AFTER, HeaderValue::from(retry_after_secs)));
            }
            ApiError::Database(sqlx::Error::PoolTimedOut) => {
                extra = Some((header::RETRY_AFTER, HeaderValue::from(1u64)));
            }
            ApiError::Unauthorized(_) => {
                extra = Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        problem.into_response_with(extra)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::JsonSyntaxError(err) => {
                ApiError::BadRequest(format!("malformed JSON: {}", err.body_text()))
            }
            JsonRejection::JsonDataError(err) => ApiError::Unprocessable(err.body_text()),
            JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path parameter: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!(
            "invalid query parameter: {}",
            rejection.body_text()
        ))
    }
}

impl From<seatline_shared::catalog::CatalogError> for ApiError {
    fn from(err: seatline_shared::catalog::CatalogError) -> Self {
        use seatline_shared::catalog::CatalogError;
        match err {
            CatalogError::ConcertNotFound(id) => {
                ApiError::NotFound(format!("concert {id} not found"))
            }
            CatalogError::Invalid(detail) => ApiError::Unprocessable(detail),
            CatalogError::Database(err) => ApiError::Database(err),
        }
    }
}

/// Gives every bare error answer that did not come from [`ApiError`] (a layer's 408 or 413,
/// a panic caught, axum's own 405) the same problem+json shape, so clients parse one format.
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Answers that already carry a JSON document (a problem, or readiness naming what is
    // down) are left alone; bare and plain-text ones are rewritten.
    let is_bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !is_bare {
        return response;
    }
    let (slug, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method-not-allowed", "method not allowed on this route")
        }
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "request body exceeds the limit"),
        s if s.is_server_error() => ("internal", "an internal error occurred"),
        _ => ("error", "the request cannot be served"),
    };
    let extra = response
        .headers()
        .get(header::ALLOW)
        .cloned()
        .map(|v| (header::ALLOW, v));
    Problem::new(status, slug, detail).into_response_with(extra)
}
