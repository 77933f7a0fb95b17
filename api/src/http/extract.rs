//! Extractors whose rejections are [`ApiError`]s, so malformed JSON, a wrong content type, bad
//! path or query values all answer in problem+json like every other error.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::ApiError;

/// JSON bodies with problem+json rejections. Bodies must be JSON objects: serde would otherwise
/// accept a struct written as an array (`[1]`), which no client means.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // axum checks the content type, the size and the syntax; the body is kept as its text,
        // not a tree of maps and strings that the typed read below would only walk again.
        let axum::Json(raw) = axum::Json::<Box<RawValue>>::from_request(req, state).await?;
        if !raw.get().starts_with('{') {
            return Err(ApiError::Unprocessable(
                "the body must be a JSON object".into(),
            ));
        }
        // The path names the offending field (`seatNo: invalid type ...`); serde_json's own
        // error gives only the position.
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
            .map(Json)
            .map_err(|err| {
                let path = err.path().to_string();
                let err = err.into_inner();
                ApiError::Unprocessable(if path == "." {
                    format!("invalid body: {err}")
                } else {
                    format!("invalid body: {path}: {err}")
                })
            })
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with problem+json rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query` with problem+json rejections.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
