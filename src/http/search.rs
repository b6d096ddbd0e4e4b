//! Placeholder: filled in by the search change.

use axum::Router;

use super::AppState;

/// The admin routes of this module (behind the admin guard).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
