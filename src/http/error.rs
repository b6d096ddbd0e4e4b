//! The one error type of the HTTP layer. Every refusal is a status with a JSON body `{"error": "..."}`
//! that says what was wrong; internal errors are logged and shown only as "internal error".

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::protocol::signature::ApiAuthError;

/// A refused or failed HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the app is disabled, or the request is not allowed from there.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such app or path.
    #[error("{0}")]
    NotFound(String),
    /// 413: a body or event over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 408: the request did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// 429: the app published more than it may; the second field is the number of seconds to wait, sent
    /// as `Retry-After`.
    #[error("{0}")]
    TooManyRequests(String, u64),
    /// 409: the request names a state that is not the current one (a history epoch that is gone).
    #[error("{0}")]
    Conflict(String),
    /// 415: the body is not of the type the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 405: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 501: a feature this version does not have yet.
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the hub is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug. The detail is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<crate::history::HistoryError> for ApiError {
    fn from(e: crate::history::HistoryError) -> Self {
        ApiError::Unavailable(format!("the event was not published, because it could not be kept: {e}"))
    }
}

impl From<ApiAuthError> for ApiError {
    fn from(e: ApiAuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// The message of a refusal, kept on its response so that the API's middleware can show it in the console
/// without reading the body.
#[derive(Debug, Clone)]
pub(crate) struct Refusal(pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error while answering a request");
        }
        let message = self.to_string();
        let mut response = (self.status(), Json(serde_json::json!({ "error": &message }))).into_response();
        response.extensions_mut().insert(Refusal(message));
        if let ApiError::TooManyRequests(_, retry_after) = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        response
    }
}
