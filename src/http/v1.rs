//! Poussr v1 publishing: `POST /v1/channels/{channel}/events?name={event}` with the data as the body,
//! verbatim. Answers 201 with an empty body, as the original server did.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use super::api::read_body;
use super::{ApiError, AppState, Peer};
use crate::hub::Publish;
use crate::monitor::EventSource;

/// Whether the request may publish: from this machine always; from elsewhere with the default app's
/// secret as a bearer token, or when the operator allowed anonymous publishing.
fn authorized(state: &AppState, peer: Peer, headers: &HeaderMap) -> Result<(), ApiError> {
    if peer.local || state.hub.allow_anonymous_publish() {
        return Ok(());
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let secret = state.hub.default_app().config.secret.clone();
    match token {
        Some(t) if bool::from(t.as_bytes().ct_eq(secret.as_bytes())) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("the bearer token is not the app secret".into())),
        None => Err(ApiError::Unauthorized(
            "publishing from another machine needs the header \"Authorization: Bearer <app secret>\" \
             (or start the hub with --allow-anonymous-publish)"
                .into(),
        )),
    }
}

/// `POST /v1/channels/{channel}/events?name={event}`.
pub(super) async fn publish(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    RawQuery(query): RawQuery,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    authorized(&state, peer, &headers)?;
    let name = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the event name is missing: POST /v1/channels/{channel}/events?name=<event name>"
            ))
        })?;
    let limits = state.hub.limits();
    super::check_event_name(limits, &name)?;
    let channel = super::channel_name(&channel)?;
    let max = limits.max_event_data_bytes;
    let body = read_body(body, max).await.map_err(|e| match e {
        ApiError::TooLarge(_) => ApiError::TooLarge(format!("the event data is over the {max}-byte limit")),
        other => other,
    })?;
    let data = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the body is not valid UTF-8 text".into()))?;
    let app = state.hub.default_app();
    super::check_publish_rate(&state.hub, &app, 1)?;
    state.hub.publish(&app, &Publish::new(vec![channel], &name, &data, None, EventSource::V1)).finish().await?;
    Ok(StatusCode::CREATED)
}
